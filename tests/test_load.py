"""Many users at once: simultaneous sessions through the two heaviest pages render without an exception
and share one copy of each dataset and model (Streamlit Community Cloud gives ALL viewers of the app one
process of about 1 GB).

Each session is its own AppTest (its own session state, widgets and script runs) in its own thread, all
in this one process, like the sessions of one Streamlit server. One session runs first and fills the
process-wide caches; then N sessions run at the same time. The proof that they share is twofold:
no dataset is decoded and no checkpoint is loaded again while the N sessions run (counted), and the
process's peak memory grows by far less than N copies of what one session loaded.
"""
from __future__ import annotations

import contextlib
import gc
import json
import os
import threading
import time
import traceback
from pathlib import Path

import psutil
import pytest

from pages.ui import nav

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
N = 10
TIMEOUT = 900  # seconds per script run: N sessions share 2 CPU cores
PAGES = tuple(nav.lesson(u).path for u in ("train_compare", "downsampling"))


def _missing(reason: str):
    """Under CI the pages and the shipped checkpoints are in the repository: missing is a failure."""
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def _shipped_downsampling_runs() -> list[str]:
    from cnnviz import shipped

    return [r.filename for r in shipped.runs_of_group("downsampling", "fashion-mnist") if r.path.exists()]


def _session(runs: list[str]) -> dict:
    """One user: the comparison of the shipped downsampling runs, then the feature-map page."""
    from streamlit.testing.v1 import AppTest

    out = {"errors": [], "charts": {}, "seconds": {}}
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=TIMEOUT)
    for page in PAGES:
        t0 = time.perf_counter()
        at.query_params.clear()
        if page.endswith("train_compare.py"):
            at.query_params["part"] = "Compare"
            at.query_params["runs"] = ",".join(runs)
        at.switch_page(page).run()
        out["seconds"][page] = round(time.perf_counter() - t0, 1)
        out["errors"] += [f"{page}: exception {e.value}" for e in at.exception]
        out["charts"][page] = len(at.get("plotly_chart"))
        if not at.title:
            out["errors"].append(f"{page}: no title")
    return out


class _Counter:
    """Counts calls of a module function (the pages reach it through ui's caches, or not)."""

    def __init__(self, monkeypatch, module, name):
        self.calls, self.args, self.returned, real = 0, [], [], getattr(module, name)
        lock = threading.Lock()

        def counted(*args, **kwargs):
            value = real(*args, **kwargs)
            with lock:
                self.calls += 1
                self.args.append(args)
                self.returned.append(value)
            return value

        monkeypatch.setattr(module, name, counted)


class _PeakRSS(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self.proc, self.peak, self.stop = psutil.Process(), 0, threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            self.stop.wait(0.05)


def _rss() -> int:
    gc.collect()
    return psutil.Process().memory_info().rss


@pytest.fixture
def threads_safe_apptest(monkeypatch):
    """Let AppTests run in several threads at once (a fix of the test harness, not of the app).

    AppTest keeps its mock Runtime in a class attribute and sets it back to None after every run, so
    one session finishing would pull the runtime from under another session's running script
    ("Runtime hasn't been created!"). Between runs, `Runtime.instance()` falls back to a mock like
    AppTest's own.

    AppTest also turns the config option `global.appTest` on around each run by patching the
    process-wide `config.get_option` (unittest.mock.patch). Overlapping runs undo each other's patch:
    a run that started first and ends first restores the real getter while a later run is still drawing
    widgets, whose `format_func`s then go unrecorded, and AppTest fails reading them back (CI, twice:
    "KeyError: '$$ID-...-run'" from `ss[TESTING_KEY][self.id]`; reproduced with two scripts). Here the
    option is on for the whole test and AppTest's per-run patch is a no-op.

    AppTest also compiles the scripts with a new ScriptCache per run, which a server does once (compiling
    in several threads at once trips CPython 3.11.7's "AST constructor recursion depth mismatch"). Here,
    as on a server, all sessions share one ScriptCache. (AppTest also resets Streamlit's legacy pages/
    mode before every run; the pages no longer read that flag: `pages.ui.nav.header` knows from its own
    context whether the page runs inside the app's navigation, so sessions flipping it cannot matter.)
    """
    from unittest.mock import MagicMock

    from streamlit import config
    from streamlit.runtime.scriptrunner.script_cache import ScriptCache
    from streamlit.testing.v1 import app_test
    from streamlit.testing.v1.util import build_mock_config_get_option
    from streamlit.runtime import Runtime
    from streamlit.runtime.caching.storage.dummy_cache_storage import MemoryCacheStorageManager
    from streamlit.runtime.dataframe_source_manager import DataframeSourceManager
    from streamlit.runtime.media_file_manager import MediaFileManager
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    fallback = MagicMock(spec=Runtime)
    fallback.media_file_mgr = MediaFileManager(MemoryMediaFileStorage("/mock/media"))
    fallback.dataframe_source_mgr = DataframeSourceManager()
    fallback.cache_storage_manager = MemoryCacheStorageManager()
    monkeypatch.setattr(Runtime, "instance", classmethod(lambda cls: cls._instance or fallback))
    monkeypatch.setattr(Runtime, "exists", classmethod(lambda cls: True))
    monkeypatch.setattr(config, "get_option", build_mock_config_get_option({"global.appTest": True}))
    monkeypatch.setattr(app_test, "patch_config_options", lambda overrides: contextlib.nullcontext())
    shared_cache = ScriptCache()
    monkeypatch.setattr(app_test, "ScriptCache", lambda: shared_cache)


@pytest.mark.slow
@pytest.mark.data
def test_ten_simultaneous_sessions_render_and_share_one_copy_of_each_dataset_and_model(monkeypatch,
                                                                                       threads_safe_apptest):
    for page in PAGES:
        if not (ROOT / page).is_file():
            _missing(f"{page} does not exist yet")
    runs = _shipped_downsampling_runs()
    if not runs:
        _missing("no shipped Fashion-MNIST downsample_compare checkpoint in checkpoints/ "
                 "(python scripts/train_all.py)")
    import cnnviz.checkpoints as checkpoints
    import cnnviz.data as data

    loads = _Counter(monkeypatch, checkpoints, "load_checkpoint")
    decodes = _Counter(monkeypatch, data, "_load_uncached")
    import cnnviz.train as train

    evaluations = _Counter(monkeypatch, train, "evaluate")  # any test-set pass, stored results or not

    # One session fills the process-wide caches (datasets, models, test-set predictions): emptied first,
    # so that it does so whichever tests ran before in this process.
    import streamlit as st

    st.cache_resource.clear()
    st.cache_data.clear()
    files_before = _checkpoint_files()
    rss_before = _rss()
    first = _session(runs)
    assert not first["errors"], first["errors"]
    rss_one = _rss()
    dataset_bytes = sum(t.element_size() * t.nelement() for ds in data._MEMORY.values()
                        for t in (ds.train_x, ds.train_y, ds.test_x, ds.test_y))
    model_bytes = sum(p.element_size() * p.nelement() for ck in loads.returned for p in ck.model.state_dict().values())
    one_copy = dataset_bytes + model_bytes
    assert dataset_bytes > 40e6, "the session did not load a dataset: nothing to share"
    assert loads.calls >= 1  # the feature-map page's net; the Compare tab's predictions are stored results
    assert evaluations.calls == 0, "a shipped run's test-set predictions were computed, not read from the store"
    counts_after_one = (loads.calls, decodes.calls, evaluations.calls)

    # N sessions at once.
    results, threads = [None] * N, []
    monitor = _PeakRSS()
    monitor.start()
    t0 = time.perf_counter()
    for i in range(N):
        def work(i=i):
            try:
                results[i] = _session(runs)
            except Exception as e:  # noqa: BLE001 - reported below with the session's number
                where = "".join(traceback.format_exception(e)[-12:])
                results[i] = {"errors": [f"{type(e).__name__}: {e}\n{where}"], "charts": {}, "seconds": {}}
        threads.append(threading.Thread(target=work, name=f"session-{i}"))
        threads[-1].start()
    for t in threads:
        t.join(2 * len(PAGES) * TIMEOUT)
    wall = time.perf_counter() - t0
    monitor.stop.set()
    monitor.join()
    rss_many = _rss()
    # Shipped checkpoints may be added while this runs (a training in the background, locally): a
    # session may then show, and load once, the new file. CI's checkpoints/ does not change.
    new_files = sorted(set(_checkpoint_files().items()) - set(files_before.items()))
    loaded_later = [str(a[0]) for a in loads.args[counts_after_one[0]:]]

    report = {
        "sessions": N, "wall_seconds": round(wall, 1),
        "rss_mb": {"before": rss_before / 2**20, "after_one_session": rss_one / 2**20,
                   "peak_during_n_sessions": monitor.peak / 2**20, "after_n_sessions": rss_many / 2**20},
        "one_copy_mb": {"datasets": dataset_bytes / 2**20, "models": model_bytes / 2**20},
        "growth_mb_one_to_n": (monitor.peak - rss_one) / 2**20,
        "loads_during_n_sessions": {"load_checkpoint": loads.calls - counts_after_one[0],
                                    "dataset decodes": decodes.calls - counts_after_one[1],
                                    "test-set evaluations": evaluations.calls - counts_after_one[2]},
        "first_session_seconds": first["seconds"],
        "session_seconds": [r["seconds"] if r else None for r in results],
        "charts_per_page": first["charts"],
        "checkpoints_added_meanwhile": [name for name, _ in new_files],
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "load-test.json").write_text(json.dumps(report, indent=1, default=float))
    print(json.dumps(report, indent=1, default=float))

    assert not any(t.is_alive() for t in threads), "a session did not finish"
    errors = [f"session {i}: {e}" for i, r in enumerate(results) for e in r["errors"]]
    assert not errors, errors
    assert all(n > 0 for n in first["charts"].values()), first["charts"]
    if not new_files:
        for r in results:  # every session drew what the first one drew
            assert r["charts"] == first["charts"], (r["charts"], first["charts"])
    # Shared, not copied: nothing was loaded or decoded again (a file added meanwhile: loaded once)...
    assert report["loads_during_n_sessions"]["dataset decodes"] == 0, report
    new_names = {name for name, _ in new_files}
    assert all(Path(p).name in new_names for p in loaded_later), (loaded_later, new_names)
    assert len(loaded_later) == len(set(loaded_later)), f"a checkpoint was loaded twice: {loaded_later}"
    if not new_files:
        assert report["loads_during_n_sessions"] == {"load_checkpoint": 0, "dataset decodes": 0,
                                                     "test-set evaluations": 0}, report
    # ...and N sessions cost far less memory than N copies of the data and models one session used.
    growth = monitor.peak - rss_one
    assert growth < 0.3 * N * one_copy, (
        f"{N} sessions grew the process by {growth / 2**20:.0f} MB; one copy of the datasets and models "
        f"is {one_copy / 2**20:.0f} MB")


def _checkpoint_files() -> dict[str, float]:
    return {p.name: p.stat().st_mtime for p in (ROOT / "checkpoints").glob("*.pt")}
