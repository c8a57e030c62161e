"""The run record and the training config: one definition each, read back from real checkpoints, and
the command line, the recorded command and the seed groups all generated from the config's fields."""
from __future__ import annotations

import dataclasses
import json
import math
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from cnnviz.checkpoints import read_record
from cnnviz.cli import build_parser
from cnnviz.config import NOT_THE_EXPERIMENT, RunConfig, config_fields
from cnnviz.paths import shipped_dir
from cnnviz.record import RunRecord
from cnnviz.shipped import shipped_runs

ROOT = Path(__file__).resolve().parent.parent


def _record(**train):
    history = [{"epoch": 1, "test_acc": 0.6, "train_acc": 0.5, "seconds": 2.0},
               {"epoch": 2, "test_acc": 0.7, "train_acc": 0.65, "seconds": 4.0},
               {"epoch": 3, "test_acc": 0.68, "train_acc": 0.7, "seconds": 3.0}]
    return RunRecord.from_meta({"arch": "lenet5", "downsample": "avg", "dataset": {"name": "cifar10"},
                                "history": history, "train": {"seed": 2, "lr": 1e-5, **train}, "params": 62006})


def test_the_record_derives_final_best_and_seconds_from_the_history():
    r = _record()
    assert (r.final_test_acc, r.best_test_acc, r.best_epoch, r.final_train_acc) == (0.68, 0.7, 2, 0.7)
    assert r.seconds_per_epoch == pytest.approx(3.0) and r.epochs == 3
    assert r.label == "lenet5 · avg · cifar10 · seed 2" and r.base_label == "lenet5 · avg · cifar10"
    # a file from before precision was recorded, trained on the CPU: fp32
    assert r.config == RunConfig(arch="lenet5", dataset="cifar10", downsample="avg", seed=2, lr=1e-5, precision="fp32")
    row = r.row()
    assert (row["test_acc"], row["best_epoch"], row["seed"], row["params"]) == (0.68, 2, 2, 62006)


def test_a_record_without_epochs_or_with_empty_rows_has_nan_figures_not_an_error():
    empty = RunRecord.from_meta({"arch": "mlp", "dataset": {"name": "fashion-mnist"}, "history": [{}],
                                 "train": "not a dict"})
    assert math.isnan(empty.final_test_acc) and math.isnan(empty.best_test_acc) and empty.best_epoch is None
    assert empty.config == RunConfig(arch="mlp", precision="fp32")  # a malformed train record: the defaults


def test_same_experiment_except_the_seed_ignores_only_seed_device_and_storage():
    base = _record()
    for field in NOT_THE_EXPERIMENT:
        other = dataclasses.replace(base.config, **{field: {"seed": 9, "device": "cuda", "half": True}[field]})
        assert dataclasses.replace(base, config=other).experiment == base.experiment
    for change in ({"lr": 1e-3}, {"batch_size": 64}, {"optimizer": "sgd"}, {"limit_train": 100}, {"precision": "bf16"}):
        assert dataclasses.replace(base, config=dataclasses.replace(base.config, **change)).experiment != base.experiment
    stopped = dataclasses.replace(base, history=base.history[:1])  # fewer epochs trained: another group
    assert stopped.experiment != base.experiment


@pytest.mark.parametrize("run", [r for r in shipped_runs() if r.path.exists()], ids=lambda r: r.filename)
def test_every_shipped_file_gives_back_the_config_it_was_planned_with(run):
    record = read_record(run.path)
    assert record.config == run.config and record.device == "cpu"
    assert record.command == record.config.command(f"checkpoints/{run.filename}")  # made by its own command


def test_every_config_field_is_a_train_option_and_the_recorded_command_parses_back():
    cfg = RunConfig(arch="lenet5", dataset="cifar10", downsample="avg", epochs=3, lr=1e-5, optimizer="sgd",
                    batch_size=64, seed=4, device="cpu", limit_train=512, half=True)
    args = shlex.split(cfg.command("x.pt"))[3:]  # after "python -m cnnviz"
    parsed = build_parser().parse_args(args)
    assert RunConfig(**{f.name: getattr(parsed, f.name) for f in config_fields()}) == cfg
    default = RunConfig(arch="conv_stride")  # defaults and a downsampling with no choice are left out
    assert default.command("y.pt") == ("python -m cnnviz train --arch conv_stride --dataset fashion-mnist "
                                       "--epochs 10 --lr 0.001 --batch-size 1024 --seed 0 --out y.pt")


def test_grid_options_are_the_config_fields_it_does_not_vary():
    parsed = build_parser().parse_args(["grid", "--arch", "mlp", "--out", "o", "--optimizer", "adamw",
                                        "--limit-train", "10", "--half"])
    assert (parsed.optimizer, parsed.limit_train, parsed.half, parsed.seeds) == ("adamw", 10, True, "0")


def test_the_library_lists_the_shipped_checkpoints_from_any_folder(tmp_path):
    """Outside the checkout (cwd elsewhere, cnnviz found on the path) `list` still finds the shipped
    runs; CNNVIZ_CHECKPOINTS points it anywhere else."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("CNNVIZ_CHECKPOINTS", None)
    proc = subprocess.run([sys.executable, "-m", "cnnviz", "list", "--json"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    files = [json.loads(line)["file"] for line in proc.stdout.splitlines()]
    assert files == sorted(p.name for p in shipped_dir().glob("*.pt")) and files
    empty = tmp_path / "none"
    empty.mkdir()
    proc = subprocess.run([sys.executable, "-m", "cnnviz", "list"], cwd=tmp_path, capture_output=True, text=True,
                          env={**env, "CNNVIZ_CHECKPOINTS": str(empty)}, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "no checkpoints found"
