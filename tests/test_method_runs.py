"""Per-method summary of the shipped downsample_compare runs, checked against the checkpoints themselves."""
from __future__ import annotations

import os

import numpy as np
import pytest

from cnnviz import method_runs, shipped
from cnnviz.checkpoints import read_record
from cnnviz.downsample import downsample_label


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


def test_the_default_network_is_the_shipped_max_run_and_bands_and_twins_come_from_the_records():
    from cnnviz import shipped
    from cnnviz.checkpoints import read_record

    records = [read_record(r.path) for r in shipped.runs_of_group("seeds", "fashion-mnist") if r.path.exists()]
    if len(records) < 2:
        pytest.skip("the shipped seed runs are not there")
    rows = {r.file: {**r.row(), "origin": "shipped"} for r in records}
    rows = {"yours/x.pt": {**next(iter(rows.values())), "origin": "yours"}, **rows}
    # The same net at the slides' lr 1e-5 (also max pooling, seed 0) sorts first in the folder: not the default.
    twin = {**rows["fashion-mnist-downsample_compare-max.pt"], "file": "fashion-mnist-downsample_compare-max-lr1e-5.pt"}
    rows = {"fashion-mnist-downsample_compare-max-lr1e-5.pt": twin, **rows}
    assert method_runs.default_run(rows) == "fashion-mnist-downsample_compare-max.pt"
    no_max = {k: r for k, r in rows.items() if r["downsample"] != "max" or r["origin"] != "shipped"}
    assert method_runs.default_run(no_max) == next(k for k, r in no_max.items() if r["origin"] == "shipped")
    assert method_runs.default_run({"yours/x.pt": rows["yours/x.pt"]}) is None
    order = [m for m in ("max", "avg", "stride") if m in method_runs.seed0_by_method(records)]
    bands, groups = method_runs.seed_bands(records, order)
    for band, g in zip(bands, sorted(groups, key=lambda g: order.index(g.first.downsample))):
        # oracle: numpy over the seeds' own test-accuracy curves
        curves = np.array([[h["test_acc"] for h in r.history] for r in g.records])
        np.testing.assert_allclose(band["mean"], curves.mean(0))
        np.testing.assert_allclose(band["lo"], curves.min(0))
        assert band["n"] == len(g.records) > 1
    assert [b["label"] for b in bands] == [downsample_label(g.first.downsample) for g in
                                           sorted(groups, key=lambda g: order.index(g.first.downsample))]
    text = method_runs.twins_sentence(records)
    for a, b, gap in method_runs.twin_gaps(records):
        assert f"differ by at most {100 * gap:.2f} points" in text
    assert method_runs.twins_sentence([]) is None
