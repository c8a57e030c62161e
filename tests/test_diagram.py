"""cnnviz.diagram: the calculator against real convolutions, the sliding window, the canvas and score maps."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnviz import figures
from cnnviz.data import DATASETS
from cnnviz.diagram import (canvas_of_test_images, diagram_layers, predict_images, fc_vs_1x1_params, make_canvas, measure_conv_output, pick_images,
                            score_maps, shapes_figure, sliding_figure, softmax, summary_table,
                            window_at)
from cnnviz.models import build_model
from cnnviz.summary import conv_output_size, summary


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
    fig = sliding_figure(4, 3, 1, 1, 5)
    assert np.asarray(fig.data[0].z).shape == (6, 6) and np.asarray(fig.data[1].z).shape == (4, 4)


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
    fig = shapes_figure(s, "max")
    assert len([sh for sh in fig.layout.shapes if sh.type == "rect"]) == len(layers)


def test_fc_and_1x1_lenets_have_identical_parameters():
    p = fc_vs_1x1_params((1, 28, 28))
    assert p["lenet_fc"] == p["lenet_1x1"] == 421642
    assert p["fc1"] == (3136, 128, 401536) and p["conv3"] == (128, 64, 7, 7, 401536)
    assert p["fc2"][2] == p["conv4"][4] == 1290


def test_canvas_tiles_four_images_row_by_row():
    imgs = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    c = make_canvas(imgs)
    assert c.shape == (1, 56, 56)
    assert torch.equal(c[:, :28, :28], imgs[0]) and torch.equal(c[:, :28, 28:], imgs[1])
    assert torch.equal(c[:, 28:, :28], imgs[2]) and torch.equal(c[:, 28:, 28:], imgs[3])
    with pytest.raises(ValueError):
        make_canvas(imgs[:3])


def test_pick_images_is_seeded_and_honours_the_classes():
    labels = torch.arange(100) % 10
    assert pick_images(labels, 3) == pick_images(labels, 3) != pick_images(labels, 4)
    picked = pick_images(labels, 0, [1, 8])
    assert [int(labels[i]) for i in picked] == [1, 8, 1, 8]


def test_softmax_matches_torch():
    x = np.random.default_rng(0).normal(size=(10, 8, 8)).astype(np.float32) * 30
    np.testing.assert_allclose(softmax(x, axis=0), torch.softmax(torch.from_numpy(x), 0).numpy(), rtol=1e-5, atol=1e-6)


def test_score_map_of_lenet_1x1_on_a_56px_canvas_is_8x8_and_4_pixels_apart(fashion_mnist):
    torch.manual_seed(0)
    model = build_model("lenet_1x1", DATASETS["fashion-mnist"].shape).eval()
    idx = pick_images(fashion_mnist.test_y, 0)
    sm = score_maps(model, make_canvas(fashion_mnist.test_x[idx]), fashion_mnist, 28)
    assert sm.probs.shape == (10, 8, 8) and sm.pred.shape == (8, 8)
    np.testing.assert_allclose(sm.probs.sum(0), 1, atol=1e-5)
    assert sm.step == 4 and sm.cell_window(7, 7) == (28, 28, 56, 56) and sm.cell_window(0, 0) == (0, 0, 28, 28)
    # On a 28x28 input the same net gives one cell: the canvas map generalises the single prediction.
    one = score_maps(model, fashion_mnist.test_x[idx[0]], fashion_mnist, 28)
    assert one.probs.shape == (10, 1, 1)
    alone = model(fashion_mnist.normalize(fashion_mnist.test_x[idx[:1]]))
    np.testing.assert_allclose(one.logits[:, 0, 0], alone[0].detach().numpy(), rtol=1e-5, atol=1e-5)


def test_tile_maps_keeps_values_and_puts_nan_between():
    maps = np.arange(10 * 2 * 3, dtype=np.float32).reshape(10, 2, 3)
    t = figures.tile(maps, cols=5, scale=None)
    assert t.shape == (2 * 3 - 1, 5 * 4 - 1)
    np.testing.assert_array_equal(t[3:5, 4:7], maps[6])  # row 1, column 1
    assert np.isnan(t[2]).all() and np.isnan(t[:, 3]).all()


def test_canvas_of_test_images_puts_the_asked_classes_in_the_quadrants(fashion_mnist):
    c = canvas_of_test_images(fashion_mnist, 5, ["Bag", "Trouser"])
    assert c.labels == ["Bag", "Trouser", "Bag", "Trouser"] and c.image.shape == (1, 56, 56)
    assert torch.equal(c.image[:, 28:, 28:], fashion_mnist.test_x[c.indices[3]])
    assert canvas_of_test_images(fashion_mnist, 5).indices == canvas_of_test_images(fashion_mnist, 5).indices
    torch.manual_seed(0)
    probs = predict_images(build_model("lenet_1x1", (1, 28, 28)).eval(), fashion_mnist, c.indices)
    assert probs.shape == (4, 10)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
