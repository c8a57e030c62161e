"""Shift-invariance maths (cnnviz.shift) on real images."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from cnnviz import shift
from cnnviz.downsample import BlurMaxPool, apply_downsample, get_downsample, list_downsamples
from cnnviz.features import feature_maps


@pytest.fixture(scope="module")
def images(fashion_mnist):
    return shift.probe_images(fashion_mnist.test_x, 64)


# ---- shifting -------------------------------------------------------------------------------

def test_shift_images_moves_columns_right_and_fills_with_the_constant_or_the_edge():
    x = torch.arange(1, 1 + 2 * 5, dtype=torch.uint8).view(1, 1, 2, 5)
    np.testing.assert_array_equal(shift.shift_images(x, 2, 0)[0, 0].numpy(), [[0, 0, 1, 2, 3], [0, 0, 6, 7, 8]])
    np.testing.assert_array_equal(shift.shift_images(x, 2, "edge")[0, 0].numpy(),
                                  [[1, 1, 1, 2, 3], [6, 6, 6, 7, 8]])
    np.testing.assert_array_equal(shift.shift_images(x, 9, 7).numpy(), np.full((1, 1, 2, 5), 7))
    assert torch.equal(shift.shift_images(x, 0), x)
    with pytest.raises(ValueError):
        shift.shift_images(x, -1)


def test_half_pixel_map_shift_is_the_mean_of_the_two_whole_pixel_shifts():
    f = torch.randn(3, 4, 6, generator=torch.Generator().manual_seed(0))
    half = shift.shift_map(f, 1.5)
    expected = (f[..., :-1][..., :-1] + f[..., 1:][..., :-1]) / 2  # columns 2.. of the result
    torch.testing.assert_close(half[..., 2:], expected)
    assert torch.isnan(half[..., :2]).all()
    torch.testing.assert_close(shift.shift_map(f, 0), f)


def test_interior_refuses_a_map_with_no_columns_left():
    assert shift.interior(12, 4) == slice(3, 11)
    with pytest.raises(ValueError):
        shift.interior(4, 4)


# ---- the probe ------------------------------------------------------------------------------

@pytest.mark.parametrize("method", list_downsamples())
def test_shift_zero_gives_agreement_one_and_similarity_one(method, images, fashion_mnist):
    model = shift.untrained_model(downsample=method)
    row = shift.shift_probe(model, images, fashion_mnist.normalize, shifts=(0,))[0]
    assert row["agreement"] == 1.0
    assert row["similarity"] == pytest.approx(1.0, abs=1e-9)


def test_two_pixel_input_shift_gives_exactly_the_one_pixel_shifted_max_pooled_map(images, fashion_mnist):
    model = shift.untrained_model(downsample="max")
    x0 = fashion_mnist.normalize(images)
    x2 = fashion_mnist.normalize(shift.shift_images(images, 2, 0))
    p0 = feature_maps(model, x0, ["pool1"])["pool1"]  # (B, 32, 12, 12)
    p2 = feature_maps(model, x2, ["pool1"])["pool1"]
    # Away from the left border (the 2 filled input columns reach pooled column 0) they are identical.
    assert torch.equal(p2[..., 1:], p0[..., :-1])


@pytest.mark.parametrize("method", list_downsamples())
@pytest.mark.parametrize("fill", [0, "edge"])
def test_every_2x2_downsampler_is_exactly_equivariant_to_even_shifts_on_the_interior(method, fill, images,
                                                                                      fashion_mnist):
    model = shift.untrained_model(downsample=method)
    rows = shift.shift_probe(model, images, fashion_mnist.normalize, shifts=(0, 2, 4), fill=fill)
    for r in rows:
        assert r["similarity_min"] == pytest.approx(1.0, abs=1e-9), r


def test_odd_shifts_are_not_exact_for_max_pooling(images, fashion_mnist):
    model = shift.untrained_model(downsample="max")
    rows = {r["shift"]: r for r in shift.shift_probe(model, images, fashion_mnist.normalize, shifts=(0, 1, 3))}
    assert rows[1]["similarity"] < 0.999
    assert rows[3]["similarity"] < 0.999


def test_probe_uses_the_strided_convs_relu_when_there_is_no_pool_layer():
    assert shift.downsampled_layer(shift.untrained_model(downsample="stride")) == "relu1"
    assert shift.downsampled_layer(shift.untrained_model(downsample="avg")) == "pool1"


def test_probe_on_cifar10_images_with_edge_fill(cifar10):
    model = shift.untrained_model((3, 32, 32), 10, "blurmax")
    df = shift.shift_probe_runs({"blurmax": model}, shift.probe_images(cifar10.test_x, 16), cifar10.normalize,
                                shifts=(0, 1, 2), fill="edge")
    assert list(df["shift"]) == [0, 1, 2]
    assert df["similarity"].iloc[0] == pytest.approx(1.0) and df["similarity"].iloc[2] == pytest.approx(1.0)


def test_probe_images_are_a_fixed_sample():
    x = torch.arange(100).view(100, 1, 1, 1)
    a, b = shift.probe_images(x, 10), shift.probe_images(x, 10)
    assert torch.equal(a, b) and len(torch.unique(a)) == 10


# ---- blurmax --------------------------------------------------------------------------------

def test_blurmax_is_stride_1_max_pooling_then_the_fixed_blur_subsampled_by_2():
    x = torch.randn(2, 3, 10, 10, generator=torch.Generator().manual_seed(1))
    m = F.max_pool2d(x, kernel_size=2, stride=1).numpy()  # (2, 3, 9, 9)
    padded = np.pad(m, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="reflect")
    k = np.array([1.0, 2.0, 1.0])
    blur = np.outer(k, k) / 16
    h = (padded.shape[-2] - 3) // 2 + 1
    w = (padded.shape[-1] - 3) // 2 + 1
    expected = np.zeros((2, 3, h, w))
    for i in range(h):
        for j in range(w):
            expected[..., i, j] = (padded[..., 2 * i:2 * i + 3, 2 * j:2 * j + 3] * blur).sum((-2, -1))
    np.testing.assert_allclose(BlurMaxPool()(x).numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(apply_downsample(x, "blurmax").numpy(), expected, rtol=1e-5, atol=1e-6)


# ---- spectra --------------------------------------------------------------------------------

def test_a_checkerboard_is_all_high_frequency_and_a_slow_ramp_is_none():
    i, j = np.meshgrid(np.arange(24), np.arange(24), indexing="ij")
    checker = torch.tensor(((i + j) % 2).astype(np.float64))
    assert shift.high_frequency_fraction(checker) == pytest.approx(1.0)
    slow = torch.tensor(np.cos(2 * np.pi * j / 24))  # 1/24 cycles per pixel
    assert shift.high_frequency_fraction(slow) == pytest.approx(0.0, abs=1e-12)


def test_spectrum_is_centred_and_matches_numpy():
    f = torch.randn(12, 12, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    expected = np.log1p(np.abs(np.fft.fftshift(np.fft.fft2(f.numpy() - f.numpy().mean()))))
    np.testing.assert_allclose(shift.spectrum(f), expected, rtol=1e-10, atol=1e-10)
    assert shift.spectrum(f)[6, 6] == pytest.approx(0.0, abs=1e-9)  # the removed mean sits in the centre


# ---- models for the comparison --------------------------------------------------------------

def test_untrained_model_is_reproducible_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a, b = shift.untrained_model(), shift.untrained_model()
    assert torch.equal(torch.random.get_rng_state(), before)
    assert torch.equal(a.conv1.weight, b.conv1.weight)
    assert not torch.equal(a.conv1.weight, shift.untrained_model(seed=1).conv1.weight)


def test_dense_copy_of_a_strided_conv_subsampled_is_the_trained_nets_own_output(images, fashion_mnist):
    model = shift.untrained_model(downsample="stride")
    dense, changed = shift.dense_for_comparison(model, "conv1")
    assert changed and model.conv1.stride == (2, 2) and dense.conv1.stride == (1, 1)
    x = fashion_mnist.normalize(images[:8])
    strided = feature_maps(model, x, ["relu1"])["relu1"]
    full = feature_maps(dense, x, ["relu1"])["relu1"]
    torch.testing.assert_close(full[..., ::2, ::2], strided)
    same, changed = shift.dense_for_comparison(shift.untrained_model(), "conv1")
    assert not changed


# ---- verdict --------------------------------------------------------------------------------

def test_verdict_names_the_best_method_at_the_largest_shift_and_its_margin_over_max():
    df = pd.DataFrame([
        {"method": "max", "shift": 0, "agreement": 1.0, "similarity": 1.0},
        {"method": "max", "shift": 1, "agreement": 0.95, "similarity": 0.90},
        {"method": "max", "shift": 2, "agreement": 0.90, "similarity": 1.0},
        {"method": "blurmax", "shift": 0, "agreement": 1.0, "similarity": 1.0},
        {"method": "blurmax", "shift": 1, "agreement": 0.99, "similarity": 0.97},
        {"method": "blurmax", "shift": 2, "agreement": 0.93, "similarity": 1.0},
    ])
    v = shift.shift_verdict(df)
    assert v.best == "blurmax"
    assert v.margin_points == pytest.approx(3.0)
    assert "3.0 percentage points" in v.sentence and "2-pixel" in v.sentence and "0.970" in v.sentence


def test_verdict_reports_a_tie_with_max_pooling_as_a_tie():
    df = pd.DataFrame([{"method": m, "shift": s, "agreement": a, "similarity": 1.0, "n": 200}
                       for m, a in (("max", 0.35), ("avg", 0.33), ("blurmax", 0.35)) for s in (0, 2)])
    v = shift.shift_verdict(df, {"max": "max pooling", "blurmax": "blurmax"})
    assert v.best == "blurmax" and v.margin_points == pytest.approx(0.0)
    assert "max pooling and blurmax tie" in v.sentence and "no method beats max pooling" in v.sentence
    assert "35.0% of the 200 images" in v.sentence


def test_conv2d_layers_lists_only_learned_convs():
    assert shift.conv2d_layers(shift.untrained_model()) == ["conv1"]


def test_probe_curve_pairs_and_table_read_the_probes_rows():
    import pandas as pd

    from cnnviz.shift import identical_pairs, probe_curve, probe_table

    rows = [(m, s, a, c) for m, base in (("max", 0.9), ("avg", 0.8), ("bilinear", 0.8), ("nearest", 0.7))
            for s, (a, c) in enumerate([(1.0, 1.0), (base, base - 0.1), (base - 0.05, base - 0.2)])]
    df = pd.DataFrame(rows, columns=["method", "shift", "agreement", "similarity"])
    assert probe_curve(df, "max", "agreement") == [{"epoch": 0, "agreement": 1.0}, {"epoch": 1, "agreement": 0.9},
                                                   {"epoch": 2, "agreement": pytest.approx(0.85)}]
    # avg and bilinear have the same numbers; nearest differs from max; stride was not probed
    assert identical_pairs(df, [("avg", "bilinear"), ("max", "nearest"), ("nearest", "stride")]) == [("avg", "bilinear")]
    table = probe_table(df, ["nearest", "max", "avg", "bilinear", "stride"], str.upper)
    assert list(table.index) == ["NEAREST", "MAX", "AVG", "BILINEAR"]
    assert list(table.columns) == [f"agreement @ {s}px" for s in range(3)] + [f"similarity @ {s}px" for s in range(3)]
    assert table.loc["MAX", "similarity @ 1px"] == pytest.approx(0.8)


def test_the_twins_sentence_names_the_probed_pairs_with_equal_numbers():
    import pandas as pd

    rows = [{"method": m, "shift": s, "agreement": a, "similarity": 1.0}
            for m, a in (("avg", 0.9), ("bilinear", 0.9), ("max", 0.8)) for s in (0, 1)]
    df = pd.DataFrame(rows)
    assert shift.identical_sentence(df, (("avg", "bilinear"), ("nearest", "stride"))) == (
        f"Lines that seem missing lie under their twin: {get_downsample('avg').short} and "
        f"{get_downsample('bilinear').short} give the same numbers (see section 3).")
    assert shift.identical_sentence(df, (("avg", "max"),)) is None


def test_a_probe_history_holds_both_curves_of_one_method():
    rows = [{"method": m, "shift": s, "agreement": 1 - 0.1 * s, "similarity": 1 - 0.01 * s - (m == "max")}
            for m in ("max", "avg") for s in range(3)]
    df = pd.DataFrame(rows)
    for m in ("max", "avg"):
        both = shift.probe_history(df, m)
        for metric in ("agreement", "similarity"):
            assert [{"epoch": r["epoch"], metric: r[metric]} for r in both] == shift.probe_curve(df, m, metric)
