"""How fast and light the dashboard is for a new user: every page in real Chromium, cold and warm.

    python benchmarks/app_speed.py [--pages home,downsampling,...] [--repeat N] [--json]
    python benchmarks/app_speed.py --apptest            # also the AppTest part (1, 2 below)
    python benchmarks/app_speed.py --no-browser         # the AppTest part alone (quick)

The default output is issue 18's table, measured in headless Debian Chromium (Playwright) against a real
`streamlit run` of the app:
- cold: for each page, a fresh server is started (so the figure includes the server's first imports),
  and a new browser context opens the page;
- warm: a new tab in the cold visit's browser (issue 18's "warm = a new tab": the browser's cache of
  Streamlit's scripts kept, as for a student's second tab or a reload) opens the same page on the same
  server;
- new user: a new browser context (no cache at all: a student's first visit to a server that others
  have already warmed), reported beside warm without a target of its own;
- interactions: the fixed script of clicks in INTERACTIONS below, in the warm tab, each timed from the
  click until the script state is `notRunning` again and the DOM has had no change for QUIET_S (the figure
  is the time of the last DOM change); a control that is not on the page is reported as "not found";
- the server's RSS (with its children) after the page and its interactions, and, in one more pass, one
  server's RSS after every page in turn (section 3 below).
"Ready" = the page's `h1` (the lesson's title from `nav.PAGES`; any `h1` on Home) is visible, the script
state is `notRunning` and no `stSkeleton` or `stSpinner` remains, timed from the start of `page.goto`. A
shown `stException` fails the page (or the interaction). Targets: TARGETS below, printed beside every
figure with pass/fail. `--repeat N` takes the median of N rounds (each with fresh servers).

The AppTest part (`--apptest`, or alone with `--no-browser`):
1. Cold start of each page with Streamlit's AppTest, each page in a fresh Python process: the home
   page's first run (imports, dataset discovery), then a switch to the page (its first run), then a
   second run of that page (a rerun, caches warm). A missing page or one that raises is reported.
2. `cnnviz.features.compare_downsampling` on one Fashion-MNIST test image with a downsample_compare
   model (the shipped checkpoint if there is one, else an untrained model; the report says which).
3. (with the browser part) the resident memory of one `streamlit run` server (with its children) after
   headless Chromium has opened every page, beside a fresh `import torch, torchvision` and `import
   streamlit, plotly, torch`. The goal is under 1 GB on a CPU-only torch install; PyPI's Linux torch is the
   CUDA build, whose import alone is bigger, so the report says which build was measured.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from streamlit_server import CHROMIUM, CHROMIUM_ARGS, running_app  # beside this script

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "streamlit_app.py"
MB = 2**20
GOAL_MB = 1024
sys.path.insert(0, str(ROOT))
from pages.ui import nav  # noqa: E402  (the app's one page list)

# page name -> (file relative to the app, URL path), from the app's page list (pages/ui/nav.py).
PAGES = {"home": (None, ""), **{p.url_path: (p.path, p.url_path) for p in nav.PAGES}}
# The h1 each page must show to be ready: the lesson's title; None on Home (any h1).
TITLES = {"home": None, **{p.url_path: p.title for p in nav.PAGES}}

# Issue 18's targets (seconds, MB), printed beside each figure; never asserted by the tests.
TARGETS = {"cold_s": 3.0, "warm_s": 1.0, "interaction_s": 1.0, "rss_mb": GOAL_MB}

# ---- the fixed script of clicks, per page (edit here when a page changes) --------------------
# Each step: (what the report calls it, action, *arguments), run in order in the page's warm tab.
#   ("select", label, option)   open the selectbox labelled `label`, click the option (`option`: text the
#                               option's name contains, case-insensitive; or an int, the n-th option from 0)
#   ("tab", name)               click the tab (role=tab) whose name is `name` (`st.tabs`, bound to ?part=)
#   ("radio", label, option)    click the option named `option` of the radio group labelled `label`
#                               (`st.radio` and `st.segmented_control` are both role=radiogroup of role=radio)
#   ("button", name)            click the button named `name`
# A step whose control (or option) is not on the page is reported as "not found"; the next step still runs.
INTERACTIONS: dict[str, list[tuple]] = {
    "home": [],
    "train_compare": [
        ("open the Compare tab", "tab", "Compare"),
        ("pick the group 'Architectures on cifar10'", "select", "Shipped comparison group",
         "Architectures on cifar10"),
        ("click 'Compare this group'", "button", "Compare this group"),
    ],
    "downsampling": [
        ("dataset -> cifar10", "select", "Dataset", "cifar10"),
        ("test-set class -> cat", "select", "Test-set class", "cat"),
        ("difference: Method B -> Strided convolution", "select", "Method B", "Strided convolution"),
        ("open 'Is it shift-invariant?'", "tab", "Is it shift-invariant?"),
        ("open 'Trained with each method'", "tab", "Trained with each method"),
        ("open 'The lecture's 4x4 example'", "tab", "The lecture's 4x4 example"),
    ],
    "engineered": [
        ("dataset -> CIFAR-10", "radio", "Dataset", "CIFAR-10"),
        ("open 'Watch the filters learn'", "tab", "Watch the filters learn"),
        ("open 'Engineering vs CNN features'", "tab", "Engineering vs CNN features"),
        ("open 'One image through both'", "tab", "One image through both"),
    ],
    "architectures": [
        ("architecture -> vgg16", "select", "Architecture", "vgg16"),
        ("open 'Trained'", "tab", "Trained"),
        ("open 'Padding, stride and kernel size'", "tab", "Padding, stride and kernel size"),
        ("open '1x1 convolution instead of FC layers'", "tab", "1x1 convolution instead of FC layers"),
    ],
    "inside": [
        ("open 'Receptive field'", "tab", "Receptive field"),
        ("open 'Where it looks'", "tab", "Where it looks"),
        ("open 'Export as code'", "tab", "Export as code"),
        ("open 'Worked examples'", "tab", "Worked examples"),
        ("open 'One pixel'", "tab", "One pixel"),
    ],
}

# ---- 1. AppTest cold starts (one fresh process per page) -----------------------------------

def _exceptions(at) -> list[str]:
    return [str(e.message).splitlines()[0][:300] for e in at.exception]


def apptest_page(page: str, timeout: float) -> dict:
    """Runs in its own process: home's first run, then the page's first run and a rerun."""
    from streamlit.testing.v1 import AppTest

    out = {"page": page}
    t0 = time.perf_counter()
    at = AppTest.from_file(str(APP), default_timeout=timeout)
    try:
        at.run()
    except Exception as e:  # noqa: BLE001 - a timeout or crash is a result to report
        return {**out, "error": f"home: {type(e).__name__}: {e}"}
    out["home_first_run_s"] = time.perf_counter() - t0
    out["exceptions"] = _exceptions(at)
    if page == "home":
        t0 = time.perf_counter()
        at.run()
        out["rerun_s"] = time.perf_counter() - t0
        out["first_run_s"] = out["home_first_run_s"]
        return out
    path = PAGES[page][0]
    if not (ROOT / path).is_file():
        return {**out, "error": f"missing: {path} does not exist yet"}
    try:
        at.switch_page(path)
        t0 = time.perf_counter()
        at.run()
        out["first_run_s"] = time.perf_counter() - t0
        out["exceptions"] = _exceptions(at)
        t0 = time.perf_counter()
        at.run()
        out["rerun_s"] = time.perf_counter() - t0
        out["exceptions"] = sorted(set(out["exceptions"]) | set(_exceptions(at)))
    except Exception as e:  # noqa: BLE001 - reported, not raised: pages are written concurrently
        out["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
    return out


def progress(msg: str) -> None:
    print(f"[app_speed] {msg}", file=sys.stderr, flush=True)


def apptest_all(pages: list[str], timeout: float) -> list[dict]:
    rows = []
    for page in pages:
        progress(f"AppTest: {page} in a fresh process")
        cmd = [sys.executable, __file__, "--_apptest", page, "--timeout", str(timeout)]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if lines:
            rows.append(json.loads(lines[-1]))
        else:
            tail = " | ".join((proc.stderr or "").strip().splitlines()[-3:])
            rows.append({"page": page, "error": f"process exited {proc.returncode}: {tail[:400]}"})
        progress(f"  {json.dumps(rows[-1])}")
    return rows


# ---- 2. one feature-map comparison ---------------------------------------------------------

def feature_map_timing(repeats: int = 20) -> dict:
    import torch

    from cnnviz.data import load_dataset
    from cnnviz.device import configure_threads
    from cnnviz.features import compare_downsampling
    from cnnviz.models import build_model

    configure_threads()
    ck_path = ROOT / "checkpoints" / "fashion-mnist-downsample_compare-max.pt"
    if ck_path.is_file():
        from cnnviz.checkpoints import load_checkpoint

        model, source = load_checkpoint(ck_path).model, f"shipped checkpoint {ck_path.name}"
    else:
        torch.manual_seed(0)
        model, source = build_model("downsample_compare", (1, 28, 28)).eval(), "untrained model (no shipped checkpoint)"
    data = load_dataset("fashion-mnist", download=False)
    x = data.normalize(data.test_x[:1])  # (1, 1, 28, 28)
    t0 = time.perf_counter()
    compare_downsampling(model, x, "conv1")
    first = time.perf_counter() - t0
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        compare_downsampling(model, x, "conv1")
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    # CPU time beside wall time: on a busy machine the wall time mostly measures the queue for a core.
    return {"model": source, "image": f"{data.name} test image 0", "layer": "conv1",
            "first_call_ms": first * 1e3, "median_ms": statistics.median(times) * 1e3,
            "median_cpu_ms": statistics.median(cpu) * 1e3, "repeats": repeats}


# ---- 3. a real server in a real browser -----------------------------------------------------

def tree_rss(pid: int) -> int:
    import psutil

    proc = psutil.Process(pid)
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            pass
    return total


def import_rss(code: str) -> float:
    """RSS (MB) of a fresh Python process right after running `code` (its imports)."""
    probe = f"{code}\nimport psutil; print(psutil.Process().memory_info().rss)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    return int(out.stdout.strip().splitlines()[-1]) / MB


def baseline_imports() -> dict:
    """RSS (MB) of fresh processes that only import torch (+ torchvision where installed: the pages run
    without it, so a CPU-only install of torch alone is measured too) and streamlit, plotly, torch."""
    import importlib.util

    first = "import torch, torchvision" if importlib.util.find_spec("torchvision") else "import torch"
    return {code: import_rss(code) for code in (first, "import streamlit, plotly, torch")}


def server_memory(pages: list[str], timeout: float) -> dict:
    """Start `streamlit run`, open each page in headless Chromium, then read the server's memory."""
    from playwright.sync_api import sync_playwright

    out = {"visits": []}
    t0 = time.perf_counter()
    with open(os.devnull, "w") as log, tempfile.TemporaryDirectory(prefix="cnnviz-app-speed-runs-") as runs, \
            running_app(log, timeout, env={"CNNVIZ_RUNS": runs}) as (port, server):
        out["port"] = port
        out["server_healthy_s"] = time.perf_counter() - t0
        out["rss_idle_mb"] = tree_rss(server.pid) / MB
        peak = out["rss_idle_mb"]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                for name in pages:
                    progress(f"Chromium: opening {name}")
                    visit = {"page": name}
                    t1 = time.perf_counter()
                    try:
                        page.goto(f"http://127.0.0.1:{port}/{PAGES[name][1]}", timeout=timeout * 1000)
                        # "initial" until the first script run, so this waits for a finished run.
                        page.wait_for_selector("[data-test-script-state='notRunning']",
                                               timeout=timeout * 1000)
                        visit["rendered_s"] = time.perf_counter() - t1
                        visit["exceptions"] = page.locator("[data-testid='stException']").count()
                    except Exception as e:  # noqa: BLE001 - a page that never settles is a result
                        visit["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
                    visit["server_rss_mb"] = tree_rss(server.pid) / MB
                    peak = max(peak, visit["server_rss_mb"])
                    out["visits"].append(visit)
                    progress(f"  {json.dumps(visit)}")
            finally:
                browser.close()
        time.sleep(1.0)  # let the last run's temporaries go
        out["rss_after_all_pages_mb"] = tree_rss(server.pid) / MB
        out["rss_peak_sampled_mb"] = max(peak, out["rss_after_all_pages_mb"])
    return out


def torch_build() -> dict:
    import torch

    return {"torch": torch.__version__, "cuda_build": torch.version.cuda is not None,
            "cuda_available": torch.cuda.is_available()}


# ---- 4. issue 18's table: every page in real Chromium, cold and warm, and the clicks ---------

QUIET_S = 0.5    # an interaction has settled once the DOM has not changed for this long
RERUN_GRACE_S = 2.0  # a click that starts no rerun within this long is timed by its DOM changes alone
BUSY = "[data-testid='stSkeleton'], [data-testid='stSpinner']"
# Ready: a visible h1 (with the lesson's title, where one is given), the script run finished, nothing loading.
READY_JS = """(title) => {
  const h1 = [...document.querySelectorAll('h1')].some(h => h.getClientRects().length > 0
      && getComputedStyle(h).visibility !== 'hidden' && (!title || h.textContent.includes(title)));
  const app = document.querySelector('[data-test-script-state]');
  return h1 && !!app && app.getAttribute('data-test-script-state') === 'notRunning'
      && !document.querySelector("BUSY");
}""".replace("BUSY", BUSY)
# Records the time of every DOM change and every script-state change, and the first pointerdown after arming.
OBSERVE_JS = """() => {
  if (window.__cnnviz) return;
  const cv = window.__cnnviz = {last: performance.now(), t0: performance.now(), down: null, states: []};
  new MutationObserver(ms => {
    const now = performance.now();
    cv.last = now;
    for (const m of ms) if (m.type === 'attributes' && m.attributeName === 'data-test-script-state')
      cv.states.push(m.target.getAttribute('data-test-script-state'));
  }).observe(document.documentElement, {subtree: true, childList: true, attributes: true, characterData: true});
  document.addEventListener('pointerdown', () => { if (cv.down === null) cv.down = performance.now(); }, true);
}"""
ARM_JS = "() => { const cv = window.__cnnviz; cv.t0 = performance.now(); cv.down = null; cv.states = []; }"
SETTLED_JS = """([quiet, grace]) => {
  const cv = window.__cnnviz, now = performance.now();
  const app = document.querySelector('[data-test-script-state]');
  if (!app || app.getAttribute('data-test-script-state') !== 'notRunning' || document.querySelector("BUSY"))
    return false;
  const start = cv.down === null ? cv.t0 : cv.down;
  if (!cv.states.some(s => s !== 'notRunning') && now - start < grace) return false;
  return now - cv.last >= quiet;
}""".replace("BUSY", BUSY)
RESULT_JS = """() => { const cv = window.__cnnviz, start = cv.down === null ? cv.t0 : cv.down;
  return {s: Math.max(0, cv.last - start) / 1000, rerun: cv.states.some(s => s !== 'notRunning')}; }"""


def _short(e: Exception) -> str:
    return f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"


def _exceptions_shown(page) -> list[str]:
    boxes = page.locator("[data-testid='stException']")
    return [" ".join(t.split())[:200] for t in boxes.all_inner_texts()]


def open_ready(context, url: str, title: str | None, timeout: float) -> tuple[object, dict]:
    """A new tab in `context` opens `url`; seconds from the start of page.goto until ready (READY_JS)."""
    page = context.new_page()
    visit = {}
    t0 = time.perf_counter()
    try:
        page.goto(url, timeout=timeout * 1000)
        page.wait_for_function(READY_JS, arg=title, timeout=timeout * 1000, polling=50)
        visit["ready_s"] = time.perf_counter() - t0
    except Exception as e:  # noqa: BLE001 - a page that never gets ready is the result
        visit["error"] = _short(e)
    visit["exceptions"] = _exceptions_shown(page)
    return page, visit


def _visible(locator):
    return locator.filter(visible=True).first


def _control(page, action: str, args: tuple, find_s: float):
    """(the locator to click, None), or (None, what is missing) when the control or its option is not on the page."""
    def present(loc):
        try:
            loc.wait_for(state="visible", timeout=find_s * 1000)
            return loc
        except Exception:  # noqa: BLE001 - absent: "not found"
            return None

    if action in ("tab", "button"):
        found = present(_visible(page.get_by_role(action, name=args[0], exact=True)))
        return found, None if found else f"no {action} {args[0]!r}"
    if action == "radio":
        group = _visible(page.get_by_role("radiogroup", name=args[0], exact=True))
        found = present(group.get_by_role("radio", name=args[1], exact=True))
        return found, None if found else f"no option {args[1]!r} in the radio group {args[0]!r}"
    if action == "select":
        box = present(_visible(page.get_by_role("combobox", name=args[0], exact=True)))
        if box is None:
            return None, f"no selectbox {args[0]!r}"
        # Open the list (not timed: the choice is the click that reruns the page). Typing the option's text
        # filters the list, so the option is rendered however long the list is; an index opens it whole.
        option = args[1]
        box.click()
        if isinstance(option, int):
            box.press("ArrowDown")
            loc = page.get_by_role("option").nth(option)
        else:
            box.fill(option)
            loc = page.get_by_role("option").filter(has_text=re.compile(re.escape(option), re.IGNORECASE)).first
        found = present(loc)
        if found is None:
            box.press("Escape")  # close the list again for the next step
            return None, f"no option {option!r} in {args[0]!r}"
        return found, None
    raise ValueError(f"unknown action {action!r} (choose from select, tab, radio, button)")


def interact(page, step: tuple, timeout: float, find_s: float = 5.0) -> dict:
    """One step of INTERACTIONS: find its control, click it, time until settled (SETTLED_JS)."""
    name, action, *args = step
    row = {"interaction": name, "action": action, "args": list(args)}
    try:
        page.evaluate(OBSERVE_JS)
        target, missing = _control(page, action, tuple(args), find_s)
    except Exception as e:  # noqa: BLE001 - reported, the script goes on
        return {**row, "status": "error", "error": _short(e)}
    if target is None:
        return {**row, "status": "not found", "error": missing}
    try:
        page.evaluate(ARM_JS)
        target.click(timeout=find_s * 1000)
        page.wait_for_function(SETTLED_JS, arg=[QUIET_S * 1000, RERUN_GRACE_S * 1000], timeout=timeout * 1000,
                               polling=50)
        result = page.evaluate(RESULT_JS)
        row.update(status="ok", seconds=result["s"], rerun=result["rerun"])
    except Exception as e:  # noqa: BLE001 - never settled, or the click failed
        row.update(status="error", error=_short(e))
    shown = _exceptions_shown(page)
    if shown:
        row.update(status="exception", exceptions=shown)
    return row


def browser_page(browser, name: str, timeout: float, runs_dir: str) -> dict:
    """One page on its own fresh server: cold visit, warm visit (a new tab of the same browser), a new user's
    visit (a new context), the warm tab's clicks, the server's RSS."""
    url_path = PAGES[name][1]
    out = {"page": name}
    t0 = time.perf_counter()
    with open(os.devnull, "w") as log, running_app(log, timeout, env={"CNNVIZ_RUNS": runs_dir}) as (port, server):
        out["server_healthy_s"] = time.perf_counter() - t0
        url = f"http://127.0.0.1:{port}/{url_path}"
        first = browser.new_context()
        try:
            for visit in ("cold", "warm"):  # the warm tab shares the cold tab's browser (its cache)
                page, v = open_ready(first, url, TITLES[name], timeout)
                out[visit] = v
                if visit == "warm" and "ready_s" in v:
                    out["interactions"] = [interact(page, step, timeout) for step in INTERACTIONS.get(name, [])]
                    for row in out["interactions"]:
                        progress(f"  {name}: {json.dumps(row)}")
                out[f"rss_after_{visit}_mb"] = tree_rss(server.pid) / MB
        finally:
            first.close()
        fresh = browser.new_context()
        try:
            _, out["new_user"] = open_ready(fresh, url, TITLES[name], timeout)
        finally:
            fresh.close()
        out.setdefault("interactions", [])
    out["rss_mb"] = max(out["rss_after_cold_mb"], out["rss_after_warm_mb"])
    return out


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def combine_rounds(rounds: list[dict]) -> dict:
    """N rounds of one page -> the medians (seconds), the largest RSS, every error and exception seen."""
    first = rounds[0]
    row = {"page": first["page"], "rounds": len(rounds)}
    for visit in ("cold", "warm", "new_user"):
        times = [r[visit]["ready_s"] for r in rounds if "ready_s" in r.get(visit, {})]
        row[f"{visit}_s"] = _median(times)
        errors = [r[visit]["error"] for r in rounds if "error" in r.get(visit, {"error": "not opened"})]
        shown = sorted({e for r in rounds for e in r.get(visit, {}).get("exceptions", [])})
        if errors:
            row[f"{visit}_error"] = errors[0]
        if shown:
            row[f"{visit}_exceptions"] = shown
    rss = [r["rss_mb"] for r in rounds if r.get("rss_mb") is not None]
    row["rss_mb"] = max(rss) if rss else None
    steps = []
    for i, step in enumerate(INTERACTIONS.get(first["page"], [])):
        seen = [r["interactions"][i] for r in rounds if i < len(r["interactions"])]
        times = [s["seconds"] for s in seen if s["status"] == "ok"]
        bad = [s for s in seen if s["status"] != "ok"]
        steps.append({"interaction": step[0], "seconds": _median(times),
                      "status": bad[0]["status"] if bad else "ok" if seen else "not run",
                      **({"detail": bad[0].get("error") or "; ".join(bad[0].get("exceptions", []))} if bad else {})})
    row["interactions"] = steps
    return row


def verdicts(row: dict) -> list[str]:
    """What fails in a combined row (empty: every figure under its target)."""
    failed = []
    for visit in ("cold", "warm"):
        t = row.get(f"{visit}_s")
        if row.get(f"{visit}_error") or row.get(f"{visit}_exceptions") or t is None:
            failed.append(f"{visit} error")
        elif t >= TARGETS[f"{visit}_s"]:
            failed.append(visit)
    if row["rss_mb"] is None:
        failed.append("RSS not read")
    elif row["rss_mb"] >= TARGETS["rss_mb"]:
        failed.append("RSS")
    slow = sum(s["status"] == "ok" and s["seconds"] >= TARGETS["interaction_s"] for s in row["interactions"])
    other = sum(s["status"] != "ok" for s in row["interactions"])
    if slow:
        failed.append(f"{slow} slow interaction(s)")
    if other:
        failed.append(f"{other} interaction(s) not found or failed")
    return failed


FLOOR_APP = 'import streamlit as st\nst.title("A two-line app")\nst.write("Streamlit alone")\n'


def streamlit_floor(browser, timeout: float, visits: int = 3) -> dict:
    """What any page pays: a two-line Streamlit app, served and opened the same way (after one first visit:
    new tabs of that browser, as warm; then new contexts, as a new user); the medians are the floors under
    the warm and new-user figures of every page."""
    with tempfile.TemporaryDirectory(prefix="cnnviz-floor-") as folder, open(os.devnull, "w") as log:
        app = Path(folder) / "floor_app.py"
        app.write_text(FLOOR_APP)
        with running_app(log, timeout, entrypoint=str(app)) as (port, _):
            url, times, new_user = f"http://127.0.0.1:{port}/", [], []
            first = browser.new_context(viewport={"width": 1440, "height": 900})
            try:
                for _ in range(visits + 1):
                    times.append(open_ready(first, url, None, timeout)[1].get("ready_s"))
            finally:
                first.close()
            for _ in range(visits):
                context = browser.new_context(viewport={"width": 1440, "height": 900})
                try:
                    new_user.append(open_ready(context, url, None, timeout)[1].get("ready_s"))
                finally:
                    context.close()
    warm = [t for t in times[1:] if t is not None]
    fresh = [t for t in new_user if t is not None]
    return {"first_s": times[0], "warm_s": _median(warm) if warm else None,
            "new_user_s": _median(fresh) if fresh else None, "visits": visits}


def browser_table(pages: list[str], timeout: float, repeat: int) -> dict:
    """Issue 18's table: `repeat` rounds, each page on a fresh server; one Chromium for all of them."""
    from playwright.sync_api import sync_playwright

    raw: dict[str, list[dict]] = {p: [] for p in pages}
    with sync_playwright() as p, tempfile.TemporaryDirectory(prefix="cnnviz-app-speed-runs-") as runs_dir:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for r in range(repeat):
                for name in pages:
                    progress(f"Chromium: {name}, round {r + 1} of {repeat}, on a fresh server")
                    try:
                        raw[name].append(browser_page(browser, name, timeout, runs_dir))
                    except Exception as e:  # noqa: BLE001 - e.g. the server never got healthy
                        raw[name].append({"page": name, "cold": {"error": _short(e)}, "warm": {"error": "not opened"},
                                          "interactions": [], "rss_mb": None})
                    progress(f"  {json.dumps({k: v for k, v in raw[name][-1].items() if k != 'interactions'})}")
            progress("Chromium: Streamlit's own floor (a two-line app)")
            try:
                floor = streamlit_floor(browser, timeout)
            except Exception as e:  # noqa: BLE001 - the floor is context, not a page's result
                floor = {"error": _short(e)}
        finally:
            browser.close()
    rows = [combine_rounds(raw[name]) for name in pages]
    for row in rows:
        row["failed"] = verdicts(row)
        row["pass"] = not row["failed"]
    return {"rows": rows, "targets": TARGETS, "repeat": repeat, "quiet_s": QUIET_S, "raw": raw, "floor": floor}


def _cell(value: float | None, target: float, fmt: str, error: bool = False) -> str:
    if error or value is None:
        return "error"
    return f"{value:{fmt}} {'ok' if value < target else 'FAIL'}"


def print_table(b: dict) -> None:
    t = b["targets"]
    print(f"\nEvery page in Chromium (issue 18), {'median of ' + str(b['repeat']) + ' rounds' if b['repeat'] > 1 else 'one round'}"
          f"; cold = first visit on a fresh server, warm = a new tab of that browser, new user = a new "
          f"browser context (no cache) on the same server")
    head = (f"  {'page':<15}{'cold s':>13}{'warm s':>13}{'new user s':>12}{'server RSS MB':>16}  result")
    targets = f"  {'(target)':<15}{'< ' + format(t['cold_s'], 'g'):>13}{'< ' + format(t['warm_s'], 'g'):>13}" \
              f"{'-':>12}{'< ' + format(t['rss_mb'], 'g'):>16}"
    print(head)
    print(targets)
    for row in b["rows"]:
        cold = _cell(row["cold_s"], t["cold_s"], ".2f", bool(row.get("cold_error") or row.get("cold_exceptions")))
        warm = _cell(row["warm_s"], t["warm_s"], ".2f", bool(row.get("warm_error") or row.get("warm_exceptions")))
        rss = _cell(row["rss_mb"], t["rss_mb"], ".0f")
        fresh = f"{row['new_user_s']:.2f}" if row.get("new_user_s") is not None else "error"
        result = "pass" if row["pass"] else "FAIL: " + ", ".join(row["failed"])
        print(f"  {row['page']:<15}{cold:>13}{warm:>13}{fresh:>12}{rss:>16}  {result}")
        for visit in ("cold", "warm"):
            for k in (f"{visit}_error", f"{visit}_exceptions"):
                if row.get(k):
                    print(f"  {'':<15}{visit}: {row[k]}")
    print(f"\nInteractions (in the warm tab; from the click until notRunning and no DOM change for {b['quiet_s']:g} s)")
    print(f"  {'page':<15}{'interaction':<48}{'s':>8}  {'target':<8}result")
    for row in b["rows"]:
        for s in row["interactions"]:
            fig = f"{s['seconds']:.2f}" if s["seconds"] is not None else "-"
            res = ("pass" if s["seconds"] < t["interaction_s"] else "FAIL") if s["status"] == "ok" else s["status"]
            detail = f" ({s['detail']})" if s.get("detail") else ""
            print(f"  {row['page']:<15}{s['interaction'][:47]:<48}{fig:>8}  < {t['interaction_s']:g} s   {res}{detail}")
        if not row["interactions"]:
            print(f"  {row['page']:<15}(none in the script)")
    n_fail = sum(not r["pass"] for r in b["rows"])
    print(f"\n  {len(b['rows']) - n_fail} of {len(b['rows'])} page(s) pass every target")
    f = b.get("floor") or {}
    if f.get("warm_s") is not None:
        print(f"  Streamlit's own floor, a two-line app served the same way: first visit {f['first_s']:.2f} s, "
              f"warm {f['warm_s']:.2f} s (median of {f['visits']} new tabs), new user "
              f"{f['new_user_s']:.2f} s (median of {f['visits']} new contexts)")
    elif f.get("error"):
        print(f"  Streamlit's own floor: {f['error']}")


# ---- the report ----------------------------------------------------------------------------

def machine_line(m: dict) -> str:
    return (f"machine: {m['cpu']}, {m['cpus_usable']} CPUs usable, torch {m['torch']} "
            f"({'CUDA' if m['cuda_build'] else 'CPU-only'} build), streamlit {m['streamlit']}, "
            f"load average {m['load_average']}, {m['date']}")


def print_report(r: dict) -> None:
    m = r["machine"]
    print(machine_line(m))
    if "browser" in r:
        if "error" in r["browser"]:
            print(f"\nbrowser table: {r['browser']['error']}")
        else:
            print_table(r["browser"])
    if "pages" in r:
        print("\npage cold starts (AppTest, a fresh process per page):")
        print(f"  {'page':<15}{'home 1st run s':>15}{'page 1st run s':>16}{'rerun s':>9}  notes")
    for row in r.get("pages", []):
        notes = row.get("error") or ("; ".join(row.get("exceptions", [])) or "ok")
        f = lambda k: f"{row[k]:.2f}" if k in row else "-"
        print(f"  {row['page']:<15}{f('home_first_run_s'):>15}{f('first_run_s'):>16}{f('rerun_s'):>9}  {notes}")
    fm = r.get("feature_map")
    if fm:
        if "error" in fm:
            print(f"\nfeature-map comparison: {fm['error']}")
        else:
            print(f"\nfeature-map comparison ({fm['model']}, {fm['image']}, {fm['layer']}): first call "
                  f"{fm['first_call_ms']:.1f} ms, then median {fm['median_ms']:.1f} ms "
                  f"({fm['median_cpu_ms']:.1f} ms of CPU) over {fm['repeats']}")
    s = r.get("server")
    if s:
        print("\none server, every page in turn (streamlit run + headless Chromium):")
        if "error" in s:
            print(f"  {s['error']}")
        else:
            print(f"  healthy after {s['server_healthy_s']:.1f} s, RSS idle {s['rss_idle_mb']:.0f} MB")
            for v in s["visits"]:
                state = v.get("error") or f"rendered in {v['rendered_s']:.1f} s, {v['exceptions']} exception(s) shown"
                print(f"  {v['page']:<15} {state}; server RSS {v['server_rss_mb']:.0f} MB")
            unfinished = sum("error" in v for v in s["visits"])
            verdict = (f"not judged, {unfinished} page(s) did not finish (raise --timeout on a busy machine)"
                       if unfinished else "met" if s["rss_after_all_pages_mb"] < GOAL_MB else "NOT met")
            print(f"  after every page: {s['rss_after_all_pages_mb']:.0f} MB (peak sampled "
                  f"{s['rss_peak_sampled_mb']:.0f} MB); goal < {GOAL_MB} MB on a CPU-only install: {verdict} "
                  f"here with the {'CUDA' if m['cuda_build'] else 'CPU-only'} build")
        b = r.get("baselines", {})
        for k, v in b.items():
            print(f"  baseline: fresh `python -c \"{k}\"`: {v:.0f} MB")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--pages", default=",".join(PAGES), help=f"comma-separated, from: {', '.join(PAGES)}")
    p.add_argument("--repeat", type=int, default=1, help="rounds of the browser table (fresh servers each); "
                   "the median is printed")
    p.add_argument("--apptest", action="store_true",
                   help="also the AppTest cold starts and one feature-map comparison (parts 1 and 2)")
    p.add_argument("--no-browser", action="store_true",
                   help="only the AppTest part: no server, Chromium or import baselines (the quick mode)")
    p.add_argument("--no-one-server", action="store_true",
                   help="skip the pass of one server through every page (part 3) and the import baselines")
    p.add_argument("--timeout", type=float, default=120, help="seconds a page or an interaction may take")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--_apptest", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.page_list = [x.strip() for x in args.pages.split(",") if x.strip()]
    unknown = [x for x in args.page_list if x not in PAGES]
    if unknown:
        p.error(f"unknown page(s) {', '.join(unknown)}; choose from {', '.join(PAGES)}")
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args._apptest:
        print(json.dumps(apptest_page(args._apptest, args.timeout)))
        return 0
    import streamlit

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from train_speed import cpu_model  # noqa: E402 - the sibling script, for one CPU-name reader

    from cnnviz.device import usable_cpus

    machine = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cpu": cpu_model(), "cpus_usable": usable_cpus(),
               "streamlit": streamlit.__version__, "load_average": [round(x, 2) for x in os.getloadavg()],
               **torch_build()}
    report = {"machine": machine}
    if not args.no_browser:
        try:
            report["browser"] = browser_table(args.page_list, args.timeout, args.repeat)
        except Exception as e:  # noqa: BLE001 - no Chromium / Playwright: say so, keep the rest
            report["browser"] = {"error": _short(e)}
    if args.apptest or args.no_browser:
        report["pages"] = apptest_all(args.page_list, args.timeout)
        progress("feature-map comparison")
        try:
            report["feature_map"] = feature_map_timing()
        except Exception as e:  # noqa: BLE001 - e.g. no Fashion-MNIST on this machine
            report["feature_map"] = {"error": f"{type(e).__name__}: {e}"}
    if not args.no_browser and not args.no_one_server:
        progress("one server through every page")
        try:
            report["server"] = server_memory(args.page_list, args.timeout)
        except Exception as e:  # noqa: BLE001
            report["server"] = {"error": f"{type(e).__name__}: {e}"}
        progress("import baselines")
        report["baselines"] = baseline_imports()
        report["goal_mb"] = GOAL_MB
    report["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    if args.json:
        print(json.dumps(report))
    else:
        print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
