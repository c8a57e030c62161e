"""The runs table every page lists checkpoints from: each file is read once, again only when it changes."""
from __future__ import annotations

import os

import pytest
import torch

from pages.ui import catalog
from cnnviz import checkpoints
from cnnviz.checkpoints import make_meta, save_checkpoint
from cnnviz.models import build_model


def _save(folder, name, seed=0):
    torch.manual_seed(seed)
    model = build_model("mlp", (1, 28, 28))
    meta = make_meta(arch="mlp", downsample=None, dataset={"name": "fashion-mnist", "source": "test", "lossy": False},
                     in_shape=(1, 28, 28), num_classes=10, train={"seed": seed, "lr": 1e-3},
                     history=[{"epoch": 1, "test_acc": 0.5 + seed / 100}], complete=True, reason="completed",
                     model=model)
    return save_checkpoint(folder / name, meta, model)


@pytest.fixture
def folders(monkeypatch, tmp_path):
    shipped, user = tmp_path / "shipped", tmp_path / "runs"
    shipped.mkdir()
    user.mkdir()
    monkeypatch.setattr(catalog, "SHIPPED", shipped)
    monkeypatch.setattr(catalog, "USER_RUNS", user)
    reads = []
    real = checkpoints.read_meta
    monkeypatch.setattr(checkpoints, "read_meta", lambda p: reads.append(str(p)) or real(p))
    catalog._run_row.clear()
    yield shipped, user, reads
    catalog._run_row.clear()


def test_each_file_is_read_once_until_it_changes(folders):
    shipped, user, reads = folders
    a = _save(shipped, "a.pt")
    b = _save(user, "b.pt", seed=1)
    (user / "broken.pt").write_bytes(b"not a checkpoint")

    table = catalog.runs_table()
    assert list(table["file"]) == ["a.pt", "b.pt"] and list(table["origin"]) == ["shipped", "yours"]
    assert list(table["test_acc"]) == [0.5, 0.51]
    assert len(reads) == 3  # both checkpoints and the broken file, once each

    assert catalog.runs_table().equals(table) and len(reads) == 3  # nothing read again

    c = _save(user, "c.pt", seed=2)  # a new run appears at once, and only it is read
    assert list(catalog.runs_table()["file"]) == ["a.pt", "b.pt", "c.pt"] and reads[3:] == [str(c)]

    os.utime(a, (1, 1))  # a rewritten file (new mtime) is read again
    catalog.runs_table()
    assert reads[4:] == [str(a)]

    b.unlink()  # a removed one leaves the table
    assert list(catalog.runs_table()["file"]) == ["a.pt", "c.pt"]
    assert list(catalog.runs_table(include_user=False)["file"]) == ["a.pt"]
