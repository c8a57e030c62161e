"""A class on one server: a training job running, many tabs following it, and a new visitor arriving.

    python benchmarks/class_load.py [--sessions 30] [--epochs 10] [--hold 30] [--followers ws|chromium]
        [--post-script-gc] [--json]

A real `streamlit run` (its runs folder a temporary one) and headless Chromium (Debian's, via Playwright):
1. the first tab opens Train & compare and starts the form's default run (downsample_compare on
   Fashion-MNIST, all 60,000 images) for `--epochs` epochs;
2. `--sessions` more sessions open the first tab's share link, one after another, and stay open: each
   follows the running job, its panel polling the server every second. By default (`--followers ws`)
   they are websocket sessions without a browser (`ws_session.py`): in a class each tab renders in a
   student's own browser, so the server's load is their traffic, and 30 Chromium renderers on the
   server's own 2 cores would measure the renderers (the 2026-12-02 run: the server got 0.57 cores of
   2). `--followers chromium` opens them as Chromium tabs, as before; "ready" for a websocket session is
   its first script run finished;
3. once all are open, a new visitor (a fresh browser context) opens the home page, then every page of
   the app's page list, each in a new tab;
4. everything stays open `--hold` seconds more.
It prints when each page was ready (its title shown and its script run finished), the server's RSS (with
its children) sampled every 0.25 s, its CPU use, and how far the job got. `--post-script-gc` runs the
server with Streamlit's default `runner.postScriptGC = true` (a gc.collect(2) after every script run and
fragment rerun) instead of the app's config, for the before/after figure in docs/reliability.md.
Chromium runs on the same machine: on 2 cores its tabs compete with the server, so these are upper bounds.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from streamlit_server import CHROMIUM, CHROMIUM_ARGS, running_app  # beside this script
from ws_session import WsSession  # beside this script

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from pages.ui import nav  # noqa: E402

MB = 2**20
TRAIN = nav.lesson("train_compare")
HOME_TITLE = "cnnviz: see how standard CNNs are built"


def progress(msg: str) -> None:
    print(f"[class_load] {msg}", file=sys.stderr, flush=True)


class ServerMonitor(threading.Thread):
    """The server's RSS (its process tree) and CPU seconds, sampled until stopped."""

    def __init__(self, pid: int, every: float = 0.25):
        import psutil

        super().__init__(daemon=True)
        self.proc, self.every, self.stop = psutil.Process(pid), every, threading.Event()
        self.peak = self.last = 0
        self.cpu0 = self._cpu()

    def _tree(self):
        return [self.proc, *self.proc.children(recursive=True)]

    def _cpu(self) -> float:
        total = 0.0
        for p in self._tree():
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except Exception:  # noqa: BLE001 - a child that ended meanwhile
                pass
        return total

    def rss(self) -> int:
        total = 0
        for p in self._tree():
            try:
                total += p.memory_info().rss
            except Exception:  # noqa: BLE001
                pass
        return total

    def run(self):
        while not self.stop.is_set():
            self.last = self.rss()
            self.peak = max(self.peak, self.last)
            self.stop.wait(self.every)

    def cpu_seconds(self) -> float:
        return self._cpu() - self.cpu0


def wait_ready(page, title: str, timeout_s: float) -> float:
    """Seconds until the page shows `title` as its heading and its script run has finished."""
    t0 = time.perf_counter()
    page.get_by_role("heading", name=title).first.wait_for(state="visible", timeout=timeout_s * 1000)
    page.wait_for_selector("[data-test-script-state='notRunning']", timeout=timeout_s * 1000)
    return time.perf_counter() - t0


def open_page(context, url: str, title: str, timeout_s: float) -> tuple[object, dict]:
    page = context.new_page()
    t0 = time.perf_counter()
    visit = {"url": url.split("?")[0].rsplit("/", 1)[-1] or "home"}
    try:
        page.goto(url, timeout=timeout_s * 1000)
        wait_ready(page, title, timeout_s)
        visit["ready_s"] = round(time.perf_counter() - t0, 2)
        visit["exceptions"] = page.locator("[data-testid='stException']").count()
    except Exception as e:  # noqa: BLE001 - a page that never gets ready is the result
        visit["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"
    return page, visit


def start_job(page, epochs: int, timeout_s: float) -> str:
    """Set the form's epochs, click Train, and return the job id the page writes into its URL."""
    box = page.get_by_role("spinbutton", name="Epochs", exact=True)
    box.fill(str(epochs))
    box.press("Enter")
    page.wait_for_selector("[data-test-script-state='notRunning']", timeout=timeout_s * 1000)
    page.get_by_role("button", name="Train in the background").click()
    page.wait_for_function("() => location.search.includes('job=')", timeout=timeout_s * 1000)
    return parse_qs(urlsplit(page.url).query)["job"][0]


def summary(values: list[float]) -> dict:
    if not values:
        return {}
    return {"n": len(values), "min": min(values), "median": statistics.median(values), "max": max(values)}


class WsFollowers(threading.Thread):
    """`WsSession`s opened one after another in an asyncio loop of their own, kept polling until stopped."""

    def __init__(self, port: int, query_string: str, timeout_s: float):
        super().__init__(daemon=True)
        self.port, self.query_string, self.timeout_s = port, query_string, timeout_s
        self.loop = asyncio.new_event_loop()
        self.sessions: list[WsSession] = []
        self.tasks: list = []
        self.stop_event: asyncio.Event | None = None

    def run(self):
        asyncio.set_event_loop(self.loop)
        self.stop_event = asyncio.Event()
        self.loop.run_forever()

    async def _open(self) -> WsSession:
        session, ready = WsSession(self.port, TRAIN.url_path, self.query_string), asyncio.Event()
        self.sessions.append(session)
        self.tasks.append(asyncio.create_task(session.run(ready, self.stop_event, self.timeout_s)))
        await ready.wait()
        return session

    def open_one(self) -> dict:
        """Open one more session and wait until its first run has finished: its visit record."""
        while self.stop_event is None:
            time.sleep(0.01)
        s = asyncio.run_coroutine_threadsafe(self._open(), self.loop).result()
        return {"url": TRAIN.url_path, **({"error": s.error} if s.error else
                                          {"ready_s": round(s.ready_s, 2), "exceptions": s.exceptions,
                                           "shows_progress": "progress" in s.elements})}

    def close(self) -> int:
        """Stop every session; returns the fragment reruns the server finished for them all."""
        async def _close():
            self.stop_event.set()
            await asyncio.gather(*self.tasks, return_exceptions=True)
        asyncio.run_coroutine_threadsafe(_close(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        return sum(s.reruns for s in self.sessions)


def class_load(sessions: int, epochs: int, hold: float, timeout_s: float, post_script_gc: bool,
               followers_kind: str = "ws") -> dict:
    from playwright.sync_api import sync_playwright

    out: dict = {"sessions": sessions, "epochs": epochs, "post_script_gc": post_script_gc,
                 "followers_kind": followers_kind}
    options = ("--runner.postScriptGC", "true") if post_script_gc else ()
    with tempfile.TemporaryDirectory() as runs, open(os.devnull, "w") as log, \
            running_app(log, 120, env={"CNNVIZ_RUNS": runs}, options=options) as (port, server):
        monitor = ServerMonitor(server.pid)
        out["rss_idle_mb"] = round(monitor.rss() / MB)
        monitor.start()
        base = f"http://127.0.0.1:{port}"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                context = browser.new_context()
                owner, visit = open_page(context, f"{base}/{TRAIN.url_path}?part=Train", TRAIN.title, timeout_s)
                out["owner_visit"] = visit
                job_id = start_job(owner, epochs, timeout_s)
                out["job"] = job_id
                progress(f"job {job_id} started; opening {sessions} {followers_kind} sessions that follow it")
                followers, ws = [], None
                if followers_kind == "ws":
                    ws = WsFollowers(port, f"part=Train&job={job_id}", timeout_s)
                    ws.start()
                for i in range(sessions):
                    if ws is not None:
                        visit = ws.open_one()
                    else:
                        _, visit = open_page(context, f"{base}/{TRAIN.url_path}?part=Train&job={job_id}",
                                             TRAIN.title, timeout_s)
                    followers.append(visit)
                    progress(f"  tab {i + 1}: {visit}, server RSS {monitor.last / MB:.0f} MB")
                out["followers"] = followers
                out["rss_with_all_tabs_mb"] = round(monitor.rss() / MB)
                visitor = browser.new_context()  # a new student: a fresh browser, no cookies of the class's
                _, home = open_page(visitor, base, HOME_TITLE, timeout_s)
                out["new_visitor"] = {"home": home}
                for lesson in nav.PAGES:  # then every page, in the app's order, each in a new tab
                    _, out["new_visitor"][lesson.url_path] = open_page(visitor, f"{base}/{lesson.url_path}",
                                                                       lesson.title, timeout_s)
                progress(f"new visitor: {out['new_visitor']}")
                cpu0, t0 = monitor.cpu_seconds(), time.perf_counter()
                time.sleep(hold)
                out["server_cpu_share_while_holding"] = round((monitor.cpu_seconds() - cpu0) /
                                                              (time.perf_counter() - t0), 2)
                out["job_progress"] = owner.locator("[data-testid='stProgress']").first.inner_text(timeout=5000) \
                    if owner.locator("[data-testid='stProgress']").count() else "no progress bar (finished?)"
                if ws is not None:
                    out["follower_fragment_reruns"] = ws.close()
            finally:
                browser.close()
        monitor.stop.set()
        monitor.join()
        out["rss_peak_mb"] = round(monitor.peak / MB)
    ready = [v["ready_s"] for v in out.get("followers", []) if "ready_s" in v]
    out["follower_ready_s"] = summary(ready)
    out["followers_not_ready"] = sum("error" in v for v in out.get("followers", []))
    out["followers_showing_progress"] = sum(bool(v.get("shows_progress")) for v in out.get("followers", []))
    return out


def print_report(r: dict) -> None:
    print(f"{r['sessions']} {r.get('followers_kind', 'chromium')} sessions following one job ({r['epochs']} epochs), postScriptGC "
          f"{'on (Streamlit default)' if r['post_script_gc'] else 'off (the app config)'}")
    print(f"  first tab ready: {r['owner_visit']}")
    f = r["follower_ready_s"]
    if f:
        print(f"  follower tabs ready in: min {f['min']:.1f} s, median {f['median']:.1f} s, max {f['max']:.1f} s; "
              f"not ready: {r['followers_not_ready']}")
    nv = r.get("new_visitor", {})
    for name, v in nv.items():
        print(f"  new visitor, {name}: " + (f"ready in {v['ready_s']:.1f} s" if "ready_s" in v else v["error"]))
    print(f"  server RSS: idle {r['rss_idle_mb']} MB, with all tabs {r.get('rss_with_all_tabs_mb')} MB, "
          f"peak {r['rss_peak_mb']} MB; server CPU while holding: {r.get('server_cpu_share_while_holding')} cores")
    print(f"  job at the end: {r.get('job_progress')}")
    if r.get("followers_kind") == "ws":
        print(f"  followers whose page showed the job's progress bar: {r['followers_showing_progress']} "
              f"of {r['sessions']}")
    if "follower_fragment_reruns" in r:
        print(f"  fragment reruns the server finished for the followers: {r['follower_fragment_reruns']}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=30, help="tabs that follow the job")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--hold", type=float, default=30, help="seconds to keep everything open at the end")
    p.add_argument("--timeout", type=float, default=240, help="seconds a page may take to get ready")
    p.add_argument("--followers", choices=("ws", "chromium"), default="ws",
                   help="followers as websocket sessions (the server's load alone) or Chromium tabs")
    p.add_argument("--post-script-gc", action="store_true", help="Streamlit's default gc after every run")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    report = class_load(args.sessions, args.epochs, args.hold, args.timeout, args.post_script_gc, args.followers)
    if args.json:
        print(json.dumps(report))
    else:
        print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
