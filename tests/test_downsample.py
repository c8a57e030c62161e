"""Each 2x2 downsampling option against an independent oracle (torch.nn.functional or numpy)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnviz.downsample import (apply_downsample, downsample_label, downsample_of, get_downsample, list_downsamples,
                               make_downsample, register_downsample)

SIZES = [(28, 28), (14, 14), (7, 7), (9, 12), (32, 32), (5, 3)]


@pytest.fixture
def fmap(seeded):
    return torch.randn(2, 3, 14, 14)


@pytest.mark.parametrize("hw", SIZES)
@pytest.mark.parametrize("method, oracle", [
    ("max", lambda x: F.max_pool2d(x, kernel_size=2, stride=2)),
    ("avg", lambda x: F.avg_pool2d(x, kernel_size=2, stride=2)),
    ("bilinear", lambda x: F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)),
    ("nearest", lambda x: F.interpolate(x, scale_factor=0.5, mode="nearest")),
])
def test_downsample_equals_the_torch_functional_oracle(method, oracle, hw, seeded):
    x = torch.randn(2, 3, *hw)
    expected = oracle(x)
    torch.testing.assert_close(apply_downsample(x, method), expected, rtol=0, atol=0)
    torch.testing.assert_close(make_downsample(method)(x), expected, rtol=0, atol=0)


def test_bilinear_half_averages_each_2x2_block_like_avg_pooling(fmap):
    # align_corners=False samples at pixel centres: on even sizes x0.5 bilinear is the 2x2 mean.
    torch.testing.assert_close(apply_downsample(fmap, "bilinear"), F.avg_pool2d(fmap, 2))


def test_nearest_half_keeps_the_top_left_pixel_of_each_block(fmap):
    torch.testing.assert_close(apply_downsample(fmap, "nearest"), fmap[..., ::2, ::2], rtol=0, atol=0)


@pytest.mark.parametrize("kernel, padding, hw", [
    (k, p, hw) for k, p in [(3, 1), (3, 0), (5, 0), (5, 2), (7, 0)] for hw in SIZES
    if min(hw) + 2 * p >= k])  # the kernel must fit in the padded input
def test_stride_on_a_stride_1_conv_output_equals_the_stride_2_conv(kernel, padding, hw, seeded):
    conv1 = nn.Conv2d(3, 8, kernel, padding=padding).double()
    conv2 = nn.Conv2d(3, 8, kernel, padding=padding, stride=2).double()
    conv2.load_state_dict(conv1.state_dict())
    x = torch.randn(2, 3, *hw, dtype=torch.float64)
    with torch.no_grad():
        sampled, strided = apply_downsample(conv1(x), "stride"), conv2(x)
    assert sampled.shape == strided.shape
    # Same products, same sums; only the backend's summation order may differ (float64 rounding).
    torch.testing.assert_close(sampled, strided, rtol=0, atol=1e-12)


def _blurmax_numpy(x: np.ndarray) -> np.ndarray:
    """Zhang's anti-aliased max pooling written out: dense 2x2 max, reflect pad, [1,2,1]^2/16, step 2."""
    m = np.maximum.reduce([x[..., :-1, :-1], x[..., 1:, :-1], x[..., :-1, 1:], x[..., 1:, 1:]])
    p = np.pad(m, [(0, 0), (0, 0), (1, 1), (1, 1)], mode="reflect")  # numpy's reflect excludes the edge
    w = np.array([1.0, 2.0, 1.0])
    h_out, w_out = (p.shape[-2] - 3) // 2 + 1, (p.shape[-1] - 3) // 2 + 1
    out = np.zeros(x.shape[:2] + (h_out, w_out))
    for a in range(3):
        for b in range(3):
            out += w[a] * w[b] / 16 * p[..., a:a + 2 * h_out:2, b:b + 2 * w_out:2]
    return out


@pytest.mark.parametrize("hw", SIZES)
def test_blurmax_equals_dense_max_then_reflect_padded_binomial_blur_with_stride_2(hw, seeded):
    x = torch.randn(2, 3, *hw, dtype=torch.float64)
    expected = torch.from_numpy(_blurmax_numpy(x.numpy()))
    torch.testing.assert_close(apply_downsample(x, "blurmax"), expected)
    assert expected.shape[-2:] == (hw[0] // 2, hw[1] // 2)


def test_blurmax_of_a_2x2_map_is_its_maximum(seeded):
    # VGG16's last block: the dense max leaves one pixel, and a normalised blur of one pixel is itself.
    x = torch.randn(2, 4, 2, 2)
    torch.testing.assert_close(apply_downsample(x, "blurmax"), x.amax(dim=(-2, -1), keepdim=True))


def test_blurmax_kernel_is_a_fixed_buffer_not_a_parameter():
    layer = make_downsample("blurmax")
    assert list(layer.parameters()) == []
    assert "kernel" not in layer.state_dict()  # not saved in checkpoints either


@pytest.mark.parametrize("method", list_downsamples())
@pytest.mark.parametrize("hw", SIZES)
def test_every_method_halves_height_and_width(method, hw, seeded):
    out = apply_downsample(torch.randn(1, 2, *hw), method)
    # A strided conv covers the last row of an odd map (ceil); the 2x2 windows drop it (floor).
    halve = (lambda n: (n + 1) // 2) if method == "stride" else (lambda n: n // 2)
    assert out.shape == (1, 2, halve(hw[0]), halve(hw[1]))


def test_stride_is_no_layer_in_a_trunk_and_every_other_pixel_on_a_map(fmap):
    # In a conv trunk the conv before it gets stride 2 (no pool layer, see test_models); on a feature
    # map its layer keeps every other pixel, what that strided conv computes.
    assert get_downsample("stride").strides_conv
    assert not any(get_downsample(m).strides_conv for m in list_downsamples() if m != "stride")
    torch.testing.assert_close(make_downsample("stride")(fmap), fmap[..., ::2, ::2], rtol=0, atol=0)


# ---- the registry ------------------------------------------------------------------------------

def test_the_lecture_methods_are_registered_in_the_lectures_order():
    assert list_downsamples() == ["max", "avg", "bilinear", "nearest", "stride", "blurmax"]
    assert get_downsample("max").label == "Max pooling 2x2" and get_downsample("stride").short == "the strided conv"


def test_a_duplicate_name_is_refused_and_an_unknown_one_lists_the_methods():
    with pytest.raises(ValueError, match="registered twice"):
        register_downsample(get_downsample("max"))
    with pytest.raises(ValueError) as err:
        get_downsample("median")
    assert all(m in str(err.value) for m in list_downsamples())


@pytest.mark.parametrize("method", list_downsamples())
def test_a_built_layer_leads_back_to_its_entry_and_adds_nothing_to_the_state_dict(method):
    layer = make_downsample(method)
    assert downsample_of(layer) is get_downsample(method)
    assert list(layer.parameters()) == [] and dict(layer.state_dict()) == {}
    assert downsample_of(nn.MaxPool2d(2)) is None  # a layer not built from the registry has no method
    assert downsample_label(method) == get_downsample(method).label and downsample_label("old") == "old"


@pytest.mark.parametrize("pattern", ["1..16", "random integers", "checkerboard", "one bright pixel"])
def test_worked_example_latex_writes_each_blocks_four_values_and_its_result(pattern):

    import numpy as np

    from cnnviz.features import worked_example, worked_example_latex, worked_pattern

    grid, kernel = worked_pattern(pattern), np.array([[1.0, -1.0], [0.5, 2.0]])
    blocks = grid.reshape(2, 2, 2, 2).transpose(0, 2, 1, 3).reshape(4, 4)  # the 2x2 blocks, row by row
    results = worked_example(grid, kernel, 0.5)
    for method in ("max", "avg", "bilinear", "nearest", "stride"):
        text = worked_example_latex(method, grid, kernel, 0.5, results[method])
        lines = text.removeprefix(r"\begin{aligned}").removesuffix(r"\end{aligned}").split(r"\\ ")
        assert len(lines) == 4
        for line, block, out in zip(lines, blocks, results[method].reshape(-1)):
            assert line.endswith(f"= {out:.4g}")
            if method == "max":
                assert f"\\max({', '.join(f'{v:g}' for v in block)})" in line
                assert out == block.max()
            if method == "nearest":
                assert out == block[0]
    with pytest.raises(ValueError):
        worked_pattern("plaid")


def test_the_worked_example_remark_and_the_difference_sentence_follow_the_numbers():
    from cnnviz import features

    grid = features.worked_pattern("1..16")
    avg = features.worked_example(grid, np.full((2, 2), 0.25))
    assert features.worked_example_remark(avg).startswith("With these weights the strided convolution computes "
                                                          "exactly average pooling")
    top_left = features.worked_example(grid, np.array([[1.0, 0.0], [0.0, 0.0]]))
    assert "exactly nearest x0.5" in features.worked_example_remark(top_left)
    assert features.worked_example_remark(features.worked_example(grid, np.ones((2, 2)))) is None
    # oracle: torch's own pooling and interpolation on the same 24x24 maps
    x = torch.rand(1, 4, 24, 24)
    same = (F.avg_pool2d(x, 2) - F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)).numpy()
    assert features.difference_sentence(same, (4, 12, 12), (4, 12, 12)).startswith("The two methods give identical")
    # the reason named is the pair's own: nearest and the strided conv are equal for another reason than avg/bilinear
    nearest = F.interpolate(x, scale_factor=0.5, mode="nearest")
    strided_pixels = x[..., ::2, ::2]  # what a stride-2 conv computes, at rows and columns 0, 2, 4, ...
    zero = (nearest - strided_pixels).numpy()
    assert np.abs(zero).max() == 0
    text = features.difference_sentence(zero, (4, 12, 12), (4, 12, 12), "nearest", "stride")
    assert "0, 2, 4" in text and "average" not in text
    text = features.difference_sentence(same, (4, 12, 12), (4, 12, 12), "bilinear", "avg")
    assert "average pooling" in text and "0, 2, 4" not in text
    assert "same method" in features.difference_sentence(zero, (4, 12, 12), (4, 12, 12), "max", "max")
    delta = (F.max_pool2d(x, 2) - F.avg_pool2d(x, 2)).numpy()
    assert features.difference_sentence(delta, (4, 12, 12), (4, 12, 12)) == (
        "Blue: A larger, red: B larger (colour scale centred on 0). Shapes (4, 12, 12) and (4, 12, 12), compared on "
        "the common 12x12.")
    assert list(features.WORKED_NOTES) == ["max", "avg", "bilinear", "nearest", "stride"]
