"""Per-method summary of the shipped downsample_compare runs, checked against the checkpoints themselves."""
from __future__ import annotations

import os

import numpy as np
import pytest

from cnnviz import method_runs, shipped
from cnnviz.checkpoints import read_record


@pytest.fixture(scope="module")
def records():
    runs = [r for r in shipped.runs_of_group("seeds", "fashion-mnist") if r.path.exists()]
    if not runs:
        if os.environ.get("CI"):
            pytest.fail("the shipped fashion-mnist downsample_compare checkpoints are missing")
        pytest.skip("no shipped fashion-mnist downsample_compare checkpoint")
    return [read_record(r.path) for r in runs]


def test_each_methods_row_is_the_mean_over_its_seeds(records):
    order = list(dict.fromkeys(m.downsample for m in records))
    rows = method_runs.method_rows(records, order, {m: m.upper() for m in order})
    assert [r["method"] for r in rows] == [m.upper() for m in order]
    for row, method in zip(rows, order):
        mine = [m for m in records if m.downsample == method]
        finals = [m.history[-1]["test_acc"] for m in mine]
        assert row["seeds"] == len(mine)
        assert row["final test acc"] == pytest.approx(np.mean(finals))
        assert row["best test acc"] == pytest.approx(np.mean([max(h["test_acc"] for h in m.history) for m in mine]))
        if len(mine) > 1:
            assert row["± std (seeds)"] == pytest.approx(np.std(finals, ddof=1))


def test_twins_train_the_same_network_up_to_rounding(records):
    gaps = method_runs.twin_gaps(records)
    seed0 = method_runs.seed0_by_method(records)
    assert [(a, b) for a, b, _ in gaps] == [(a, b) for a, b in method_runs.TWINS if a in seed0 and b in seed0]
    for a, b, gap in gaps:
        assert gap < 0.01, (a, b, gap)  # same seed, same computation: well under a point of accuracy
