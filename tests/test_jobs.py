"""Background jobs: tiny real trainings on Fashion-MNIST in worker threads, queued, cancelled, failing."""
from __future__ import annotations

import dataclasses
import os
import threading

import pytest
import torch

import cnnviz.jobs as jobs_mod
import cnnviz.train as train_mod
from cnnviz.checkpoints import load_checkpoint
from cnnviz.data import available_sources
from cnnviz.jobs import JobRegistry, default_max_jobs
from cnnviz.config import RunConfig
from cnnviz.train import TrainResult

TINY = RunConfig("mlp", epochs=1, limit_train=2048, batch_size=512)  # ~1 s on 2 busy cores
LONG = RunConfig("mlp", epochs=200, limit_train=2048, batch_size=256)  # minutes: only ever cancelled
WAIT = 120  # generous: the machine may be busy training other models


def trains(test):
    """Mark a test that trains on the real Fashion-MNIST (see the markers in pyproject.toml)."""
    return pytest.mark.slow(pytest.mark.data(test))


def _require_fashion_mnist():
    # A local guard rather than a shared fixture: CI must have the data, a laptop may not.
    if available_sources().get("fashion-mnist") is None:
        msg = "Fashion-MNIST not found (apt-get install dataset-fashion-mnist)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.fixture
def registry(tmp_path):
    _require_fashion_mnist()
    reg = JobRegistry(max_concurrent=1, folder=tmp_path)
    yield reg
    assert reg.shutdown(timeout=WAIT), "a worker thread did not end"


@trains
def test_job_completes_and_writes_a_checkpoint_that_loads(registry, tmp_path):
    job = registry.submit(TINY, owner="ann")
    snap = registry.wait(job.id, WAIT)
    assert snap.state == "completed" and snap.reason == "completed" and snap.error == ""
    assert snap.progress.fraction == 1.0 and len(snap.history) == 1
    assert snap.created <= snap.started <= snap.finished
    assert snap.checkpoint.parent == tmp_path and snap.checkpoint.name == f"{job.config.name}.pt"
    ck = load_checkpoint(snap.checkpoint)
    assert ck.meta["arch"] == "mlp" and ck.meta["complete"] is True
    assert ck.record.history == snap.history
    assert registry.queue_position(job.id) == 0
    assert registry.jobs(owner="ann") == [job] and registry.jobs(owner="bob") == []


@trains
def test_cancelled_running_job_stops_and_keeps_its_epochs(registry):
    job = registry.submit(LONG)
    job.wait_for(lambda s: len(s.history) >= 1, WAIT)  # woken by the job, no polling
    assert registry.cancel(job.id)
    snap = registry.wait(job.id, WAIT)
    assert snap.state == "stopped" and snap.cancel_requested
    assert snap.reason == f"stopped after {len(snap.history)} of 200 epochs"
    ck = load_checkpoint(snap.checkpoint)
    assert ck.meta["complete"] is False and ck.meta["reason"] == "stopped"
    assert 1 <= len(ck.record.history) < 200 and ck.record.history == snap.history
    assert not registry.cancel(job.id)  # already finished


@trains
def test_jobs_over_the_cap_wait_in_fifo_order(registry, tmp_path):
    jobs = [registry.submit(TINY, name="same") for _ in range(3)]
    assert [j.state for j in jobs] == ["running", "queued", "queued"]
    assert [registry.queue_position(j.id) for j in jobs] == [0, 1, 2]
    snaps = [registry.wait(j.id, WAIT) for j in jobs]
    assert [s.state for s in snaps] == ["completed"] * 3
    for a, b in zip(snaps, snaps[1:]):
        assert a.finished <= b.started  # one at a time, in submission order
    assert [s.checkpoint.name for s in snaps] == ["same.pt", "same-2.pt", "same-3.pt"]


@trains
def test_cancelled_queued_job_never_runs(registry, tmp_path):
    running, queued = registry.submit(LONG), registry.submit(TINY, name="never")
    assert registry.cancel(queued.id)
    snap = queued.snapshot()
    assert snap.state == "cancelled" and snap.started is None and snap.checkpoint is None
    assert registry.queue_position(queued.id) == 0
    registry.cancel(running.id)
    assert registry.wait(running.id, WAIT).state == "stopped"
    assert queued.snapshot().started is None
    assert not (tmp_path / "never.pt").exists()


@trains
def test_failing_jobs_report_why_and_the_next_job_still_runs(registry):
    missing = registry.submit(RunConfig("mlp", dataset="no-such-dataset"))
    bad = registry.submit(dataclasses.replace(TINY, epochs=0))
    good = registry.submit(TINY)
    s = registry.wait(missing.id, WAIT)
    assert s.state == "failed" and s.reason.startswith("unknown dataset 'no-such-dataset'")
    assert "DataUnavailable" in s.error and s.checkpoint is None
    s = registry.wait(bad.id, WAIT)
    assert s.state == "failed" and s.reason == "epochs must be at least 1"
    assert registry.wait(good.id, WAIT).state == "completed"


@trains
def test_error_mid_training_fails_the_job_but_keeps_the_epochs_done(registry, monkeypatch):
    real_evaluate, calls = train_mod.evaluate, []

    def evaluate_then_break(*args, **kwargs):  # the second epoch's evaluation raises
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("simulated failure")
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(train_mod, "evaluate", evaluate_then_break)
    snap = registry.wait(registry.submit(dataclasses.replace(TINY, epochs=3)).id, WAIT)
    assert snap.state == "failed" and snap.reason == "RuntimeError: simulated failure"
    ck = load_checkpoint(snap.checkpoint)
    assert ck.meta["complete"] is False and len(ck.record.history) == 1 == len(snap.history)


@trains
def test_snapshots_are_copies(registry):
    job = registry.submit(TINY)
    snap = registry.wait(job.id, WAIT)
    snap.history[0]["test_acc"] = -1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.state = "running"
    assert job.snapshot().history[0]["test_acc"] != -1.0 and job.state == "completed"


# ---- no training: the scheduling logic with run_training replaced --------------------------------

def test_max_jobs_defaults_to_one_on_cpu_and_follows_the_env(monkeypatch):
    monkeypatch.delenv("CNNVIZ_MAX_JOBS", raising=False)
    monkeypatch.setattr(jobs_mod, "_gpu_count", lambda: 0)
    assert default_max_jobs() == 1
    monkeypatch.setattr(jobs_mod, "_gpu_count", lambda: 4)
    assert default_max_jobs() == 4
    monkeypatch.setenv("CNNVIZ_MAX_JOBS", "3")
    assert JobRegistry().max_concurrent == 3 and JobRegistry(2).max_concurrent == 2
    monkeypatch.setenv("CNNVIZ_MAX_JOBS", "0")
    with pytest.raises(ValueError, match="at least 1"):
        JobRegistry()


def test_concurrent_jobs_get_their_own_gpu_and_file(monkeypatch, tmp_path):
    gate, entered, seen = threading.Event(), threading.Semaphore(0), []

    def fake_run_training(cfg, *, out, should_stop, **kwargs):
        seen.append((cfg.device, out))
        entered.release()
        gate.wait(WAIT)
        return out, TrainResult([], True, "completed")

    monkeypatch.setattr(jobs_mod, "_gpu_count", lambda: 2)
    monkeypatch.setattr(jobs_mod, "run_training", fake_run_training)
    reg = JobRegistry(max_concurrent=2, folder=tmp_path)
    a, b, c = (reg.submit(TINY, name="same") for _ in range(3))
    assert (a.state, b.state, c.state) == ("running", "running", "queued")
    assert entered.acquire(timeout=10) and entered.acquire(timeout=10)  # both workers are in
    assert sorted(seen) == [("cuda:0", tmp_path / "same.pt"), ("cuda:1", tmp_path / "same-2.pt")]
    gate.set()
    assert [reg.wait(j.id, 10).state for j in (a, b, c)] == ["completed"] * 3
    assert seen[2][0] in ("cuda:0", "cuda:1")
    assert reg.shutdown(timeout=10)


def test_unexpected_errors_and_cuda_oom_fail_the_job_not_the_registry(monkeypatch, tmp_path):
    errors = [torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"),
              KeyError("state_dict")]

    def fake_run_training(cfg, *, out, **kwargs):
        if errors:
            raise errors.pop(0)
        return out, TrainResult([], True, "completed")

    monkeypatch.setattr(jobs_mod, "run_training", fake_run_training)
    reg = JobRegistry(max_concurrent=1, folder=tmp_path)
    oom, broken, fine = (reg.submit(TINY) for _ in range(3))
    s = reg.wait(oom.id, 10)
    assert s.state == "failed" and s.reason.startswith("CUDA out of memory") and "OutOfMemoryError" in s.error
    s = reg.wait(broken.id, 10)
    assert s.state == "failed" and s.reason == "KeyError: 'state_dict'" and "Traceback" in s.error
    assert reg.wait(fine.id, 10).state == "completed"
    assert reg.shutdown(timeout=10)


def test_time_left_is_the_runs_own_pace_and_unknown_at_the_start(monkeypatch):
    base = jobs_mod.JobSnapshot(id="j", name="n", owner=None, config=TINY, state="running", reason="", created=0.0,
                                started=100.0, finished=None, progress=jobs_mod.JobProgress(fraction=0.25),
                                history=(), checkpoint=None, error="")
    monkeypatch.setattr(jobs_mod.time, "time", lambda: 160.0)  # 60 s for a quarter of the batches
    assert base.elapsed == 60.0 and base.seconds_left == pytest.approx(180.0)
    assert dataclasses.replace(base, progress=jobs_mod.JobProgress(fraction=0.01)).seconds_left is None
    assert dataclasses.replace(base, state="completed", finished=150.0).seconds_left is None
    assert dataclasses.replace(base, state="queued", started=None).seconds_left is None
