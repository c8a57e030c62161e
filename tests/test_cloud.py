"""Streamlit Community Cloud's entrypoint, deploy/cloud/streamlit_app.py: the same app, and beside it the
requirements file Cloud installs first (CPU-only torch), which takes every other line from requirements.txt.

The CPU wheel index cannot be reached from these machines, so the file's install is not run here; what is
checked is what can break without a deploy: the pages, the file Cloud picks, and that the two files agree.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from pages.ui import nav

ROOT = Path(__file__).resolve().parent.parent
CLOUD = ROOT / "deploy" / "cloud"
ENTRY = CLOUD / "streamlit_app.py"
CPU_INDEX = "--extra-index-url https://download.pytorch.org/whl/cpu"
# What Cloud reads before a requirements.txt in the same folder (docs: "App dependencies").
EARLIER_FILES = ("uv.lock", "Pipfile", "environment.yml")


def _lines(path: Path) -> list[str]:
    """The requirement lines of a file, comments and blanks dropped, nested `-r` files followed as pip does
    (relative to the file that names them)."""
    out = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith("-r "):
            out += _lines((path.parent / line[3:].strip()).resolve())
        elif line:
            out.append(line)
    return out


def _pins(lines: list[str]) -> dict[str, str]:
    return dict(re.fullmatch(r"([A-Za-z0-9_.\-\[\]]+)\s*(.*)", line).groups() for line in lines
                if not line.startswith("-"))


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.parametrize("url_path", ["", *(p.url_path for p in nav.PAGES)])
def test_every_page_opens_from_the_cloud_entrypoint(url_path):
    at = AppTest.from_file(str(ENTRY), default_timeout=300)
    if url_path:
        at.switch_page(nav.lesson(url_path).path)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    want = nav.lesson(url_path).title if url_path else "cnnviz: see how standard CNNs are built"
    assert [t.value for t in at.title][:1] == [want]


def test_cloud_installs_the_cpu_requirements_beside_its_entrypoint():
    assert (CLOUD / "requirements.txt").is_file()
    for name in EARLIER_FILES:  # any of these would win over the requirements file
        assert not (CLOUD / name).exists() and not (ROOT / name).exists(), name
    first = next(line for line in (CLOUD / "requirements.txt").read_text().splitlines() if line.strip())
    assert first == CPU_INDEX


def test_the_cloud_file_is_requirements_txt_with_cpu_torch_of_the_same_versions():
    own = [line for line in _lines(CLOUD / "requirements.txt") if not line.startswith("--")]
    local = _pins(_lines(ROOT / "requirements.txt"))
    # Only torch and torchvision are named in the Cloud file itself; every other line comes from requirements.txt.
    cloud_only = _pins([line for line in (CLOUD / "requirements.txt").read_text().splitlines()
                        if line.strip() and not line.startswith(("#", "-"))])
    assert set(cloud_only) == {"torch", "torchvision"}
    for name, pin in cloud_only.items():
        assert pin == local[name] + "+cpu", (name, pin, local[name])
    assert set(_pins(own)) == set(local)
