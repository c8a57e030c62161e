"""The page list, defined once: streamlit_app.py's navigation, its home page's links and the tests read it.

Adding a page is one `Lesson` entry in `PAGES` plus the page file (which starts with `header(intro)`).
"""
from __future__ import annotations

import contextvars
import runpy
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parents[2]  # the checkout: streamlit_app.py, pages/, cnnviz/
APP = ROOT / "streamlit_app.py"


@dataclass(frozen=True)
class Lesson:
    """One page: its file in pages/ (or an absolute path), its title (the menu's and the page's) and icon."""

    file: str
    title: str
    icon: str

    @property
    def path(self) -> str:
        """The file relative to streamlit_app.py (what st.Page, st.page_link and AppTest.switch_page take)."""
        p = Path(self.file)
        return str(p) if p.is_absolute() else f"pages/{self.file}"

    @property
    def url_path(self) -> str:
        """The page's URL (/train_compare): the file name, as both st.Page and the legacy pages/ mode make it."""
        return Path(self.file).stem


PAGES: list[Lesson] = [
    Lesson("train_compare.py", "Train & compare", ":material/show_chart:"),
    Lesson("downsampling.py", "Downsampling: pooling vs interpolation vs stride", ":material/compress:"),
    Lesson("engineered.py", "Engineered vs learned features", ":material/science:"),
    Lesson("architectures.py", "Architectures", ":material/account_tree:"),
    Lesson("inside.py", "Look inside", ":material/biotech:"),
]
HOME_TITLE = "Home"


def lesson(url_path: str) -> Lesson:
    """The entry whose URL is /`url_path`; KeyError names the pages there are."""
    found = [p for p in PAGES if p.url_path == url_path]
    if not found:
        raise KeyError(f"no page /{url_path}; pages: {', '.join(p.url_path for p in PAGES)}")
    return found[0]


# The lesson whose script is running inside run_app's navigation, in this script run (a script run is one
# thread, and each thread starts with an empty context).
_CURRENT: contextvars.ContextVar[Lesson | None] = contextvars.ContextVar("cnnviz_page", default=None)


def run_app(home) -> None:
    """streamlit_app.py's navigation: the home page (a function) and every entry of PAGES, then the chosen one."""
    pages = {p.url_path: (p, st.Page(p.path, title=p.title, icon=p.icon)) for p in PAGES}
    chosen = st.navigation([st.Page(home, title=HOME_TITLE, icon=":material/home:", default=True),
                            *(page for _, page in pages.values())])
    from . import jobs  # jobs -> catalog -> loaders: imported when the app runs, not with the page list

    jobs.keep_owner_in_url()  # on every page, the home page too: a reload anywhere keeps the tab's jobs its own
    token = _CURRENT.set(pages[chosen.url_path][0] if chosen.url_path in pages else None)
    try:
        chosen.run()
    finally:
        _CURRENT.reset(token)


def header(intro: str) -> Lesson:
    """The page's title (from PAGES) and one-line intro; a page run outside the app's navigation reruns inside it.

    While a pages/ folder sits beside streamlit_app.py, Streamlit 1.67 runs a script in its legacy pages/ mode
    until some `st.navigation` call in the process turns that mode off: then a URL runs the matching
    `pages/*.py` file bare (no wide layout, a sidebar of file names). Measured: a deep link to /train_compare
    on a fresh server, and every AppTest run (AppTest resets the mode before each run, so `switch_page`
    always lands here bare). The bare run then runs streamlit_app.py in its place, in this same script run (a
    click that started it is not lost); its `st.navigation` leaves legacy mode and runs this page by its URL,
    which is the same in both modes.
    """
    here = _CURRENT.get()
    if here is None:
        runpy.run_path(str(APP), run_name="__main__")
        st.stop()
    st.title(here.title)
    st.caption(intro)
    return here
