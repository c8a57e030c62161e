"""Print the figures docs/architecture.md quotes: lines per page and per library module, and the ten
longest functions of the whole app (library, pages, UI), measured from the source with `ast`.

    python scripts/code_figures.py
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = ["streamlit_app.py", "pages", "cnnviz"]


def python_files() -> list[Path]:
    files = []
    for entry in APP:
        path = ROOT / entry
        files += [path] if path.is_file() else sorted(path.rglob("*.py"))
    return files


def functions(path: Path) -> list[tuple[int, str]]:
    """(lines, "file:qualified name") of every function and method in `path`."""
    tree, out = ast.parse(path.read_text()), []

    def visit(node, prefix=""):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out.append((child.end_lineno - child.lineno + 1, f"{path.relative_to(ROOT)}:{prefix}{child.name}"))
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")

    visit(tree)
    return out


def main() -> None:
    files = python_files()
    print("lines  file")
    for path in files:
        print(f"{len(path.read_text().splitlines()):5d}  {path.relative_to(ROOT)}")
    print("\nthe ten longest functions")
    for lines, name in sorted((f for p in files for f in functions(p)), reverse=True)[:10]:
        print(f"{lines:5d}  {name}")


if __name__ == "__main__":
    main()
