"""A real `streamlit run` of the app on a free local port, and Debian's Chromium to open it.

Shared by `benchmarks/app_speed.py` (server memory) and `tests/test_browser.py` (every page in a real
browser), so both start, wait for and stop the server the same way.
"""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps dialling Google's hosts, which this offline
# machine refuses many times a second.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(port: int, server: subprocess.Popen, timeout: float = 60) -> None:
    """Return once the server answers /_stcore/health with "ok"; raise if it exits or takes too long."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {server.returncode} before it was healthy")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                if r.read().decode().strip() == "ok":
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"streamlit did not answer /_stcore/health with 'ok' within {timeout:.0f} s")


@contextlib.contextmanager
def running_app(log, timeout: float = 60, *, env: dict | None = None, options: tuple[str, ...] = (),
                entrypoint: str = "streamlit_app.py"):
    """`streamlit run streamlit_app.py` headless on a free port, healthy: yields (port, process).

    `env`: variables added to this process's environment (e.g. CNNVIZ_RUNS); `options`: more command-line
    options (e.g. "--runner.postScriptGC", "true" to measure Streamlit's default); `entrypoint`: another main
    file, relative to the checkout (Cloud's is deploy/cloud/streamlit_app.py), still run from the checkout."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", entrypoint, "--server.headless", "true",
         "--server.port", str(port), "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false",
         *options],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    try:
        wait_healthy(port, server, timeout)
        yield port, server
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
