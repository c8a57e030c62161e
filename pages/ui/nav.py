"""The page list, defined once: streamlit_app.py's navigation, its home page's lesson order and the tests read it.

Adding a page is one `Lesson` entry in `PAGES` plus the page file (which starts with `header(intro)`). The
order of `PAGES` is the lesson order the home page gives ("start here"): the lecture's order.
"""
from __future__ import annotations

import contextvars
import runpy
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

ROOT = Path(__file__).resolve().parents[2]  # the checkout: streamlit_app.py, pages/, cnnviz/
APP = ROOT / "streamlit_app.py"
# The lecture's outline, in its words (the slides "Outline" of Construction of Standard CNNs).
OUTLINE = ("Fashion-MNIST/Cifar10 Using only Conv2d", "Pooling", "Padding", "1x1 Convolution",
           "LeNet and VGG Models")
# `?present=1` in a link: the view for projecting, without the sidebar, the share box and widgets' chrome.
PRESENT_PARAM = "present"


@dataclass(frozen=True)
class Lesson:
    """One page: its file in pages/ (or an absolute path), its title (the menu's and the page's), its icon, what
    a student does there (one line, on the home page) and the parts of the lecture it teaches (`lecture`: items
    of OUTLINE, or the lecture's own heading of a section outside them; empty: beyond the slides)."""

    file: str
    title: str
    icon: str
    does: str
    lecture: tuple[str, ...] = ()

    @property
    def path(self) -> str:
        """The file as an absolute path: what st.Page, st.page_link and AppTest.switch_page take from any
        entrypoint (streamlit_app.py here, or the Cloud one in deploy/cloud/)."""
        p = Path(self.file)
        return str(p if p.is_absolute() else ROOT / "pages" / self.file)

    @property
    def url_path(self) -> str:
        """The page's URL (/train_compare): the file name, as both st.Page and the legacy pages/ mode make it."""
        return Path(self.file).stem


PAGES: list[Lesson] = [
    Lesson("train_compare.py", "Train & compare", ":material/show_chart:",
           "Train the lecture's conv-only net (or any other) in the background, then lay runs side by side: "
           "accuracy per epoch, the spread over seeds, the errors per class, accuracy against cost.",
           (OUTLINE[0],)),
    Lesson("downsampling.py", "Downsampling: pooling vs interpolation vs stride", ":material/compress:",
           "Halve a feature map by max and average pooling, a strided convolution and interpolation: by hand on "
           "the slides' 4x4 example, on a real image, in trained nets, and under a shift of the input.",
           (OUTLINE[1],)),
    Lesson("engineered.py", "Engineered vs learned features", ":material/science:",
           "Put fixed Sobel, Scharr and Laplacian filters beside the filters a CNN learns, epoch by epoch, and "
           "rerun the lecture's comparison: raw pixels (MLP) vs engineered vs learned features.",
           ("Engineering Feature Extractors",)),
    Lesson("architectures.py", "Architectures", ":material/account_tree:",
           "Read each net's summary table layer by layer, work the output-size formula with padding and stride, "
           "replace the fully-connected layers by 1x1 convolutions, and build LeNet-5 and VGG16.",
           (OUTLINE[2], OUTLINE[3], OUTLINE[4])),
    Lesson("inside.py", "Look inside", ":material/biotech:",
           "Work out one output pixel by hand beside the network's own value, see its receptive field and "
           "where each net looks (Grad-CAM), and take a net home as plain PyTorch code."),
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


def presenting() -> bool:
    """Whether the link asks for the view for projecting (`?present=1`)."""
    return st.query_params.get(PRESENT_PARAM) == "1"


# Long page titles wrap in the sidebar's menu instead of running out of it (Streamlit keeps them on one line).
_MENU_CSS = """
[data-testid='stSidebarNavLink'] { height: auto !important; }
[data-testid='stSidebarNavLink'] span[label], [data-testid='stSidebarNavLink'] [data-testid='stMarkdownContainer'],
[data-testid='stSidebarNavLink'] p { white-space: normal !important; overflow: visible !important;
                                      text-overflow: clip !important; }
"""
# For projecting: no sidebar (nor its open button), no toolbar at the top, no chart or table toolbars, no help
# icons; the widgets themselves stay, so the teacher can still change a choice in front of the class.
_PRESENT_CSS = """
[data-testid='stSidebar'], [data-testid='stSidebarCollapsedControl'], [data-testid='stExpandSidebarButton'],
[data-testid='stHeader'], [data-testid='stToolbar'], [data-testid='stDecoration'],
[data-testid='stElementToolbar'], [data-testid='stTooltipIcon'], .modebar-container { display: none !important; }
[data-testid='stMainBlockContainer'] { padding-top: 1.5rem !important; }
"""


def run_app(home) -> None:
    """streamlit_app.py's navigation: the home page (a function) and every entry of PAGES, then the chosen one."""
    pages = {p.url_path: (p, st.Page(p.path, title=p.title, icon=p.icon)) for p in PAGES}
    chosen = st.navigation([st.Page(home, title=HOME_TITLE, icon=":material/home:", default=True),
                            *(page for _, page in pages.values())], position="hidden" if presenting() else "sidebar")
    st.html(f"<style>{_MENU_CSS}{_PRESENT_CSS if presenting() else ''}</style>")
    from . import jobs  # jobs -> catalog -> loaders: imported when the app runs, not with the page list

    jobs.keep_owner_in_url()  # on every page, the home page too: a reload anywhere keeps the tab's jobs its own
    token = _CURRENT.set(pages[chosen.url_path][0] if chosen.url_path in pages else None)
    try:
        chosen.run()
    finally:
        _CURRENT.reset(token)


def current() -> Lesson | None:
    """The lesson this script run shows (None on the home page or outside the app's navigation)."""
    return _CURRENT.get()


def header(intro: str) -> Lesson:
    """The page's title (from PAGES) and one-line intro; a page run outside the app's navigation reruns inside it.

    While a pages/ folder sits beside streamlit_app.py, Streamlit 1.67 runs a script in its legacy pages/ mode
    until some `st.navigation` call in the process turns that mode off: then a URL runs the matching
    `pages/*.py` file bare (no wide layout, a sidebar of file names). Measured: a deep link to /train_compare
    on a fresh server, and every AppTest run (AppTest resets the mode before each run, so `switch_page`
    always lands here bare). The bare run then runs the app's entrypoint (streamlit_app.py, or the Cloud one that
    runs it) in its place, in this same script run (a click that started it is not lost); its `st.navigation`
    leaves legacy mode and runs this page by its URL, which is the same in both modes.
    """
    here = _CURRENT.get()
    if here is None:
        ctx = get_script_run_ctx()
        runpy.run_path(ctx.main_script_path if ctx and ctx.main_script_path else str(APP), run_name="__main__")
        st.stop()
    st.title(here.title)
    st.caption(intro)
    return here
