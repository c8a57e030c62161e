"""In Chromium, on a real `streamlit run` of Cloud's entrypoint (deploy/cloud/streamlit_app.py, run from the
checkout's root as Cloud runs it): the home page's lesson links and the sidebar's menu show every page's whole
title, and `?present=1` shows a page without the sidebar, its button or the toolbar. Screenshots land in
test-artifacts/ (links-home.png, links-present.png) for a human to look at.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pages.ui import nav

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from streamlit_server import CHROMIUM, CHROMIUM_ARGS, running_app  # noqa: E402
from test_browser import ARTIFACTS, _open, require_browser  # noqa: E402

CLOUD_ENTRY = "deploy/cloud/streamlit_app.py"
# A label is cut when its text is wider than its box (an ellipsis, hidden overflow) or runs past `box` (the
# sidebar, which clips what leaves it).
CUT = """(els, box) => els.filter(e => e.scrollWidth > e.clientWidth + 1 || e.scrollHeight > e.clientHeight + 1
                                   || e.getBoundingClientRect().right > box + 1).map(e => e.innerText)"""
MENU = "[data-testid='stSidebarNavLink'] [data-testid='stMarkdownContainer']"
LINKS = "[data-testid='stPageLink-NavLink'] [data-testid='stMarkdownContainer']"


def _visible(page, selector: str) -> bool:
    found = page.locator(selector)
    return any(found.nth(i).is_visible() for i in range(found.count()))


@pytest.mark.slow
def test_titles_are_whole_and_presenting_hides_the_controls_in_chromium():
    sync_playwright = require_browser()
    ARTIFACTS.mkdir(exist_ok=True)
    lesson = nav.lesson("architectures")
    # PYTHONSAFEPATH: no current folder on sys.path (`python -m` would add it; Cloud's `streamlit run` does
    # not), so the entrypoint must find the checkout itself.
    with open(ARTIFACTS / "streamlit-cloud-server.log", "w") as log, \
            running_app(log, entrypoint=CLOUD_ENTRY, env={"PYTHONSAFEPATH": "1"}) as (port, _), \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            _open(page, f"http://127.0.0.1:{port}/")
            page.screenshot(path=str(ARTIFACTS / "links-home.png"))
            assert not page.locator("[data-testid='stException']").count()
            menu, links = page.locator(MENU), page.locator(LINKS)
            for titles in (menu.all_inner_texts(), links.all_inner_texts()):
                for p_ in nav.PAGES:  # every title, whole, as text
                    assert any(p_.title in t for t in titles), (p_.title, titles)
            sidebar = page.locator("[data-testid='stSidebar']").bounding_box()
            main = page.locator("[data-testid='stMain']").bounding_box()
            assert menu.evaluate_all(CUT, sidebar["x"] + sidebar["width"]) == []
            assert links.evaluate_all(CUT, main["x"] + main["width"]) == []

            shown = browser.new_page(viewport={"width": 1440, "height": 900})
            _open(shown, f"http://127.0.0.1:{port}/{lesson.url_path}?arch=vgg16&present=1")
            shown.wait_for_timeout(1500)  # charts settle
            shown.screenshot(path=str(ARTIFACTS / "links-present.png"))
            assert [t.strip() for t in shown.locator("h1").all_inner_texts()][:1] == [lesson.title]
            for hidden in ("[data-testid='stSidebar']", "[data-testid='stExpandSidebarButton']",
                           "[data-testid='stSidebarCollapsedControl']", "[data-testid='stToolbar']",
                           "[data-testid='stHeader']", ".modebar-container"):
                assert not _visible(shown, hidden), hidden
            assert shown.locator("[data-testid='stSelectbox']").count()  # the choices stay, for the teacher
        finally:
            browser.close()
