"""The shipped checkpoints are what the manifest says, and re-evaluate to their recorded accuracy.

Every file in checkpoints/ is re-loaded and evaluated on the real test set of its dataset (the same
source kind it was trained on); the accuracy recomputed from the stored (fp16) weights must equal the
history's final test accuracy within 0.5 points. Nothing in a history can be edited by hand without
this failing, unless the weights are edited too.
"""
from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cnnviz.checkpoints import load_checkpoint
from cnnviz.manifest import manifest_entry
from cnnviz.paths import shipped_dir
from cnnviz import derived, shipped
from cnnviz.shipped import command_for, grid_commands, shipped_runs
from cnnviz.storage import sha256
from cnnviz.train import evaluate

SHIPPED_DIR = shipped_dir()
FILES = sorted(SHIPPED_DIR.glob("*.pt"))
ROOT = Path(__file__).resolve().parent.parent


def test_checkpoints_folder_is_small_and_listed_in_the_manifest():
    manifest = json.loads((SHIPPED_DIR / "manifest.json").read_text())
    listed = {e["file"]: e for e in manifest["runs"]}
    assert sorted(listed) == [p.name for p in FILES]
    assert sum(p.stat().st_size for p in SHIPPED_DIR.iterdir() if p.is_file()) < 100 * 2**20  # the budget for checkpoints/, derived results included
    for p in FILES:
        e = listed[p.name]
        assert e["sha256"] == sha256(p) and e["size_bytes"] == p.stat().st_size
        assert e == manifest_entry(p)  # every recorded figure is read from the file itself
        assert e["command"].startswith("python -m cnnviz train ") and e["complete"]


def test_every_shipped_file_is_a_planned_run_made_by_its_recorded_command():
    planned = {r.filename: r for r in shipped_runs()}
    for p in FILES:
        assert p.name in planned, f"{p.name} is not one of cnnviz.shipped.shipped_runs()"
        meta = load_checkpoint(p).meta
        assert meta["command"] == command_for(planned[p.name])
        # Compact storage: float16, and int8 per output channel for the large layers (VGG16, conv_only)
        assert meta["weights_dtype"] in ("float16", "float16+int8")
        assert len(meta["history"]) == planned[p.name].config.epochs  # every planned epoch (VGG16: 5)


@pytest.mark.parametrize("grid", grid_commands(), ids=lambda g: g["dataset"])
def test_the_manifests_grid_command_remakes_the_seed_group_and_finds_it_complete(grid, tmp_path):
    """The manifest names one grid command per seed group. Run on a copy of the shipped files, it has
    nothing left to train: every file is there, complete, and made with the grid's very settings."""
    assert grid in json.loads((SHIPPED_DIR / "manifest.json").read_text())["grids"]
    for name in grid["files"]:
        shutil.copy(SHIPPED_DIR / name, tmp_path / name)
    args = shlex.split(grid["command"])
    args[args.index("--out") + 1] = str(tmp_path)
    proc = subprocess.run([sys.executable, *args[1:], "--json"], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    runs = [r for r in rows if "status" in r]
    assert sorted(r["file"] for r in runs) == sorted(grid["files"])
    assert {r["status"] for r in runs} == {"skipped"}, [(r["file"], r["status"], r.get("error")) for r in runs]


def test_cifar10_checkpoints_record_the_lossy_jpeg_source():
    for p in FILES:
        meta = load_checkpoint(p).meta
        if meta["dataset"]["name"] == "cifar10" and meta["dataset"]["source"].startswith("image-folder"):
            assert meta["dataset"]["lossy"] is True


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_shipped_checkpoint_reevaluates_to_its_recorded_accuracy(path, request):
    ck = load_checkpoint(path)
    data = request.getfixturevalue(ck.meta["dataset"]["name"].replace("-", "_"))
    assert data.source.split(":")[0] == ck.meta["dataset"]["source"].split(":")[0]
    _, acc, pred = evaluate(ck.model, data, "test", "cpu", return_predictions=True)
    recorded = ck.record.final_test_acc
    assert abs(acc - recorded) <= 0.005, f"recomputed {acc:.4f} vs recorded {recorded:.4f}"
    # The pages read this file's predictions from checkpoints/derived.json: they must be these.
    stored = derived.lookup("predictions", [path], data, {})
    if stored is None and derived.stored_results():
        pytest.fail(f"no stored predictions for {path.name}: python scripts/train_all.py --derived-only")
    if stored is not None:
        flips = int((derived.decode_classes(stored["pred"]) != pred.numpy()).sum())
        assert flips == 0 if derived.store_computed_on() == derived.computed_on() else flips <= 5, flips


def test_the_pages_say_which_nets_are_shipped_and_how_to_make_the_missing_ones():
    from cnnviz.models import list_archs
    from cnnviz.shipped import availability

    for arch in list_archs():
        waiting = {r.group for r in shipped_runs() if r.config.arch == arch and not r.path.exists()}
        assert all(f"python scripts/train_all.py --group {g}" in availability(arch) for g in waiting), arch
        datasets = {r.config.dataset for r in shipped_runs() if r.config.arch == arch and r.path.exists()}
        text = availability(arch)
        assert text.startswith("Shipped") == bool(datasets), (arch, text)
        assert all(d in text for d in datasets), (arch, text)


def test_a_retrain_repeats_the_group_settings_with_fewer_epochs():
    run = next(r for r in shipped.runs_of_group("baselines", "cifar10") if r.config.arch == "learned_conv")
    cfg = shipped.retrain_config(run, 3)
    c = run.config
    assert (cfg.arch, cfg.dataset, cfg.downsample, cfg.lr, cfg.optimizer, cfg.batch_size, cfg.seed, cfg.epochs) == (
        c.arch, c.dataset, c.downsample, c.lr, c.optimizer, c.batch_size, c.seed, 3)
    assert cfg.batch_size == shipped.BASELINE_BATCH_SIZE


def test_the_missing_run_sentence_points_to_the_shipped_downsamplings():
    from cnnviz.downsample import downsample_label

    text = shipped.missing_sentence("lenet5", "cifar10", "avg")  # only max pooling is shipped
    if (SHIPPED_DIR / "cifar10-lenet5-max.pt").exists():
        assert text == (f"No shipped checkpoint of lenet5 ({downsample_label('avg')}) on cifar10. Shipped for cifar10 "
                        f"with: {downsample_label('max')}; pick it above.")
    # A planned run not trained yet names its own command; a net never planned says how to train it.
    lenet5_avg = shipped.missing_sentence("lenet5", "fashion-mnist", "avg")
    assert "Shipped for fashion-mnist with" in lenet5_avg
    planned = shipped.find_run("vgg16", "cifar10", "max")
    assert planned is not None and planned.config.lr == shipped.VGG16_LR
    if not planned.path.exists():
        assert shipped.command_for(planned) in shipped.missing_sentence("vgg16", "cifar10", "max")
    assert shipped.find_run("vgg16", "fashion-mnist") is None
    assert shipped.missing_sentence("vgg16", "fashion-mnist", "max").startswith("No shipped checkpoint of vgg16")
