"""cnnviz.score_maps: lenet_1x1 as lenet_fc's twin, the canvas of test images and its class-score maps."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnviz import figures
from cnnviz.data import DATASETS
from cnnviz.models import build_model
from cnnviz.score_maps import (canvas_of_test_images, fc_vs_1x1_params, make_canvas, pick_images, predict_images,
                               score_maps, softmax)


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


def test_canvas_of_test_images_puts_the_asked_classes_in_the_quadrants(fashion_mnist):
    c = canvas_of_test_images(fashion_mnist, 5, ["Bag", "Trouser"])
    assert c.labels == ["Bag", "Trouser", "Bag", "Trouser"] and c.image.shape == (1, 56, 56)
    assert torch.equal(c.image[:, 28:, 28:], fashion_mnist.test_x[c.indices[3]])
    assert canvas_of_test_images(fashion_mnist, 5).indices == canvas_of_test_images(fashion_mnist, 5).indices
    torch.manual_seed(0)
    probs = predict_images(build_model("lenet_1x1", (1, 28, 28)).eval(), fashion_mnist, c.indices)
    assert probs.shape == (4, 10)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)


def test_score_figures_draw_one_cell_per_output_and_the_window(fashion_mnist):
    torch.manual_seed(0)
    model = build_model("lenet_1x1", DATASETS["fashion-mnist"].shape).eval()
    c = canvas_of_test_images(fashion_mnist, 0)
    sm = score_maps(model, c.image, fashion_mnist, 28)
    classes = fashion_mnist.classes
    assert np.asarray(figures.class_map_figure(sm, classes, (0, 0)).data[0].z).shape == (8, 8)
    tiled = np.asarray(figures.score_maps_figure(sm, classes).data[0].z, dtype=float)
    assert np.nanmax(tiled) <= 1 and tiled.shape == (2 * 8 + 2, 5 * 8 + 4 * 2)  # 2 rows, 5 columns, gaps of 2
    fig = figures.canvas_figure(c.image.numpy(), sm.cell_window(0, 0), c.labels)
    assert fig.layout.shapes[0].x1 == 27.5 and len(fig.layout.annotations) == 4


def test_the_fc_vs_1x1_latex_writes_out_both_counts():
    from cnnviz.score_maps import fc_vs_1x1_latex

    pair = fc_vs_1x1_params((1, 28, 28))
    fc1 = build_model("lenet_fc", (1, 28, 28)).fc1  # oracle: the layer itself
    text = fc_vs_1x1_latex(pair)
    assert rf"{fc1.in_features:,} \times {fc1.out_features} + {fc1.out_features} = " in text
    assert f"= {sum(p.numel() for p in fc1.parameters()):,}" in text and r"\text{conv3}" in text


def test_each_image_alone_is_set_beside_the_corner_cell_that_sees_it(fashion_mnist):
    from cnnviz.score_maps import alone_vs_corner, score_maps

    torch.manual_seed(0)
    model = build_model("lenet_1x1", (1, 28, 28)).eval()
    classes = list(fashion_mnist.classes)
    canvas = canvas_of_test_images(fashion_mnist, 3)
    sm = score_maps(model, canvas.image, fashion_mnist, 28)
    alone = predict_images(model, fashion_mnist, canvas.indices)
    cols = alone_vs_corner(sm, alone, canvas, classes)
    assert cols["test index"] == canvas.indices and cols["true class"] == canvas.labels
    h, w = sm.pred.shape
    for text, (r, c) in zip(cols["corner cell of the canvas"], [(0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1)]):
        assert text == f"{classes[sm.pred[r, c]]} ({sm.probs[:, r, c].max():.2f})"
    assert cols["alone (28x28 -> 1x1)"] == [f"{classes[p.argmax()]} ({p.max():.2f})" for p in alone]
