"""Experiment grids on the real Fashion-MNIST: processes, Ray, resuming, failures, statistics, CLI.

The grid here is downsample_compare x {max, avg} x seeds {0, 1}, one epoch on the first 2048
training images in batches of 256 (8 optimizer steps per run; the test accuracy is still measured
on all 10000 test images). That keeps a run to seconds on 2 cores while the accuracies (~0.7) are
real; the lecture's 10-epoch numbers come from the shipped checkpoints, not from here.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnviz.checkpoints import read_meta
from cnnviz.device import usable_cpus
from cnnviz.grid import GridError, group_stats, plan, progress_line, ray_runtime_env, run_grid
from cnnviz.manifest import read_manifest
from cnnviz.config import RunConfig

ROOT = Path(__file__).resolve().parent.parent
HYPER = dict(epochs=1, limit_train=2048, batch_size=256)
GRID_ARGS = ["--arch", "downsample_compare", "--downsample", "max,avg", "--seeds", "0,1", "--epochs", "1",
             "--limit-train", "2048", "--batch-size", "256"]

pytestmark = [pytest.mark.slow, pytest.mark.data]


@pytest.fixture(scope="module")
def configs(fashion_mnist):  # fashion_mnist: skip (or fail under CI) when the real data is missing
    return plan(["downsample_compare"], ["max", "avg"], ["fashion-mnist"], [0, 1], **HYPER)


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    """A run that fails inside its worker: its dataset folder does not exist (DataUnavailable)."""
    missing = tmp_path_factory.mktemp("nothing") / "no-such-dataset"
    return RunConfig(arch="downsample_compare", dataset=str(missing), **HYPER).resolved()


@pytest.fixture(scope="module")
def local_grid(configs, broken, tmp_path_factory):
    """The grid, plus the broken run, trained once in 2 worker processes: (folder, rows)."""
    out = tmp_path_factory.mktemp("local")
    return out, run_grid([broken, *configs], out, workers=2)


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray instance (2 CPUs) for this module; Ray starts slowly, so it is started once."""
    try:
        import ray
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("ray is not installed on a CI machine: pip install -r requirements-ray.txt", pytrace=False)
        pytest.skip("ray is not installed (pip install -r requirements-ray.txt)")
    try:
        ray.init(num_cpus=2, include_dashboard=False, runtime_env=ray_runtime_env())
    except Exception:  # noqa: BLE001 - Ray waits only 30 s for its raylet; a busy 2-core runner can miss that once
        ray.shutdown()
        ray.init(num_cpus=2, include_dashboard=False, runtime_env=ray_runtime_env())
    yield ray
    ray.shutdown()


def _acc_by_name(rows):
    """Final test accuracy of each trained (or skipped) run, by checkpoint name."""
    return {r["name"]: r["test_acc"] for r in rows if r["status"] != "failed"}


def _assert_broken_run_reported(rows, broken):
    failed = [r for r in rows if r["status"] == "failed"]
    assert [r["name"] for r in failed] == [broken.name]
    assert failed[0]["error"].startswith("DataUnavailable: ")  # raised in the worker, sent back as a row


# ---- planning (no training) --------------------------------------------------------------------

def test_plan_is_every_combination_seed_by_seed_with_resolved_defaults():
    cfgs = plan(["downsample_compare", "mlp"], ["max", "avg"], ["fashion-mnist", "cifar10"], [0, 1], epochs=3)
    # downsample_compare: 2 options; mlp never downsamples: one run. x 2 datasets x 2 seeds.
    assert len(cfgs) == (2 + 1) * 2 * 2
    assert [(c.dataset, c.seed) for c in cfgs[:3]] == [("fashion-mnist", 0)] * 3
    assert {c.epochs for c in cfgs} == {3}
    assert len({c.name for c in cfgs}) == len(cfgs)
    # None and the arch's default are the same run, planned once
    assert [c.downsample for c in plan(["downsample_compare"], [None, "max"], ["fashion-mnist"], [0])] == ["max"]


def test_plan_refuses_an_option_the_arch_does_not_take_before_training():
    with pytest.raises(ValueError, match="conv_stride does not take downsample='max'"):
        plan(["conv_stride"], ["max"], ["fashion-mnist"], [0])


# ---- running ---------------------------------------------------------------------------------

def test_grid_in_two_processes_writes_complete_checkpoints_and_a_manifest_despite_a_failed_run(
        local_grid, configs, broken):
    out, rows = local_grid
    assert sorted(r["status"] for r in rows) == ["done"] * 4 + ["failed"], [r["error"] for r in rows]
    _assert_broken_run_reported(rows, broken)
    assert [r["index"] for r in rows] == [1, 2, 3, 4, 5] and {r["total"] for r in rows} == {5}
    manifest = {e["file"]: e for e in read_manifest(out)["runs"]}
    assert set(manifest) == {c.name + ".pt" for c in configs}
    for r in (r for r in rows if r["status"] == "done"):
        meta = read_meta(out / r["file"])
        assert meta["complete"] and meta["train"]["seed"] == r["seed"]
        assert meta["train"]["limit_train"] == 2048 and len(meta["history"]) == 1
        assert r["test_acc"] == meta["history"][-1]["test_acc"] == manifest[r["file"]]["final_test_acc"]
        assert 0.5 < r["test_acc"] < 0.95  # learned something real from 8 steps, far from chance (0.1)
        assert meta["command"].startswith("python -m cnnviz train --arch downsample_compare")
        # two workers share the cores: each ran with its half, not with every core
        assert r["threads"] == max(1, usable_cpus() // 2)


def test_grid_on_ray_gives_the_local_accuracies_for_the_same_seeds(ray_local, local_grid, configs, broken,
                                                                   tmp_path):
    rows = run_grid([broken, *configs], tmp_path, ray_address="auto")
    assert sorted(r["status"] for r in rows) == ["done"] * 4 + ["failed"], [r["error"] for r in rows]
    _assert_broken_run_reported(rows, broken)
    local, remote = _acc_by_name(local_grid[1]), _acc_by_name(rows)
    assert local.keys() == remote.keys()
    for name in local:  # same seed, same data order and initialisation: identical on CPU
        assert abs(local[name] - remote[name]) <= 0.005, (name, local[name], remote[name])
    # the tasks sent their checkpoints back and the driver wrote them
    assert {e["file"] for e in read_manifest(tmp_path)["runs"]} == {c.name + ".pt" for c in configs}
    assert all(read_meta(tmp_path / f"{c.name}.pt")["complete"] for c in configs)


def test_rerun_skips_every_complete_run_without_training(local_grid, configs):
    out, first = local_grid
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.pt")}
    t0 = time.perf_counter()
    rows = run_grid(configs, out, workers=2)
    assert time.perf_counter() - t0 < 15  # reading 4 headers, no worker started
    assert [r["status"] for r in rows] == ["skipped"] * 4
    assert _acc_by_name(rows) == _acc_by_name(first)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.pt")} == before


def test_an_incomplete_run_that_cannot_be_continued_is_moved_aside_and_redone_from_scratch(local_grid, configs,
                                                                                           tmp_path):
    out = tmp_path / "grid"
    shutil.copytree(local_grid[0], out)
    victim = out / f"{configs[0].name}.pt"
    payload = torch.load(victim, weights_only=True)  # diverged: continuing would only diverge again
    torch.save({**payload, "complete": False, "reason": "FloatingPointError: training diverged at epoch 1"}, victim)

    rows = run_grid(configs, out)  # one run to redo: trained in this process, data already loaded
    by_name = {r["name"]: r for r in rows}
    assert by_name[configs[0].name]["status"] == "done"
    assert sorted(r["status"] for r in rows) == ["done", "skipped", "skipped", "skipped"]
    aside = out / f"{configs[0].name}.incomplete-1.pt"
    assert not read_meta(aside)["complete"]  # kept, never deleted, and listed as incomplete
    assert {e["file"]: e["complete"] for e in read_manifest(out)["runs"]}[aside.name] is False
    assert read_meta(victim)["complete"]
    assert abs(by_name[configs[0].name]["test_acc"] - _acc_by_name(local_grid[1])[configs[0].name]) <= 0.005


def test_folder_trained_with_other_settings_is_refused_before_training(local_grid, configs, tmp_path):
    shutil.copy(local_grid[0] / f"{configs[0].name}.pt", tmp_path)
    longer = plan(["downsample_compare"], ["max", "avg"], ["fashion-mnist"], [0, 1], **{**HYPER, "epochs": 2})
    with pytest.raises(GridError, match="epochs=1 \\(wanted 2\\)"):
        run_grid(longer, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{configs[0].name}.pt"]


def test_ray_missing_is_one_clear_error(monkeypatch, configs, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(GridError, match="pip install -r requirements-ray.txt"):
        run_grid(configs[:1], tmp_path, ray_address="auto")


# ---- statistics and output -------------------------------------------------------------------

def test_group_stats_equal_numpy_over_seeds(local_grid):
    rows = list(local_grid[1])  # 4 done + the broken run (failed: ignored)
    done = next(r for r in rows if r["status"] == "done")
    # a third seed for one option, another failed run and a group with a single seed (std None)
    extra = [{**done, "seed": 7, "test_acc": 0.5},
             {**done, "seed": 8, "status": "failed", "test_acc": None},
             {**done, "dataset": "cifar10", "seed": 0, "test_acc": 0.42}]
    stats = {(s["dataset"], s["downsample"]): s for s in group_stats(rows + extra)}
    assert set(stats) == {("fashion-mnist", "max"), ("fashion-mnist", "avg"), ("cifar10", done["downsample"])}
    for (dataset, option), s in stats.items():
        acc = np.array([r["test_acc"] for r in rows + extra if r["status"] != "failed"
                        and r["dataset"] == dataset and r["downsample"] == option])
        assert s["n"] == len(acc)
        assert s["mean"] == pytest.approx(acc.mean(), abs=1e-12)
        assert s["min"] == acc.min() and s["max"] == acc.max()
        if len(acc) > 1:
            assert s["std"] == pytest.approx(np.std(acc, ddof=1), abs=1e-12)
        else:
            assert s["std"] is None


def test_progress_line_names_the_run_its_accuracy_and_time():
    row = {"index": 3, "total": 12, "status": "done", "dataset": "fashion-mnist", "arch": "downsample_compare",
           "downsample": "avg", "seed": 1, "test_acc": 0.89123, "seconds": 41.2, "error": ""}
    assert progress_line(row) == "[3/12] fashion-mnist downsample_compare avg seed 1: test acc 0.8912 in 41 s"
    failed = {**row, "status": "failed", "test_acc": None, "error": "DataUnavailable: no images"}
    assert progress_line(failed).endswith("seed 1: FAILED after 41 s: DataUnavailable: no images")


def test_cli_grid_json_prints_a_parseable_line_per_run_and_fails_when_a_run_fails(local_grid, tmp_path):
    out = tmp_path / "grid"
    shutil.copytree(local_grid[0], out)
    cmd = [sys.executable, "-m", "cnnviz", "grid", *GRID_ARGS, "--out", str(out), "--json"]
    ok = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    lines = [json.loads(line) for line in ok.stdout.splitlines()]
    assert [r["status"] for r in lines[:-1]] == ["skipped"] * 4
    assert _acc_by_name(lines[:-1]) == _acc_by_name(local_grid[1])
    summary = lines[-1]
    assert (summary["runs"], summary["skipped"], summary["failed"]) == (4, 4, 0)
    assert sorted(s["downsample"] for s in summary["summary"]) == ["avg", "max"]
    assert all(s["n"] == 2 for s in summary["summary"])

    missing = str(tmp_path / "no-such-dataset")
    bad = subprocess.run([*cmd, "--dataset", f"fashion-mnist,{missing}"], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode != 0
    assert "4 of 8 runs failed" in bad.stderr
    rows = [json.loads(line) for line in bad.stdout.splitlines()][:-1]
    assert sorted(r["status"] for r in rows) == ["failed"] * 4 + ["skipped"] * 4
