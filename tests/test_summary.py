"""The summary reproduces the lecture's tables, and its layer-shape diagram names each layer's kind."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from cnnviz import figures
from cnnviz.downsample import get_downsample, list_downsamples
from cnnviz.models import build_model, get_arch, list_archs
from cnnviz.summary import arch_summary, diagram_layers, summary, summary_table

FMNIST = (1, 28, 28)

# The lecture's tables (torchsummary output), copied from its slides.
LECTURE_CONV_ONLY = """
Conv2d-1	[-1, 32, 22, 22]	1,600
ReLU-2	[-1, 32, 22, 22]	0
Conv2d-3	[-1, 64, 16, 16]	100,416
ReLU-4	[-1, 64, 16, 16]	0
Conv2d-5	[-1, 128, 10, 10]	401,536
ReLU-6	[-1, 128, 10, 10]	0
Conv2d-7	[-1, 256, 4, 4]	1,605,888
ReLU-8	[-1, 256, 4, 4]	0
Flatten-9	[-1, 4096]	0
Linear-10	[-1, 128]	524,416
ReLU-11	[-1, 128]	0
Linear-12	[-1, 10]	1,290
"""
LECTURE_CONV_ONLY_TOTALS = """
Total params: 2,635,146
Trainable params: 2,635,146
Non-trainable params: 0
Input size (MB): 0.00
Forward/backward pass size (MB): 0.78
Params size (MB): 10.05
Estimated Total Size (MB): 10.83
"""
LECTURE_LENET_FC = """
Conv2d-1	[-1, 32, 28, 28]	320
ReLU-2	[-1, 32, 28, 28]	0
MaxPool2d-3	[-1, 32, 14, 14]	0
Conv2d-4	[-1, 64, 14, 14]	18,496
ReLU-5	[-1, 64, 14, 14]	0
MaxPool2d-6	[-1, 64, 7, 7]	0
Flatten-7	[-1, 3136]	0
Linear-8	[-1, 128]	401,536
ReLU-9	[-1, 128]	0
Linear-10	[-1, 10]	1,290
"""
LECTURE_LENET_1X1 = """
Conv2d-1	[-1, 32, 28, 28]	320
ReLU-2	[-1, 32, 28, 28]	0
MaxPool2d-3	[-1, 32, 14, 14]	0
Conv2d-4	[-1, 64, 14, 14]	18,496
ReLU-5	[-1, 64, 14, 14]	0
MaxPool2d-6	[-1, 64, 7, 7]	0
Conv2d-7	[-1, 128, 1, 1]	401,536
ReLU-8	[-1, 128, 1, 1]	0
Conv2d-9	[-1, 10, 1, 1]	1,290
Flatten-10	[-1, 10]	0
"""
LECTURE_LENET5 = """
Conv2d-1	[-1, 6, 28, 28]	156
ReLU-2	[-1, 6, 28, 28]	0
MaxPool2d-3	[-1, 6, 14, 14]	0
Conv2d-4	[-1, 16, 10, 10]	2,416
ReLU-5	[-1, 16, 10, 10]	0
MaxPool2d-6	[-1, 16, 5, 5]	0
Flatten-7	[-1, 400]	0
Linear-8	[-1, 120]	48,120
ReLU-9	[-1, 120]	0
Linear-10	[-1, 84]	10,164
ReLU-11	[-1, 84]	0
Linear-12	[-1, 10]	850
"""


def lecture_rows(table: str) -> list[tuple[str, str, str]]:
    return [tuple(line.split("\t")) for line in table.strip().splitlines()]


def text_rows(text: str) -> list[tuple[str, str, str]]:
    """(layer, output shape, params) of each layer line of `Summary.to_text()`."""
    rows = []
    for line in text.splitlines():
        if "[-1" in line:
            layer, rest = line.strip().split(None, 1)
            shape, params = rest.rsplit("]", 1)
            rows.append((layer, shape.strip() + "]", params.strip()))
    return rows


LECTURE_TABLES = {"conv_only": LECTURE_CONV_ONLY, "lenet_fc": LECTURE_LENET_FC,
                  "lenet_1x1": LECTURE_LENET_1X1, "lenet5": LECTURE_LENET5}


@pytest.mark.parametrize("arch", LECTURE_TABLES)
def test_summary_rows_equal_the_lecture_table(arch):
    table = LECTURE_TABLES[arch]
    text = summary(build_model(arch, FMNIST, downsample=None), FMNIST).to_text()
    assert text_rows(text) == lecture_rows(table)


def test_conv_only_summary_totals_and_sizes_equal_the_lecture():
    s = summary(build_model("conv_only", FMNIST), FMNIST)
    lines = [line.strip() for line in s.to_text().splitlines()]
    expected = LECTURE_CONV_ONLY_TOTALS.strip().splitlines()
    found = [line for line in lines if line in expected]
    assert found == expected  # every line present, in the lecture's order
    assert (s.total_params, s.trainable_params) == (2_635_146, 2_635_146)


def test_summary_is_data_first_one_row_per_leaf_layer():
    model = build_model("lenet5", FMNIST)
    s = summary(model, FMNIST)
    leaves = [n for n, m in model.named_modules() if n and not list(m.children())]
    assert [r["name"] for r in s.rows] == leaves
    assert sum(r["params"] for r in s.rows) == s.total_params == 61_706
    d = s.to_dict()
    assert d["total_params"] == 61_706 and d["layers"][0]["output_shape"] == [6, 28, 28]


def test_summary_counts_the_fixed_front_end_as_non_trainable():
    s = summary(build_model("engineered", FMNIST), FMNIST)
    assert s.total_params - s.trainable_params == 27  # three fixed 3x3 kernels
    assert "Non-trainable params: 27" in s.to_text()


def test_summary_rows_carry_the_formula_for_convs_and_pools():
    rows = {r["name"]: r for r in summary(build_model("lenet5", FMNIST), FMNIST).rows}
    assert rows["conv2"]["formula"] == "floor((14 - 5 + 2*0) / 1) + 1 = 10"
    assert rows["pool1"]["formula"] == "floor((28 - 2 + 2*0) / 2) + 1 = 14"


@pytest.mark.parametrize("training", [True, False])
def test_summary_removes_its_hooks_and_restores_the_train_flag(training):
    model = build_model("lenet5", FMNIST)
    model.train(training)
    summary(model, FMNIST)
    assert all(not m._forward_hooks for m in model.modules())
    assert all(m.training == training for m in model.modules())


class _Boom(nn.Module):
    def forward(self, x):
        raise RuntimeError("boom")


def test_summary_cleans_up_even_when_the_forward_pass_fails():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), _Boom())
    model.train()
    with pytest.raises(RuntimeError, match="boom"):
        summary(model, FMNIST)
    assert all(not m._forward_hooks for m in model.modules())
    assert model.training


def test_summary_table_has_the_lectures_columns_and_lenet_fc_numbers():
    s = summary(build_model("lenet_fc", (1, 28, 28)), (1, 28, 28))
    t = summary_table(s)
    assert list(t.columns[:3]) == ["Layer (type)", "Output Shape", "Param #"]
    assert list(t["Param #"]) == ["320", "0", "0", "18,496", "0", "0", "0", "401,536", "0", "1,290"]
    assert t["Output Shape"].iloc[6] == "[-1, 3136]"


def test_diagram_draws_one_box_per_shape_change_and_vgg16s_resize():
    s = summary(build_model("vgg16", (1, 28, 28)), (1, 28, 28))
    layers = diagram_layers(s)
    assert [d["name"] for d in layers[:3]] == ["input", "resize", "conv1"]
    assert layers[1]["shape"] == (1, 32, 32)
    assert layers[-1]["shape"] == (10,) and layers[-1]["size"] == 1
    assert not any(d["name"].startswith("relu") for d in layers)
    fig = figures.shapes_figure(s)
    assert len([sh for sh in fig.layout.shapes if sh.type == "rect"]) == len(layers)


@pytest.mark.parametrize("method", list_downsamples())
def test_diagram_draws_each_downsampling_layer_in_its_methods_colour(method):
    s = summary(build_model("lenet5", FMNIST, downsample=method), FMNIST)
    layers = diagram_layers(s)
    fig = figures.shapes_figure(s)
    boxes = [sh.fillcolor for sh in fig.layout.shapes if sh.type == "rect"]
    if get_downsample(method).strides_conv:  # no layer: the convs before it have stride 2
        assert not any(d["kind"] == "downsample" for d in layers)
        assert [r["output_shape"] for r in s.rows if r["name"] == "conv1"] == [(6, 14, 14)]
    else:
        pools = [i for i, d in enumerate(layers) if d["kind"] == "downsample"]
        assert [layers[i]["name"] for i in pools] == ["pool1", "pool2"]
        assert all(layers[i]["downsample"] == method for i in pools)
        assert [boxes[i] for i in pools] == [get_downsample(method).color] * 2
    assert "#7f7f7f" not in boxes  # no layer of the lecture's nets is an unknown grey "other"



@pytest.mark.parametrize("size,kernel,padding,stride", [(4, 3, 1, 1), (28, 5, 0, 1), (7, 2, 0, 2), (32, 3, 1, 2)])
def test_filled_in_formula_shows_the_numbers_and_ends_in_what_a_real_conv_gives(size, kernel, padding, stride):
    from cnnviz.conv_arithmetic import OUTPUT_SIZE_LATEX, output_size_latex

    real = nn.Conv2d(1, 1, kernel, stride, padding)(torch.zeros(1, 1, size, size)).shape[-1]
    text = output_size_latex(size, kernel, padding, stride)
    assert text.endswith(f"= {real}")
    assert rf"\frac{{{size} - {kernel} + 2 \times {padding}}}{{{stride}}}" in text
    assert rf"\frac{{{size - kernel + 2 * padding}}}{{{stride}}}" in text
    assert OUTPUT_SIZE_LATEX.startswith("S_o = ") and all(s in OUTPUT_SIZE_LATEX for s in ("S_D", "K", "2P", "{S}"))


def test_the_resize_note_gives_vgg16s_sizes_and_only_for_a_net_that_resizes():
    from cnnviz.summary import resize_note

    s = summary(build_model("vgg16", (1, 28, 28)), (1, 28, 28))
    # oracle: the model's own layers, run on a 28x28 input
    model = build_model("vgg16", (1, 28, 28))
    x = torch.zeros(1, 1, 28, 28)
    sizes = []
    for layer in model.children():
        x = layer(x)
        sizes.append(x.shape[-1] if x.dim() == 4 else None)
    last = [n for n in sizes if n is not None][-1]
    assert resize_note(s, 28, "fashion-mnist") == (
        "The first row is a `resize` layer: VGG16 halves the image five times, and 28 pixels would shrink to 0 "
        f"before the last block, so this fashion-mnist input is resized 28->{sizes[0]} first (bilinear "
        f"interpolation). The last block then ends at {last}x{last}.")
    assert resize_note(summary(build_model("lenet5", (1, 28, 28)), (1, 28, 28)), 28, "fashion-mnist") is None


@pytest.mark.parametrize("arch", list_archs())
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_every_nets_multiply_adds_equal_torchs_flop_counter(arch, shape):
    """The pages count multiply-adds layer by layer (cnnviz.costs); torch's FLOP counter is the oracle."""
    from torch.utils.flop_counter import FlopCounterMode

    from cnnviz import costs

    downsample = (get_arch(arch).downsamples or (None,))[-1]
    for method in get_arch(arch).downsamples or (None,):
        model = build_model(arch, shape, 10, method).eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, *shape))
        assert costs.macs(model, shape) == counter.get_total_flops() // 2, method
    s = arch_summary(arch, shape, 10, downsample)
    assert s.macs == sum(r["macs"] for r in s.rows) == costs.arch_macs(arch, shape, 10, downsample)
