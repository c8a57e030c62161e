"""`python -m cnnviz` as a user runs it: real subprocesses, JSON on stdout, one-line errors on stderr."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def cnnviz(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cnnviz", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def json_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def assert_one_line_error(proc: subprocess.CompletedProcess, code: int = 2):
    assert proc.returncode == code, proc
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error:")
    assert "Traceback" not in proc.stderr + proc.stdout


@pytest.fixture(scope="module")
def trained(fashion_mnist, tmp_path_factory):
    """One real 1-epoch lenet5 run through the CLI: (its JSON lines, the folder it wrote to)."""
    out = tmp_path_factory.mktemp("runs")
    proc = cnnviz("train", "--arch", "lenet5", "--epochs", "1", "--limit-train", "4096", "--json",
                  "--out-dir", str(out))
    assert proc.returncode == 0, proc.stderr
    return json_lines(proc.stdout), out


@pytest.mark.data
def test_summary_json_has_lenet5s_61706_params_and_its_layers(fashion_mnist):
    proc = cnnviz("summary", "--arch", "lenet5", "--dataset", "fashion-mnist", "--json")
    assert proc.returncode == 0, proc.stderr
    (out,) = json_lines(proc.stdout)
    assert out["total_params"] == 61_706 and out["trainable_params"] == 61_706
    layers = out["layers"]
    assert all({"name", "type", "output_shape", "params"} <= set(layer) for layer in layers)
    assert [(layer["name"], layer["type"], layer["output_shape"], layer["params"]) for layer in layers[:4]] == [
        ("conv1", "Conv2d", [6, 28, 28], 156), ("relu1", "ReLU", [6, 28, 28], 0),
        ("pool1", "MaxPool2d", [6, 14, 14], 0), ("conv2", "Conv2d", [16, 10, 10], 2416)]
    assert sum(layer["params"] for layer in layers) == 61_706


@pytest.mark.data
def test_summary_text_is_the_lecture_table(fashion_mnist):
    proc = cnnviz("summary", "--arch", "conv_only")
    assert proc.returncode == 0, proc.stderr
    assert "Total params: 2,635,146" in proc.stdout and "Estimated Total Size (MB): 10.83" in proc.stdout


@pytest.mark.data
def test_train_prints_one_json_line_per_epoch_and_writes_a_checkpoint(trained):
    rows, out = trained
    (row,) = rows
    assert {"epoch", "train_loss", "train_acc", "test_loss", "test_acc", "seconds",
            "images_per_second"} <= set(row)
    assert row["epoch"] == 1 and 0.1 < row["test_acc"] <= 1 and row["images_per_second"] > 0
    (ckpt,) = out.glob("*.pt")
    meta = torch.load(ckpt, weights_only=True)
    assert meta["arch"] == "lenet5" and meta["complete"] and meta["train"]["limit_train"] == 4096
    assert meta["history"][0]["test_acc"] == row["test_acc"]
    assert meta["command"].startswith("python -m cnnviz train --arch lenet5")


@pytest.mark.data
def test_evaluate_confirms_the_recorded_test_accuracy(trained):
    rows, out = trained
    (ckpt,) = out.glob("*.pt")
    proc = cnnviz("evaluate", str(ckpt), "--json")
    assert proc.returncode == 0, proc.stderr
    (result,) = json_lines(proc.stdout)
    assert result["recorded_test_acc"] == rows[0]["test_acc"]
    assert abs(result["test_acc"] - rows[0]["test_acc"]) < 0.005
    assert result["dataset_source"]


@pytest.mark.data
def test_a_second_train_run_never_overwrites_the_first(trained, tmp_path):
    _, out = trained
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.pt")}
    proc = cnnviz("train", "--arch", "lenet5", "--epochs", "1", "--limit-train", "1024", "--json",
                  "--out-dir", str(out))
    assert proc.returncode == 0, proc.stderr
    after = {p.name: p.stat().st_mtime_ns for p in out.glob("*.pt")}
    assert len(after) == len(before) + 1
    assert all(after[name] == mtime for name, mtime in before.items())


@pytest.mark.data
def test_list_json_gives_one_line_per_checkpoint(trained):
    _, out = trained
    proc = cnnviz("list", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json_lines(proc.stdout)
    assert len(rows) == len(list(out.glob("*.pt")))
    assert {r["arch"] for r in rows} == {"lenet5"}
    assert all({"file", "dataset", "test_acc", "params", "complete"} <= set(r) for r in rows)


def test_list_of_an_empty_folder_says_so(tmp_path):
    proc = cnnviz("list", str(tmp_path))
    assert proc.returncode == 0 and "no checkpoints found" in proc.stdout


def test_unknown_arch_is_one_line_on_stderr_without_a_traceback():
    proc = cnnviz("summary", "--arch", "resnet9000")
    assert_one_line_error(proc)
    assert "resnet9000" in proc.stderr and "lenet5" in proc.stderr


def test_a_downsample_the_arch_does_not_take_is_one_line():
    assert_one_line_error(cnnviz("summary", "--arch", "conv_only", "--downsample", "max"))


@pytest.mark.parametrize("kind", ["missing", "hostile", "junk"])
def test_evaluate_of_a_bad_file_exits_2_with_one_line(kind, tmp_path):
    path = tmp_path / f"{kind}.pt"
    marker = tmp_path / "pwned"
    if kind == "hostile":
        class Hostile:
            def __reduce__(self):
                return (open, (str(marker), "w"))

        torch.save({"format": "cnnviz-checkpoint", "payload": Hostile()}, path)
    elif kind == "junk":
        path.write_bytes(b"PK\x03\x04 not really a zip" * 50)
    proc = cnnviz("evaluate", str(path), "--json")
    assert_one_line_error(proc)
    assert proc.stdout == ""
    assert not marker.exists()
    if kind == "hostile":
        assert "refused" in proc.stderr
    if kind == "missing":
        assert str(path) in proc.stderr
