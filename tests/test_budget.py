"""A job's budget before it starts: its memory estimate against real peaks, the compute cap, one owner's cap,
who may stop it, and the runs folder kept under its size limit."""
from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

import cnnviz.jobs as jobs_mod
from cnnviz import budget, limits, runs_quota, shipped
from cnnviz.config import RunConfig
from cnnviz.jobs import JobRefused, JobRegistry, NotYourJob, owner_tag
from cnnviz.train import TrainResult

ROOT = Path(__file__).resolve().parent.parent
MB = 2**20


def _one_line(msg: str, limit: int = 300) -> None:
    assert msg and "\n" not in msg and len(msg) < limit, msg
    assert "Traceback" not in msg, msg


# ---- memory ----------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.data
@pytest.mark.parametrize("arch, dataset, batch", [("mlp", "fashion-mnist", 1024), ("lenet5", "fashion-mnist", 1024),
                                                  ("downsample_compare", "fashion-mnist", 1024)])
def test_the_estimate_is_not_below_the_measured_peak_of_a_real_training_step(arch, dataset, batch, fashion_mnist):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from job_memory import measure

    row = measure(arch, dataset, batch)
    assert "error" not in row, row
    assert row["completed"], row
    assert row["measured_mb"] > 0
    assert row["estimate_mb"] >= row["measured_mb"], row


def test_an_over_budget_batch_is_refused_with_the_largest_batch_that_fits():
    cfg = RunConfig("vgg16", dataset="cifar10", batch_size=1024, device="cpu").resolved()
    with pytest.raises(budget.OverBudget) as e:
        budget.check_memory(cfg, 1024)
    _one_line(str(e.value))
    need = budget.estimate(cfg)
    fits = need.largest_batch(1024 * MB)
    assert f"batch {fits:,} fits" in str(e.value) and f"{need.total / MB:,.0f} MB" in str(e.value)
    assert 1 <= fits < 1024
    ok = RunConfig("vgg16", dataset="cifar10", batch_size=fits, device="cpu").resolved()
    assert budget.check_memory(ok, 1024).total <= 1024 * MB
    over = RunConfig("vgg16", dataset="cifar10", batch_size=fits + 1, device="cpu").resolved()
    assert budget.estimate(over).total > 1024 * MB


def test_a_net_that_fits_no_batch_says_so():
    cfg = RunConfig("vgg16", dataset="cifar10", batch_size=2, device="cpu").resolved()
    with pytest.raises(budget.OverBudget, match="no batch size fits: choose a smaller network"):
        budget.check_memory(cfg, 200)


def test_the_estimate_counts_the_dataset_only_when_it_is_not_loaded_yet():
    cfg = RunConfig("lenet5", batch_size=256).resolved()
    fresh, loaded = budget.estimate(cfg, dataset_loaded=False), budget.estimate(cfg, dataset_loaded=True)
    assert fresh.total - loaded.total == budget.dataset_bytes("fashion-mnist") == 70_000 * (784 + 8)


def test_the_default_form_settings_fit_the_default_budget():
    for dataset in ("fashion-mnist", "cifar10"):  # the Train form's defaults: downsample_compare, batch 1024
        cfg = RunConfig("downsample_compare", dataset=dataset, device="cpu").resolved()
        budget.check(cfg, memory_mb=limits.job_memory_mb(), max_tmacs=limits.job_max_tmacs())


# ---- compute ---------------------------------------------------------------------------------------

def test_the_compute_cap_allows_every_shipped_run_and_refuses_vgg16_for_200_epochs():
    for run in shipped.shipped_runs():
        budget.check_cost(RunConfig(**{**run.config.__dict__, "device": "cpu"}), limits.job_max_tmacs())
    vgg = RunConfig("vgg16", dataset="cifar10", epochs=200, device="cpu").resolved()
    with pytest.raises(budget.OverBudget) as e:
        budget.check_cost(vgg, limits.job_max_tmacs())
    _one_line(str(e.value))
    per_epoch = budget.cost(vgg) / 200
    assert per_epoch == 313_279_744 * 50_000  # multiply-adds per image x training images
    assert int(200e12 // per_epoch) == 12
    assert str(e.value).endswith("3,133 T multiply-adds, over this server's 200 T per training job on a CPU: "
                                 "at most 12 epochs fit.")


def test_when_not_one_epoch_fits_the_line_says_how_many_images_do():
    cfg = RunConfig("vgg16", dataset="cifar10", epochs=1, device="cpu").resolved()
    with pytest.raises(budget.OverBudget, match=r"train on the first 6,384 images"):
        budget.check_cost(cfg, 2)


def test_limits_fall_back_to_their_defaults_on_garbage(monkeypatch):
    for variable, read, default in (("CNNVIZ_JOB_MEMORY_MB", limits.job_memory_mb, 1024),
                                    ("CNNVIZ_JOB_MAX_TMACS", limits.job_max_tmacs, 200),
                                    ("CNNVIZ_MAX_JOBS_PER_SESSION", limits.max_jobs_per_session, 2),
                                    ("CNNVIZ_RUNS_MAX_MB", limits.runs_max_mb, 2000),
                                    ("CNNVIZ_UPLOAD_CACHE_MB", limits.upload_cache_mb, 300)):
        monkeypatch.delenv(variable, raising=False)
        assert read() == default
        for value, expected in (("7", 7), ("lots", default), ("0", default), ("-3", default)):
            monkeypatch.setenv(variable, value)
            assert read() == expected, (variable, value)


# ---- the registry: refused before queueing, one owner's cap, who may stop -------------------------------

@pytest.fixture
def blocked(monkeypatch):
    """run_training that trains nothing and waits until released or stopped: only the queue is under test."""
    gate = threading.Event()

    def run(cfg, *, out, should_stop, **kwargs):
        while not gate.wait(0.02) and not should_stop():
            pass
        return out, TrainResult([], False, "stopped")

    monkeypatch.setattr(jobs_mod, "run_training", run)
    yield gate
    gate.set()


def _registry(tmp_path, **limits_) -> JobRegistry:
    return JobRegistry(max_concurrent=1, folder=tmp_path, **limits_)


def test_a_registry_with_limits_refuses_over_budget_jobs_before_queueing(tmp_path, blocked):
    reg = _registry(tmp_path, memory_mb=1024, max_tmacs=200)
    for cfg in (RunConfig("conv_only", dataset="cifar10", batch_size=8192, device="cpu"),
                RunConfig("vgg16", dataset="cifar10", epochs=200, batch_size=64, device="cpu")):
        with pytest.raises(JobRefused) as e:
            reg.submit(cfg, owner="ann")
        _one_line(str(e.value))
    assert reg.jobs() == []
    assert reg.submit(RunConfig("mlp", device="cpu"), owner="ann").state == "running"
    assert reg.shutdown(timeout=30)


def test_fifteen_submits_from_one_owner_are_capped_and_another_owner_is_not(tmp_path, blocked):
    reg = _registry(tmp_path, max_per_owner=2)
    accepted, refused = [], []
    for _ in range(15):
        try:
            accepted.append(reg.submit(RunConfig("mlp"), owner="ann"))
        except JobRefused as e:
            refused.append(str(e))
    assert len(accepted) == 2 and len(refused) == 13
    assert [j.state for j in accepted] == ["running", "queued"]
    _one_line(refused[0])
    assert "you already have 2 runs waiting or running" in refused[0]
    assert reg.submit(RunConfig("mlp"), owner="bob").state == "queued"  # someone else's cap is their own
    assert reg.cancel(accepted[1].id, owner="ann")  # a finished job frees a place
    assert reg.submit(RunConfig("mlp"), owner="ann").state == "queued"
    assert reg.shutdown(timeout=30)


def test_only_the_owner_can_stop_a_job(tmp_path, blocked):
    reg = _registry(tmp_path)
    ann = owner_tag("ann's secret")
    assert ann == owner_tag("ann's secret") != owner_tag("bob's secret") and "ann" not in ann
    job = reg.submit(RunConfig("mlp"), owner=ann)
    with pytest.raises(NotYourJob):
        reg.cancel(job.id, owner=owner_tag("bob's secret"))
    assert job.state == "running" and not job.snapshot().cancel_requested
    assert reg.cancel(job.id, owner=ann)
    assert reg.wait(job.id, 30).state == "stopped"


# ---- the runs folder -------------------------------------------------------------------------------

def _file(folder: Path, name: str, mb: float, age: float) -> Path:
    p = folder / name
    p.write_bytes(b"\0" * int(mb * MB))
    t = time.time() - age
    os.utime(p, (t, t))
    return p


def test_the_oldest_runs_make_room_and_kept_files_stay(tmp_path):
    old, kept, mid, new = (_file(tmp_path, n, 3, age) for n, age in
                           (("old.pt", 400), ("kept.pt", 300), ("mid.pt", 200), ("new.pt", 100)))
    (tmp_path / "notes.txt").write_bytes(b"\0" * MB)  # counts toward the size, is never removed
    assert runs_quota.folder_bytes(tmp_path) == 13 * MB
    assert runs_quota.make_room(tmp_path, 1 * MB, 20) == []  # fits: nothing removed
    removed = runs_quota.make_room(tmp_path, 4 * MB, 12, keep=[kept])
    assert removed == ["old.pt", "mid.pt"]
    assert not old.exists() and not mid.exists() and kept.exists() and new.exists()
    assert runs_quota.folder_bytes(tmp_path) + 4 * MB <= 12 * MB
    note = runs_quota.removal_note(removed, 12)
    _one_line(note)
    assert note == "To keep the runs folder under 12 MB, the oldest runs were removed: old.pt, mid.pt."


def test_room_that_cannot_be_made_removes_nothing(tmp_path):
    kept = _file(tmp_path, "running.pt", 5, 100)
    other = _file(tmp_path, "other.pt", 2, 200)
    with pytest.raises(runs_quota.RunsFolderFull) as e:
        runs_quota.make_room(tmp_path, 4 * MB, 8, keep=[kept])
    _one_line(str(e.value))
    assert kept.exists() and other.exists()


def test_shipped_checkpoints_are_never_removed_even_from_a_runs_folder_pointed_at_them(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNVIZ_CHECKPOINTS", str(tmp_path))
    shipped_file = _file(tmp_path, "fashion-mnist-lenet5.pt", 3, 500)
    with pytest.raises(runs_quota.RunsFolderFull):
        runs_quota.make_room(tmp_path, 2 * MB, 4)
    assert shipped_file.exists()


def test_a_job_that_needs_room_removes_the_oldest_runs_and_says_which(tmp_path, blocked):
    need = runs_quota.run_file_bytes(RunConfig("mlp").resolved())  # mlp: 535,818 float32 weights + Adam
    assert 6 * MB < need < 8 * MB
    _file(tmp_path, "first.pt", 5, 300)
    _file(tmp_path, "second.pt", 5, 200)
    reg = _registry(tmp_path, runs_max_mb=15)
    job = reg.submit(RunConfig("mlp"), owner="ann")
    assert job.snapshot().note == "To keep the runs folder under 15 MB, the oldest runs were removed: first.pt."
    assert not (tmp_path / "first.pt").exists() and (tmp_path / "second.pt").exists()
    with pytest.raises(JobRefused, match="bigger than the runs folder's 5 MB limit"):
        _registry(tmp_path / "small", runs_max_mb=5).submit(RunConfig("mlp"))
    assert reg.shutdown(timeout=30)


def test_a_continued_run_is_charged_only_for_the_epochs_it_still_trains(tmp_path, blocked):
    from cnnviz.checkpoints import read_record
    from cnnviz.runs import continuation

    shipped_mlp = ROOT / "checkpoints" / "fashion-mnist-mlp.pt"
    if not shipped_mlp.exists():
        pytest.skip("no shipped fashion-mnist-mlp.pt")
    record = read_record(shipped_mlp)
    cfg = continuation(record, record.epochs + 2, device="cpu")
    per_epoch = budget.cost(cfg) / cfg.epochs  # mlp: 535,040 multiply-adds x 60,000 images
    reg = _registry(tmp_path, max_tmacs=3 * per_epoch / 1e12)  # room for 3 epochs, not for all of them
    with pytest.raises(JobRefused, match="at most 3 epochs fit"):
        reg.submit(cfg, owner="ann")  # the same epochs trained from scratch
    job = reg.submit(cfg, owner="ann", resume_from=shipped_mlp)  # 2 epochs still to train
    assert job.state == "running"
    assert reg.shutdown(timeout=30)
