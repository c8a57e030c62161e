"""End to end in a real browser: `streamlit run` + Debian's Chromium (Playwright), every page by URL.

AppTest runs the scripts but never renders them; this test catches what only a browser shows (a page
that fails to load, an exception drawn in the page, a layout that never settles). Screenshots of each
page land in test-artifacts/ for a human to look at.
"""
from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from streamlit_server import CHROMIUM, CHROMIUM_ARGS, running_app  # noqa: E402
ARTIFACTS = ROOT / "test-artifacts"
from pages.ui import nav  # noqa: E402


def browser_pages() -> dict[str, str]:
    """url path -> the title the page must show (st.title text, checked as visible text), from the app's one
    page list. The home page is opened LAST on purpose: a class follows deep links to a freshly woken app,
    and each page must then run through streamlit_app.py's st.navigation (its sidebar lists "Home"), not
    as a bare script."""
    return {**{p.url_path: p.title for p in nav.PAGES}, "": "cnnviz: see how standard CNNs are built"}


NAV_HOME = nav.HOME_TITLE  # the st.navigation title of the home page
RUN_TIMEOUT_MS = 180_000  # a page's first run imports torch and builds models on 2 busy cores


def _missing(reason: str):
    """Under CI a missing browser is a broken machine, not a reason to skip."""
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def require_browser():
    """Playwright's `sync_playwright`, once Playwright and Chromium are known to be there (else `_missing`)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip install -r requirements-dev.txt)")
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        _missing(f"no Chromium at {CHROMIUM} (apt-get install chromium; see scripts/setup_test_env.sh)")
    return sync_playwright


def _open(page, url: str) -> None:
    page.goto(url, wait_until="domcontentloaded", timeout=RUN_TIMEOUT_MS)
    # The app is settled when the script has drawn its title or an exception (not just the empty
    # initial state) and is no longer running.
    page.wait_for_selector("h1, [data-testid='stException']", timeout=RUN_TIMEOUT_MS)
    page.wait_for_selector("[data-test-script-state='notRunning']", state="attached", timeout=RUN_TIMEOUT_MS)


def _screenshot(page, path: Path) -> None:
    """The whole page: Streamlit scrolls inside its main container, not the window, so `full_page`
    alone captures one screen. Grow the viewport to the content's height first, then restore it."""
    try:
        _grow_and_shoot(page, path)
    except Exception as e:  # noqa: BLE001 - a screenshot is an artifact, not the thing under test
        print(f"no screenshot {path.name}: {e}")


def _grow_and_shoot(page, path: Path) -> None:
    height = page.evaluate("() => Math.max(...Array.from(document.querySelectorAll("
                           "'[data-testid=stMain], [data-testid=stAppViewContainer], section.main'), "
                           "e => e.scrollHeight), document.body.scrollHeight)")
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": min(int(height) + 40, 20000)})
    page.wait_for_timeout(1500)  # plotly charts re-layout to the new size
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(size)


def _what_is_wrong(page, title: str) -> list[str]:
    """What a settled page shows that it should not (or lacks)."""
    wrong = []
    titles = [t.strip() for t in page.locator("h1").all_inner_texts()]
    if not any(title in t for t in titles):
        wrong.append(f"no title containing {title!r} (h1s: {titles})")
    nav = page.locator("[data-testid='stSidebarNav']")
    nav_text = nav.inner_text() if nav.count() else ""
    if NAV_HOME not in nav_text:
        wrong.append(f"opened by URL, the page did not run through streamlit_app.py's st.navigation "
                     f"(sidebar: {' / '.join(nav_text.split())!r})")
    main = page.locator("[data-testid='stMainBlockContainer']")
    width = main.first.bounding_box()["width"] if main.count() else 0
    if width < 1000:  # set_page_config(layout="wide") in streamlit_app.py; centered is ~730 px
        wrong.append(f"not the app's wide layout (main column {width:.0f} px wide)")
    if page.get_by_text("Page not found").count():
        wrong.append("Streamlit showed 'Page not found' for this URL")
    errors = page.locator("[data-testid='stException']")
    if errors.count():
        first = errors.first.inner_text()[:300].replace("\n", " ")
        wrong.append(f"{errors.count()} exception(s) shown, first: {first}")
    return wrong


@pytest.mark.slow
def test_every_page_renders_its_title_without_an_exception_in_chromium():
    sync_playwright = require_browser()
    from playwright.sync_api import Error as PlaywrightError
    ARTIFACTS.mkdir(exist_ok=True)
    for old in ARTIFACTS.glob("page-*.png"):  # no stale screenshot may pass for this run's
        old.unlink()
    failures, timings = [], {}
    with open(ARTIFACTS / "streamlit-server.log", "w") as log, running_app(log) as (port, _), \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for path, title in browser_pages().items():
                # A fresh tab per URL: a page still settling cannot redirect the next one.
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                t0 = time.monotonic()
                try:
                    _open(page, f"http://127.0.0.1:{port}/{path}")
                except PlaywrightError as e:  # a timeout or an interrupted navigation
                    failures.append(f"/{path}: did not finish loading: {str(e).splitlines()[0]}")
                    continue
                finally:
                    timings[path or "home"] = round(time.monotonic() - t0, 1)
                    _screenshot(page, ARTIFACTS / f"page-{path or 'home'}.png")
                failures += [f"/{path}: {f}" for f in _what_is_wrong(page, title)]
                if path:  # each lesson page ends with the link to its exact view, in the sidebar
                    link = page.locator("[data-testid='stSidebar'] [data-testid='stCode']")
                    text = link.first.inner_text().strip() if link.count() else ""
                    # At its defaults a page's link is its bare address (choices at their default are left out).
                    if text.split("?")[0] != f"http://127.0.0.1:{port}/{path}":
                        failures.append(f"/{path}: the sidebar's link to this view reads {text[:120]!r}")
                page.close()
        finally:
            browser.close()
    print("seconds per page:", timings)
    assert not failures, "\n".join(failures)
