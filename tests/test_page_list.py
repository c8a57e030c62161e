"""The page list is defined once (pages/ui/nav.py): the app's navigation, its home page, the browser test's
list and the page tests all read it, so a page added there is picked up everywhere without another edit."""
from __future__ import annotations

import ast
from pathlib import Path

from streamlit.testing.v1 import AppTest

from pages.ui import nav

ROOT = Path(__file__).resolve().parent.parent

THROWAWAY = '''
import streamlit as st

from pages.ui import nav, widgets

nav.header("A page registered by a test, to show that one entry is all a new page needs.")
widgets.share_link()
'''


def test_every_page_file_is_in_the_list_and_every_entry_has_its_file():
    files = sorted(p.name for p in (ROOT / "pages").glob("*.py") if p.name != "__init__.py")
    assert sorted(p.file for p in nav.PAGES) == files
    assert len({p.url_path for p in nav.PAGES}) == len(nav.PAGES)


def test_a_page_registered_with_one_entry_is_in_the_navigation_the_home_page_and_the_browser_list(
        tmp_path, monkeypatch):
    page = tmp_path / "throwaway_lesson.py"
    page.write_text(THROWAWAY)
    entry = nav.Lesson(str(page), "Throwaway lesson", ":material/science:", "Open a page a test registered.")
    monkeypatch.setattr(nav, "PAGES", [*nav.PAGES, entry])  # the one entry

    home = AppTest.from_file(str(nav.APP), default_timeout=120).run()
    assert not home.exception, [e.message for e in home.exception]
    links = [el.proto.label for el in home.get("page_link")]
    assert links == [f"{i}. {p.title}" for i, p in enumerate(nav.PAGES, 1)] and links[-1].endswith("Throwaway lesson")
    assert any(m.value.startswith("Open a page a test registered.") for m in home.markdown)

    at = AppTest.from_file(str(nav.APP), default_timeout=120)
    at.switch_page(entry.path).run()  # through the app's own navigation
    assert not at.exception, [e.message for e in at.exception]
    assert [t.value for t in at.title] == ["Throwaway lesson"]
    assert at.caption[0].value.startswith("A page registered by a test")
    assert at.sidebar.code[0].value.startswith("(this page as it opens")

    from test_browser import browser_pages  # the browser test's list of URLs to open

    assert browser_pages()["throwaway_lesson"] == "Throwaway lesson"


def test_pages_and_the_ui_package_never_import_torch():
    for path in [*(ROOT / "pages").glob("*.py"), *(ROOT / "pages" / "ui").glob("*.py")]:
        tree = ast.parse(path.read_text())
        names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert "torch" not in names, path
