"""End to end in a real browser: `streamlit run` + Debian's Chromium (Playwright), every page by URL.

AppTest runs the scripts but never renders them; this test catches what only a browser shows (a page
that fails to load, an exception drawn in the page, a layout that never settles). Screenshots of each
page land in test-artifacts/ for a human to look at.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# url path -> the title the page must show (st.title text, checked as visible text). The home page is
# opened LAST on purpose: a class follows deep links to a freshly woken app, and each page must then run
# through streamlit_app.py's st.navigation (its sidebar lists "Home"), not as a bare script.
PAGES = {
    "train_compare": "Train & compare",
    "downsampling": "Downsampling",
    "engineered": "Engineered",
    "architectures": "Architectures",
    "": "cnnviz: see how standard CNNs are built",
}
NAV_HOME = "Home"  # the st.navigation title of the home page in streamlit_app.py
RUN_TIMEOUT_MS = 180_000  # a page's first run imports torch and builds models on 2 busy cores


def _missing(reason: str):
    """Under CI a missing browser is a broken machine, not a reason to skip."""
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(port: int, server: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"streamlit exited with code {server.returncode} before it was healthy")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                if r.read().decode().strip() == "ok":
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"streamlit did not answer /_stcore/health with 'ok' within {timeout:.0f} s")


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


@pytest.mark.slow
def test_every_page_renders_its_title_without_an_exception_in_chromium():
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip install -r requirements-dev.txt)")
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        _missing(f"no Chromium at {CHROMIUM} (apt-get install chromium; see scripts/setup_test_env.sh)")
    ARTIFACTS.mkdir(exist_ok=True)
    for old in ARTIFACTS.glob("page-*.png"):  # no stale screenshot may pass for this run's
        old.unlink()
    port = _free_port()
    log = open(ARTIFACTS / "streamlit-server.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.headless", "true",
         "--server.port", str(port), "--server.fileWatcherType", "none"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    failures, timings = [], {}
    try:
        _wait_healthy(port, server)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                for path, title in PAGES.items():
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
                    titles = [t.strip() for t in page.locator("h1").all_inner_texts()]
                    if not any(title in t for t in titles):
                        failures.append(f"/{path}: no title containing {title!r} (h1s: {titles})")
                    nav = page.locator("[data-testid='stSidebarNav']")
                    nav_text = nav.inner_text() if nav.count() else ""
                    if NAV_HOME not in nav_text:
                        failures.append(f"/{path}: opened by URL, the page did not run through streamlit_app.py's "
                                        f"st.navigation (sidebar: {' / '.join(nav_text.split())!r})")
                    main = page.locator("[data-testid='stMainBlockContainer']")
                    width = main.first.bounding_box()["width"] if main.count() else 0
                    if width < 1000:  # set_page_config(layout="wide") in streamlit_app.py; centered is ~730 px
                        failures.append(f"/{path}: not the app's wide layout (main column {width:.0f} px wide)")
                    if page.get_by_text("Page not found").count():
                        failures.append(f"/{path}: Streamlit showed 'Page not found' for this URL")
                    errors = page.locator("[data-testid='stException']")
                    if errors.count():
                        first = errors.first.inner_text()[:300].replace("\n", " ")
                        failures.append(f"/{path}: {errors.count()} exception(s) shown, first: {first}")
                    page.close()
            finally:
                browser.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    print("seconds per page:", timings)
    assert not failures, "\n".join(failures)
