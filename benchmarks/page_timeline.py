"""Where a page's time goes in the browser: server messages against what Chromium still has to draw.

    python benchmarks/page_timeline.py [--pages downsampling,engineered] [--tabs 3]

For each page, on a fresh `streamlit run` of the app, one browser context opens the page in `--tabs`
new tabs one after another (the first is the cold visit; the later ones share its cache, like
app_speed.py's warm tab) and prints, in seconds from the start of `page.goto`:
- ws: the tab's websocket opened (Streamlit's scripts loaded and run by the browser);
- last msg: the last message of the page's script run arrived (the server's part ends here);
- h1: the lesson's title visible; idle: the script state `notRunning`;
- drawn: no `stSkeleton` or `stSpinner` left (plotly charts, tables and maths drawn).
What lies between "last msg" and "drawn" is the browser's work alone; that is what issue 18's warm
figures are made of once the server answers in a tenth of a second (measured with AppTest).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from streamlit_server import CHROMIUM, CHROMIUM_ARGS, running_app  # beside this script

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from pages.ui import nav  # noqa: E402

DRAWN_JS = "() => !document.querySelector('[data-testid=stSkeleton],[data-testid=stSpinner]')"


def timeline(context, url: str, title: str) -> dict:
    page, marks = context.new_page(), {}
    t0 = time.perf_counter()

    def on_ws(ws):
        marks.setdefault("ws", time.perf_counter() - t0)
        ws.on("framereceived", lambda _: marks.__setitem__("last msg", time.perf_counter() - t0))

    page.on("websocket", on_ws)
    page.goto(url)
    page.get_by_role("heading", name=title).first.wait_for(state="visible")
    marks["h1"] = time.perf_counter() - t0
    page.wait_for_selector("[data-test-script-state='notRunning']")
    marks["idle"] = time.perf_counter() - t0
    page.wait_for_function(DRAWN_JS, polling=50)
    marks["drawn"] = time.perf_counter() - t0
    page.close()
    return marks


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pages", default=",".join(l.url_path for l in nav.PAGES))
    p.add_argument("--tabs", type=int, default=3)
    args = p.parse_args(argv)
    from playwright.sync_api import sync_playwright

    print(f"{'page':<15}{'tab':>4}{'ws':>7}{'last msg':>10}{'h1':>7}{'idle':>7}{'drawn':>7}  (s from goto)")
    for name in args.pages.split(","):
        lesson = nav.lesson(name)
        with open(os.devnull, "w") as log, running_app(log, 120) as (port, _), sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            context = browser.new_context()
            for tab in range(1, args.tabs + 1):
                m = timeline(context, f"http://127.0.0.1:{port}/{lesson.url_path}", lesson.title)
                print(f"{name:<15}{tab:>4}" + "".join(f"{m.get(k, float('nan')):>{w}.2f}" for k, w in
                                                      (("ws", 7), ("last msg", 10), ("h1", 7), ("idle", 7),
                                                       ("drawn", 7))), flush=True)
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
