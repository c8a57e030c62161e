"""Stored derived results (`checkpoints/derived.json`) are exactly what recomputation gives, and are only used
for the very files and test set they were computed from.

The stored predictions of every shipped file are compared with a fresh evaluation in
tests/test_shipped.py (which evaluates each file anyway); the shift probes are recomputed here. On the CPU
and torch that wrote the store they must be equal; elsewhere fp32 sums run in another order and may
flip a near-tie, so at most `FLIPS` predictions per result and 1e-6 of a cosine may differ (measured here:
0 of 10,000 predictions change between 1 and 2 threads, batch 256 and 1000, for four shipped nets).
"""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from cnnviz import derived, shift
from cnnviz.data import Dataset

FLIPS = 5


def same_machine() -> bool:
    return derived.store_computed_on() == derived.computed_on()


def planned_or_fail():
    entries = derived.planned_entries()
    if not derived.stored_results():
        if os.environ.get("CI"):
            pytest.fail("checkpoints/derived.json is missing: run python scripts/train_all.py --derived-only")
        pytest.skip("no derived results stored")
    return entries


def _data(request, files) -> Dataset:
    from cnnviz.checkpoints import read_meta

    return request.getfixturevalue(read_meta(files[0])["dataset"]["name"].replace("-", "_"))


@pytest.mark.data
def test_the_store_holds_every_planned_result_for_these_very_files_and_test_sets(request):
    """A shipped file retrained, or a test set that differs, without `train_all.py --derived-only`: this fails."""
    missing = [(kind, [f.name for f in files]) for kind, files, params in planned_or_fail()
               if derived.lookup(kind, files, _data(request, files), params) is None]
    assert not missing, f"stale or missing derived results (python scripts/train_all.py --derived-only): {missing}"


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.parametrize("dataset", ["fashion-mnist", "cifar10"])
def test_stored_shift_probes_equal_recomputation(dataset, request):
    planned_or_fail()
    entry = derived.shift_probe_entry(dataset)
    if entry is None:
        pytest.skip(f"no shipped downsampling nets for {dataset}")
    kind, files, params = entry
    data = _data(request, files)
    stored = derived.lookup(kind, files, data, params)
    assert stored is not None, "not stored: python scripts/train_all.py --derived-only"
    fresh = derived.KINDS[kind].compute(files, data, **params)
    assert [(r["method"], r["shift"], r["columns"]) for r in stored["rows"]] == \
        [(r["method"], r["shift"], r["columns"]) for r in fresh["rows"]]
    a = np.array([[r["agreement"], r["similarity"], r["similarity_min"]] for r in stored["rows"]])
    b = np.array([[r["agreement"], r["similarity"], r["similarity_min"]] for r in fresh["rows"]])
    if same_machine():
        np.testing.assert_array_equal(a, b)
    else:
        assert np.abs(a[:, 0] - b[:, 0]).max() * params["n"] <= FLIPS
        np.testing.assert_allclose(a[:, 1:], b[:, 1:], atol=1e-6)


# ---- what makes a stored result apply -----------------------------------------------------------------

def _tiny_data(fashion_mnist, n=200) -> Dataset:
    return Dataset("fashion-mnist", fashion_mnist.classes, fashion_mnist.train_x[:n], fashion_mnist.train_y[:n],
                   fashion_mnist.test_x[:n].clone(), fashion_mnist.test_y[:n].clone(), fashion_mnist.mean,
                   fashion_mnist.std, fashion_mnist.source)


@pytest.mark.data
def test_a_stored_result_is_used_only_for_the_same_file_and_test_set(fashion_mnist, tmp_path):
    from cnnviz.shipped import find_run

    source = find_run("downsample_compare", "fashion-mnist", "max").path
    if not source.exists():
        pytest.skip("the shipped max-pooling net is not there")
    ck = shutil.copy(source, tmp_path / "net.pt")
    data = _tiny_data(fashion_mnist)
    derived.write_store([("predictions", [ck], {})], lambda name: data, tmp_path)
    value, stored = derived.get("predictions", [ck], data, {}, tmp_path)
    assert stored and len(derived.decode_classes(value["pred"])) == 200
    fresh = derived.KINDS["predictions"].compute([ck], data)
    assert value == fresh  # JSON round trip is exact

    other = _tiny_data(fashion_mnist)
    other.test_x[0, 0, 0, 0] ^= 1  # one pixel of another test set
    assert derived.lookup("predictions", [ck], other, {}, tmp_path) is None
    assert derived.get("predictions", [ck], other, {}, tmp_path)[1] is False

    with open(ck, "ab") as f:  # the file changed (retrained, or edited by hand)
        f.write(b"\0")
    assert derived.lookup("predictions", [ck], data, {}, tmp_path) is None


def test_classes_round_trip_and_a_kind_is_registered_once():
    pred = np.array([0, 9, 3, 3, 7])
    assert derived.decode_classes(derived.encode_classes(pred)).tolist() == pred.tolist()
    with pytest.raises(ValueError, match="registered twice"):
        derived.kind("predictions", "again")(lambda files, data: {})


def test_the_plan_covers_every_shipped_file_and_each_datasets_probe_at_the_pages_defaults():
    from cnnviz.shipped import shipped_runs

    entries = derived.planned_entries()
    predicted = {files[0].name for kind, files, _ in entries if kind == "predictions"}
    assert predicted == {r.filename for r in shipped_runs() if r.path.exists()}
    for kind, files, params in entries:
        if kind == "shift_probe":
            assert (params["n"], params["k"]) == (shift.PROBE_IMAGES, shift.PROBE_MAX_SHIFT)
            assert len(files) == len(params["methods"])
