"""Runs that resume: a run written after every epoch, continued from its last finished epoch as if it had
never stopped (weights, optimizer state, shuffling), by the library, the CLI and the grid, and a
process killed mid-run keeps every epoch it finished."""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cnnviz.checkpoints import load_checkpoint, read_record
from cnnviz.config import RunConfig
from cnnviz.grid import run_grid
from cnnviz.runs import run_training

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow, pytest.mark.data]
# Small enough for seconds per run on 2 cores, large enough that the epochs differ.
CFG = RunConfig(arch="downsample_compare", epochs=3, batch_size=256, limit_train=2048, device="cpu")


def _stop_after(epochs: int):
    """A should_stop that ends the run at the first batch after `epochs` finished epochs."""
    done = []
    return (lambda row: done.append(row)), (lambda: len(done) >= epochs)


@pytest.fixture(scope="module")
def straight(fashion_mnist, tmp_path_factory):
    """The oracle: the same run trained in one go."""
    path, result = run_training(CFG, out=tmp_path_factory.mktemp("straight") / "run.pt", data=fashion_mnist)
    assert result.completed
    return result.history


def _close(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        for k in ("train_loss", "train_acc", "test_loss", "test_acc"):
            assert ra[k] == pytest.approx(rb[k], abs=1e-5), (k, ra, rb)


def test_a_stopped_run_continued_equals_the_run_trained_in_one_go(fashion_mnist, straight, tmp_path):
    on_epoch, stop = _stop_after(1)
    first, result = run_training(CFG, out=tmp_path / "first.pt", data=fashion_mnist, on_epoch=on_epoch, should_stop=stop)
    assert result.reason == "stopped" and len(result.history) == 1
    ck = load_checkpoint(first, with_optimizer=True)
    assert ck.optimizer_state is not None  # Adam's moments travel with the weights
    torch.load(first, weights_only=True)  # and the file stays loadable without running code
    second, resumed = run_training(CFG, out=tmp_path / "second.pt", data=fashion_mnist, resume_from=ck)
    assert resumed.completed and [r["epoch"] for r in resumed.history] == [1, 2, 3]
    _close(resumed.history, straight)
    record = read_record(second)
    assert record.config.precision in ("fp32", "bf16")  # "auto", as resolved on this machine
    assert record.complete and record.config == dataclasses.replace(CFG, device="auto",
                                                                    precision=record.config.precision).resolved()
    assert load_checkpoint(second).meta["resumed_from"] == {"file": "first.pt", "epochs": 1, "optimizer_state": True}
    assert read_record(first).epochs == 1  # the file it continued is left as it was


def test_continuing_needs_more_epochs_and_the_same_net(fashion_mnist, tmp_path):
    on_epoch, stop = _stop_after(1)
    first, _ = run_training(CFG, out=tmp_path / "a.pt", data=fashion_mnist, on_epoch=on_epoch, should_stop=stop)
    ck = load_checkpoint(first, with_optimizer=True)
    with pytest.raises(ValueError, match="already has 1 epochs"):
        run_training(dataclasses.replace(CFG, epochs=1), out=tmp_path / "b.pt", data=fashion_mnist, resume_from=ck)
    with pytest.raises(ValueError, match="not fashion-mnist-lenet5"):
        run_training(dataclasses.replace(CFG, arch="lenet5"), out=tmp_path / "c.pt", data=fashion_mnist, resume_from=ck)


def test_the_grid_continues_an_incomplete_run_from_its_last_epoch(fashion_mnist, straight, tmp_path):
    cfg = CFG.resolved()
    on_epoch, stop = _stop_after(2)
    path = tmp_path / f"{cfg.name}.pt"
    run_training(cfg, out=path, data=fashion_mnist, on_epoch=on_epoch, should_stop=stop)
    rows = run_grid([cfg], tmp_path)
    assert [r["status"] for r in rows] == ["done"]
    record = read_record(path)
    assert record.complete and record.epochs == 3
    assert load_checkpoint(path).meta["resumed_from"]["epochs"] == 2  # continued, not redone
    assert not list(tmp_path.glob("*.incomplete-*"))
    _close(list(record.history), straight)


def test_a_killed_training_process_keeps_its_finished_epochs_and_the_cli_resumes_it(fashion_mnist, straight, tmp_path):
    out = tmp_path / "run.pt"
    args = [sys.executable, "-m", "cnnviz", "train", "--arch", "downsample_compare", "--epochs", "40",
            "--batch-size", "256", "--limit-train", "2048", "--device", "cpu", "--json", "--out", str(out)]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(2):  # two epochs reported: the file holds at least the first
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
        os.kill(proc.pid, signal.SIGKILL)  # mid-run, with no chance to clean up
        proc.wait(60)
    finally:
        proc.kill()
    record = read_record(out)
    assert not record.complete and 2 <= record.epochs < 40 and record.reason.startswith("saved after epoch")
    assert not list(tmp_path.glob(".*tmp*"))  # no half-written file beside it (or it was renamed in whole)

    done = subprocess.run([sys.executable, "-m", "cnnviz", "train", "--resume", str(out), "--epochs",
                           str(record.epochs + 1), "--json", "--out", str(tmp_path / "more.pt")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["epoch"] for r in rows] == [record.epochs + 1]  # only the new epoch is trained
    more = read_record(tmp_path / "more.pt")
    assert more.complete and more.epochs == record.epochs + 1 and more.history[:record.epochs] == record.history
    _close(list(more.history[:3]), straight)  # the killed run had trained exactly what a straight run does
    again = subprocess.run([sys.executable, "-m", "cnnviz", "train", "--resume", str(out), "--epochs", "1"],
                           cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 2 and "ask for more with --epochs" in again.stderr


def test_train_all_continues_an_unfinished_shipped_file_in_place_and_retrains_a_stale_one(tmp_path, monkeypatch):
    """A killed `train_all.py` leaves the planned run's file with its finished epochs: the next one resumes
    it (the same file, its optimizer state) instead of starting the run again."""
    import importlib.util

    import torch

    from cnnviz.checkpoints import make_meta, save_checkpoint
    from cnnviz.models import build_model
    from cnnviz.shipped import command_for, shipped_runs

    monkeypatch.setenv("CNNVIZ_CHECKPOINTS", str(tmp_path))
    spec = importlib.util.spec_from_file_location("train_all", Path(__file__).parent.parent / "scripts" / "train_all.py")
    train_all = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_all)
    run = next(r for r in shipped_runs() if r.config.arch == "lenet5")
    model = build_model("lenet5", (1, 28, 28))
    opt = torch.optim.Adam(model.parameters())

    def write(command, complete):
        meta = make_meta(arch="lenet5", downsample="max", dataset={"name": "fashion-mnist"}, in_shape=(1, 28, 28),
                         num_classes=10, train={"epochs": 10}, history=[{"epoch": 1, "test_acc": 0.5}],
                         complete=complete, reason="", model=model, command=command)
        save_checkpoint(run.path, meta, model, optimizer_state=opt.state_dict(), overwrite=True)

    assert train_all.state_of(run) == "todo"  # missing
    write(command_for(run), complete=False)
    assert train_all.state_of(run) == "unfinished" and not train_all.up_to_date(run)
    args = train_all.train_command(run, "auto")
    assert args[:4] == ["-m", "cnnviz", "train", "--resume"] and args[4] == str(run.path)
    assert args[args.index("--out") + 1] == str(run.path) and args[args.index("--epochs") + 1] == "10"
    write(command_for(run) + " --extra", complete=False)
    assert train_all.state_of(run) == "todo" and train_all.train_command(run, "cpu")[-2:] == ["--device", "cpu"]
    write(command_for(run), complete=True)
    assert train_all.state_of(run) == "done" and train_all.up_to_date(run)
