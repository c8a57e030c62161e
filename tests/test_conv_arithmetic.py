"""cnnviz.conv_arithmetic: the output-size calculator against real convolutions, the sliding window, and
receptive fields."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnviz import figures
from cnnviz.conv_arithmetic import conv_output_size, measure_conv_output, receptive_fields, window_at
from cnnviz.downsample import list_downsamples
from cnnviz.models import build_model


@pytest.mark.parametrize("size", [1, 4, 7, 28, 33])
@pytest.mark.parametrize("kernel,padding,stride", [(1, 0, 1), (3, 1, 1), (3, 1, 2), (5, 0, 1), (7, 3, 3), (2, 0, 2)])
def test_measured_output_size_equals_the_lectures_formula_and_f_conv2d(size, kernel, padding, stride):
    if size + 2 * padding < kernel:
        with pytest.raises(ValueError, match="does not fit"):
            measure_conv_output(size, kernel, padding, stride)
        return
    oracle = F.conv2d(torch.zeros(1, 1, size, size), torch.zeros(1, 1, kernel, kernel), stride=stride,
                      padding=padding).shape[-1]
    assert measure_conv_output(size, kernel, padding, stride) == conv_output_size(size, kernel, padding, stride) == oracle


@pytest.mark.parametrize("args", [(0, 3, 0, 1), (4, 3, -1, 1), (4, 3, 0, 0), (4, 0, 0, 1), (4.5, 3, 0, 1)])
def test_measure_refuses_numbers_that_are_not_a_convolution(args):
    with pytest.raises(ValueError):
        measure_conv_output(*args)


def test_window_of_each_output_cell_moves_by_the_stride():
    # The lecture's 4x4 input with padding 1, 3x3 kernel, stride 1: m6 is row 1, column 1.
    w = window_at(5, 4, 3, 1, 1)
    assert (w.out_row, w.out_col, w.row, w.col) == (1, 1, 1, 1)
    w = window_at(8, 5, 3, 1, 2)  # 3x3 output, last cell
    assert (w.out_row, w.out_col, w.row, w.col) == (2, 2, 4, 4)
    with pytest.raises(ValueError):
        window_at(9, 5, 3, 1, 2)
    fig = figures.sliding_figure(4, 3, 1, 1, 5)
    assert np.asarray(fig.data[0].z).shape == (6, 6) and np.asarray(fig.data[1].z).shape == (4, 4)


def test_output_size_formula_equals_a_real_conv():
    checked = 0
    for size in (5, 7, 14, 28, 32, 33):
        for kernel in (1, 3, 5, 7):
            for padding in (0, 1, 2, 3):
                for stride in (1, 2, 3):
                    if size + 2 * padding < kernel:
                        continue  # nn.Conv2d refuses a kernel larger than the padded input
                    conv = nn.Conv2d(1, 1, kernel, stride=stride, padding=padding)
                    with torch.no_grad():
                        real = tuple(conv(torch.zeros(1, 1, size, size + 1)).shape[-2:])
                    formula = (conv_output_size(size, kernel, padding, stride),
                               conv_output_size(size + 1, kernel, padding, stride))
                    assert formula == real, (size, kernel, padding, stride)
                    checked += 1
    assert checked > 250


@pytest.mark.parametrize("dilation", [1, 2, 3])
def test_output_size_formula_handles_dilation(dilation):
    conv = nn.Conv2d(1, 1, 3, padding=1, dilation=dilation)
    with torch.no_grad():
        real = conv(torch.zeros(1, 1, 20, 20)).shape[-1]
    assert conv_output_size(20, 3, 1, 1, dilation) == real


@torch.no_grad()
def _measured_rf(model: nn.Sequential, upto: str, shape=(1, 28, 28)) -> int:
    """The oracle: perturb each input pixel by +-1000, one image each, and measure how many rows of the
    input can change the centre output cell of layer `upto` (its receptive field, in pixels)."""
    names = [n for n, _ in model.named_children()]
    trunk = model[: names.index(upto) + 1].eval()
    torch.manual_seed(0)
    x = torch.randn(1, *shape)
    base = trunk(x)  # (1, C, h, w)
    ci, cj = base.shape[-2] // 2, base.shape[-1] // 2
    h, w = shape[1:]
    batch = x.repeat(2 * h * w, 1, 1, 1)  # (2HW, C, H, W): one perturbed pixel per image
    idx = torch.arange(h * w)
    for sign, half in ((1, 0), (-1, 1)):
        batch[half * h * w + idx, :, idx // w, idx % w] += sign * 1000.0
    changed = (trunk(batch)[:, :, ci, cj] - base[:, :, ci, cj]).abs().amax(1) > 1e-4  # (2HW,)
    rows = (idx // w)[changed.view(2, h * w).any(0)]
    return int(rows.max() - rows.min() + 1)


@pytest.mark.parametrize("method", list_downsamples())
@pytest.mark.parametrize("arch, layers", [("lenet5", ("conv1", "relu1", "pool1", "conv2", "pool2")),
                                          ("downsample_compare", ("conv1", "pool1")),
                                          ("engineered", ("front", "pool1"))])
def test_receptive_fields_equal_the_measured_reach_of_every_method(arch, layers, method):
    model = build_model(arch, (1, 28, 28), downsample=method)
    rf = {r["name"]: r["rf"] for r in receptive_fields(model, (1, 28, 28))}
    for name in layers:
        if name in rf:  # a strided conv stands for its pool: that layer is not there
            assert rf[name] == _measured_rf(model, name), name


def test_receptive_field_is_the_whole_input_after_flatten():
    rows = receptive_fields(build_model("lenet5", (1, 28, 28)), (1, 28, 28))
    assert [r["rf"] for r in rows[:5]] == [5, 5, 6, 14, 14]  # conv 5, ReLU, pool 2 (jump 2), conv 5
    flat = next(r for r in rows if r["name"] == "flatten")
    assert flat["whole_input"] and flat["rf"] is None



@pytest.mark.parametrize("size, kernel, padding, stride", [(7, 3, 0, 2), (8, 3, 0, 2), (5, 2, 0, 1), (9, 5, 2, 1)])
def test_size_remarks_name_the_rows_the_floor_drops_and_same_padding(size, kernel, padding, stride):
    from cnnviz.conv_arithmetic import size_remarks

    remarks = size_remarks(size, kernel, padding, stride)
    out = F.conv2d(torch.zeros(1, 1, size, size), torch.ones(1, 1, kernel, kernel), padding=padding, stride=stride)
    reached = (out.shape[-1] - 1) * stride + kernel  # oracle: the rows a real conv's windows cover
    dropped = size + 2 * padding - reached
    assert any("the floor drops the last" in r for r in remarks) == (dropped > 0)
    if dropped:
        assert f"drops the last {dropped} row(s)" in remarks[0]
    assert any("'same' padding" in r for r in remarks) == (kernel % 2 == 1)
    if kernel % 2:
        same = F.conv2d(torch.zeros(1, 1, size, size), torch.ones(1, 1, kernel, kernel), padding=(kernel - 1) // 2)
        assert same.shape[-1] == size and f"P=(K-1)/2={(kernel - 1) // 2}" in remarks[-1]
