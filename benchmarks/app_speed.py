"""How light the dashboard is: page start-up times, one feature-map comparison, a real server's memory.

    python benchmarks/app_speed.py [--pages home,train_compare,...] [--no-browser] [--json]

1. Cold start of each page with Streamlit's AppTest, each page in a fresh Python process: the home
   page's first run (imports, dataset discovery), then a switch to the page (its first run), then a
   second run of that page (a rerun, caches warm). A missing page or one that raises is reported.
2. `cnnviz.features.compare_downsampling` on one Fashion-MNIST test image with a downsample_compare
   model (the shipped checkpoint if there is one, else an untrained model; the report says which).
3. The resident memory of a real `streamlit run` server (with its children) after headless Chromium
   has opened every page, beside a fresh `import torch, torchvision` and `import streamlit, plotly,
   torch`. The goal is under 1 GB on a CPU-only torch install; PyPI's Linux torch is the CUDA build,
   whose import alone is bigger, so the report says which build was measured.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
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
    with open(os.devnull, "w") as log, running_app(log, timeout) as (port, server):
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


# ---- the report ----------------------------------------------------------------------------

def print_report(r: dict) -> None:
    m = r["machine"]
    print(f"machine: {m['cpu']}, {m['cpus_usable']} CPUs usable, torch {m['torch']} "
          f"({'CUDA' if m['cuda_build'] else 'CPU-only'} build), streamlit {m['streamlit']}, "
          f"load average {m['load_average']}, {m['date']}")
    print("\npage cold starts (AppTest, a fresh process per page):")
    print(f"  {'page':<15}{'home 1st run s':>15}{'page 1st run s':>16}{'rerun s':>9}  notes")
    for row in r["pages"]:
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
        print("\nreal server (streamlit run + headless Chromium):")
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
    p.add_argument("--no-browser", action="store_true",
                   help="skip the real server, Chromium and the import baselines (the quick mode)")
    p.add_argument("--timeout", type=float, default=120, help="seconds a page may take to run")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--_apptest", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.page_list = [x.strip() for x in args.pages.split(",") if x.strip()]
    unknown = [x for x in args.page_list if x not in PAGES]
    if unknown:
        p.error(f"unknown page(s) {', '.join(unknown)}; choose from {', '.join(PAGES)}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args._apptest:
        print(json.dumps(apptest_page(args._apptest, args.timeout)))
        return 0
    sys.path.insert(0, str(ROOT))
    import streamlit

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from train_speed import cpu_model  # noqa: E402 - the sibling script, for one CPU-name reader

    from cnnviz.device import usable_cpus

    machine = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cpu": cpu_model(), "cpus_usable": usable_cpus(),
               "streamlit": streamlit.__version__, "load_average": [round(x, 2) for x in os.getloadavg()],
               **torch_build()}
    report = {"machine": machine, "pages": apptest_all(args.page_list, args.timeout)}
    progress("feature-map comparison")
    try:
        report["feature_map"] = feature_map_timing()
    except Exception as e:  # noqa: BLE001 - e.g. no Fashion-MNIST on this machine
        report["feature_map"] = {"error": f"{type(e).__name__}: {e}"}
    if not args.no_browser:
        progress("starting a real streamlit server")
        try:
            report["server"] = server_memory(args.page_list, args.timeout)
        except Exception as e:  # noqa: BLE001 - no Chromium / Playwright: say so, keep the rest
            report["server"] = {"error": f"{type(e).__name__}: {e}"}
        progress("import baselines")
        report["baselines"] = baseline_imports()
        report["goal_mb"] = GOAL_MB
    print(json.dumps(report) if args.json else "", end="\n" if args.json else "")
    if not args.json:
        print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
