"""Checkpoints round-trip, and every bad file (hostile, broken, foreign) is one clear CheckpointError."""
from __future__ import annotations

import os
import pickle

import numpy as np
import pandas as pd
import pytest
import torch

from cnnviz.checkpoints import (FORMAT_VERSION, CheckpointError, list_checkpoints, load_checkpoint,
                                make_meta, read_meta, save_checkpoint)
from cnnviz.storage import safe_name, unique_path
from cnnviz.models import build_model

FMNIST = (1, 28, 28)


def _model(arch="lenet5", shape=FMNIST, seed=0):
    torch.manual_seed(seed)
    return build_model(arch, shape).eval()


def _meta(model, arch="lenet5", dataset="fashion-mnist", shape=FMNIST, **changes):
    meta = make_meta(arch=arch, downsample="max" if arch == "lenet5" else None,
                     dataset={"name": dataset, "source": "test", "lossy": False}, in_shape=shape,
                     num_classes=10, train={"seed": 0, "lr": 1e-3}, history=[{"epoch": 1, "test_acc": 0.5}],
                     complete=True, reason="completed", model=model)
    meta.update(changes)
    return meta


@pytest.fixture
def saved(tmp_path):
    """A real lenet5 checkpoint on disk, and the model it was made from."""
    model = _model()
    path = save_checkpoint(tmp_path / "lenet5.pt", _meta(model), model)
    return path, model


def _raw(path):
    return torch.load(path, weights_only=True)


# ---- round trips -----------------------------------------------------------------------------

def test_round_trip_rebuilds_a_model_with_identical_outputs(saved, seeded):
    path, model = saved
    ck = load_checkpoint(path)
    x = torch.randn(5, *FMNIST)
    with torch.no_grad():
        assert torch.equal(ck.model(x), model(x))
    assert not ck.model.training
    assert ck.meta["arch"] == "lenet5" and ck.meta["params"] == 61_706 and ck.path == path
    assert "state_dict" not in ck.meta


def test_loading_from_bytes_equals_loading_from_the_path(saved):
    path, _ = saved
    a, b = load_checkpoint(path), load_checkpoint(path.read_bytes())
    for (ka, va), (kb, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


def test_half_stores_float16_and_loads_float32_within_fp16_tolerance(tmp_path, seeded):
    model = _model()
    path = save_checkpoint(tmp_path / "half.pt", _meta(model), model, half=True)
    raw = _raw(path)
    assert raw["weights_dtype"] == "float16"
    assert all(v.dtype == torch.float16 for v in raw["state_dict"].values())
    ck = load_checkpoint(path)
    assert all(p.dtype == torch.float32 for p in ck.model.parameters())
    x = torch.randn(8, *FMNIST)
    with torch.no_grad():
        torch.testing.assert_close(ck.model(x), model(x), rtol=1e-2, atol=1e-3)
    full = save_checkpoint(tmp_path / "full.pt", _meta(model), model)
    assert path.stat().st_size < 0.6 * full.stat().st_size


def test_filter_snapshots_are_stored_with_the_weights(tmp_path):
    model = _model()
    snaps = [model.conv1.weight.detach().clone() for _ in range(3)]
    path = save_checkpoint(tmp_path / "s.pt", _meta(model), model, snapshots=snaps)
    assert _raw(path)["filter_snapshots"].shape == (3, 6, 1, 5, 5)
    assert "filter_snapshots" not in read_meta(path)


# ---- hostile files ---------------------------------------------------------------------------

class _OpensAFile:
    """Unpickling this calls open(marker, "w"): code execution, made visible as a new file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


class _RunsAShellCommand:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


@pytest.mark.parametrize("payload", [_OpensAFile, _RunsAShellCommand])
def test_a_pickle_that_would_run_code_is_refused_and_not_run(payload, tmp_path):
    marker = tmp_path / "pwned"
    hostile = tmp_path / "hostile.pt"
    model = _model()
    torch.save({**_meta(model), "state_dict": model.state_dict(), "extra": payload(marker)}, hostile)

    for source in (hostile, hostile.read_bytes()):
        with pytest.raises(CheckpointError, match="refused"):
            load_checkpoint(source)
    with pytest.raises(CheckpointError):
        read_meta(hostile)
    assert not marker.exists()

    # The file really is hostile: an unguarded load runs its code.
    torch.load(hostile, weights_only=False)
    assert marker.exists()


def test_a_plain_pickle_with_code_is_refused_too(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "plain.pkl"
    path.write_bytes(pickle.dumps(_OpensAFile(marker), protocol=2))
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)
    assert not marker.exists()


# ---- broken and foreign files ----------------------------------------------------------------

def test_a_truncated_file_is_not_readable(saved, tmp_path):
    path, _ = saved
    cut = tmp_path / "cut.pt"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(cut)


def test_random_bytes_are_not_readable(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))  # seeded: the same junk on every run
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(junk)


def test_a_torch_file_of_another_program_has_no_cnnviz_marker(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"state_dict": _model().state_dict()}, path)
    with pytest.raises(CheckpointError, match="not a cnnviz checkpoint"):
        load_checkpoint(path)


def test_a_newer_format_version_asks_to_update_cnnviz(tmp_path):
    model = _model()
    path = save_checkpoint(tmp_path / "new.pt", _meta(model, format_version=FORMAT_VERSION + 1), model)
    with pytest.raises(CheckpointError, match="newer.*update cnnviz"):
        load_checkpoint(path)


@pytest.mark.parametrize("drop, message", [
    ("arch", "missing its architecture or dataset"),
    ("dataset", "missing its architecture or dataset"),
    ("in_shape", "cannot rebuild the model"),
    ("state_dict", "has no weights"),
])
def test_a_missing_record_is_named(drop, message, saved, tmp_path):
    path, _ = saved
    obj = _raw(path)
    del obj[drop]
    broken = tmp_path / f"no-{drop}.pt"
    torch.save(obj, broken)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(broken)


def test_an_unknown_architecture_name_is_named(saved, tmp_path):
    path, _ = saved
    obj = {**_raw(path), "arch": "resnet9000"}
    torch.save(obj, tmp_path / "r.pt")
    with pytest.raises(CheckpointError, match="resnet9000"):
        load_checkpoint(tmp_path / "r.pt")


@pytest.mark.parametrize("change", ["extra", "missing", "shape"])
def test_weights_that_do_not_fit_the_architecture_are_refused(change, saved, tmp_path):
    path, _ = saved
    obj = _raw(path)
    state = obj["state_dict"]
    if change == "extra":
        state["fc9.weight"] = torch.zeros(3, 3)
    elif change == "missing":
        del state["fc1.bias"]
    else:
        state["conv1.weight"] = torch.zeros(6, 1, 3, 3)
    torch.save(obj, tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match="weights do not fit the architecture"):
        load_checkpoint(tmp_path / "w.pt")


def test_expecting_another_arch_or_dataset_is_refused_with_both_names(saved):
    path, _ = saved
    with pytest.raises(CheckpointError, match="lenet5, not a vgg16"):
        load_checkpoint(path, expect_arch="vgg16")
    with pytest.raises(CheckpointError, match="trained on fashion-mnist, not cifar10"):
        load_checkpoint(path, expect_dataset="cifar10")
    assert load_checkpoint(path, expect_arch="lenet5", expect_dataset="fashion-mnist").meta["arch"] == "lenet5"


def test_a_file_over_the_size_limit_is_refused_before_reading(saved):
    path, _ = saved
    with pytest.raises(CheckpointError, match="over the"):
        load_checkpoint(path, max_bytes=1000)
    with pytest.raises(CheckpointError, match="over the"):
        load_checkpoint(path.read_bytes(), max_bytes=1000)


@pytest.mark.parametrize("max_bytes", [None, 1000])
def test_a_missing_file_is_named_with_or_without_a_size_limit(max_bytes, tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint file at"):
        load_checkpoint(tmp_path / "gone.pt", max_bytes=max_bytes)


# ---- names and listing -----------------------------------------------------------------------

def test_save_refuses_to_overwrite_an_existing_file(saved):
    path, model = saved
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        save_checkpoint(path, _meta(model), model)
    assert path.read_bytes() == before
    save_checkpoint(path, _meta(model), model, overwrite=True)  # only when asked
    assert not [p for p in path.parent.iterdir() if ".tmp" in p.name]  # no temp files left behind


def test_unique_path_never_returns_an_existing_file(tmp_path):
    seen = set()
    for _ in range(4):
        p = unique_path(tmp_path, "fashion-mnist-lenet5")
        assert not p.exists() and p not in seen
        p.write_bytes(b"x")
        seen.add(p)
    assert sorted(p.name for p in seen) == ["fashion-mnist-lenet5-2.pt", "fashion-mnist-lenet5-3.pt",
                                            "fashion-mnist-lenet5-4.pt", "fashion-mnist-lenet5.pt"]


@pytest.mark.parametrize("name, expected", [
    ("../../etc/passwd", "passwd"),
    ("/abs/path/run.pt", "run"),
    ("..\\..\\windows\\evil", "evil"),
    ("my run: v2 (best)!", "my-run-v2-best"),
    ("..", "run"),
    ("", "run"),
    (".hidden", "hidden"),
])
def test_safe_name_keeps_files_inside_their_folder(name, expected):
    assert safe_name(name) == expected


@pytest.mark.parametrize("name", ["../../escape", "/etc/cron.d/x", "a/../../b"])
def test_unique_path_stays_in_its_folder(name, tmp_path):
    folder = tmp_path / "runs"
    assert unique_path(folder, name).parent == folder


def test_list_checkpoints_is_a_dataframe_of_the_readable_files(saved, tmp_path):
    path, model = saved
    save_checkpoint(tmp_path / "second.pt", _meta(model), model)
    (tmp_path / "broken.pt").write_bytes(b"nope")
    df = list_checkpoints(tmp_path)
    assert isinstance(df, pd.DataFrame)
    assert sorted(df["file"]) == ["lenet5.pt", "second.pt"]
    assert set(df["arch"]) == {"lenet5"} and list(df["test_acc"]) == [0.5, 0.5]
    assert list_checkpoints(tmp_path / "nothing-here").empty
