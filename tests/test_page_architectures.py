"""The Architectures page (AppTest): every registered network's summary for both datasets, the output-size
calculator against a real convolution, the URL state, and the 1x1 section."""
from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from streamlit.testing.v1 import AppTest

from cnnviz import costs, shipped
from pages.ui import nav
from cnnviz.checkpoints import read_meta, read_record
from cnnviz.data import DATASETS
from cnnviz.models import build_model, count_params, get_arch, list_archs
from cnnviz.conv_arithmetic import conv_output_size

ROOT = Path(__file__).resolve().parent.parent
PAGE = nav.lesson("architectures").path
LENET_1X1 = ROOT / "checkpoints" / "fashion-mnist-lenet_1x1-max.pt"

pytestmark = pytest.mark.slow  # each AppTest run executes the whole page (models built, run once)


def open_page(**query) -> AppTest:
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=180)
    for k, v in query.items():
        at.query_params[k] = str(v)
    at.run()
    at.switch_page(PAGE)
    at.run()
    assert not at.exception, at.exception[0].message
    return at


def metric(at: AppTest, label: str) -> str:
    values = [m.value for m in at.metric if m.label == label]
    assert values, f"no metric {label!r}; metrics: {[m.label for m in at.metric]}"
    return values[0]


def as_int(text: str) -> int:
    return int(text.replace(",", ""))


def array(value) -> np.ndarray:
    """A plotly array from the figure's JSON: a list, or a typed array {dtype, bdata, shape}."""
    if isinstance(value, dict) and "bdata" in value:
        a = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        return a.reshape([int(n) for n in value["shape"].split(",")]) if "shape" in value else a
    return np.asarray(value)


def charts(at: AppTest) -> dict[str, dict]:
    return {c.proto.id: json.loads(c.proto.spec) for c in at.get("plotly_chart")}


def chart(at: AppTest, key: str) -> dict:
    found = [json.loads(c.proto.spec) for c in at.get("plotly_chart") if key in c.proto.id]
    assert found, f"no plotly chart with key {key!r}"
    return found[0]


# The page's tabs (each runs only while open; `part` in the link opens one; the first opens by default).
SUMMARY, TRAINED, CALCULATOR, ONE_BY_ONE = ("Summary and layer shapes", "Trained", "Padding, stride and kernel size",
                                            "1x1 convolution instead of FC layers")


@pytest.fixture(scope="module")
def app() -> AppTest:
    return open_page()


@pytest.fixture(scope="module")
def calculator() -> AppTest:
    return open_page(part=CALCULATOR)


def test_page_renders_lenet5_by_default_with_the_lectures_61706_params(app):
    assert [t.value for t in app.title] == ["Architectures"]
    assert app.selectbox(key="arch").value == "lenet5"
    assert app.selectbox(key="dataset").value == "fashion-mnist"
    assert as_int(metric(app, "Total params")) == 61706 == count_params(build_model("lenet5", (1, 28, 28)))
    table = app.dataframe[0].value
    assert list(table.columns[:3]) == ["Layer (type)", "Output Shape", "Param #"]
    assert table["Layer (type)"].iloc[0] == "Conv2d-1" and table["Output Shape"].iloc[0] == "[-1, 6, 28, 28]"
    assert table["output size S_o"].iloc[0] == "floor((28 - 5 + 2*2) / 1) + 1 = 28"
    assert any("Total params: 61,706" in c.value for c in app.code)  # the text version in the expander
    assert "shapes" in " ".join(charts(app))


@pytest.fixture(scope="module")
def browsing() -> AppTest:
    """One session clicking through the registry (a fresh AppTest per arch would rerun the home page)."""
    return open_page()


@pytest.mark.parametrize("arch", list_archs())
def test_every_arch_and_dataset_shows_the_models_real_parameter_count(browsing, arch):
    at = browsing
    at.selectbox(key="arch").select(arch).run()
    for dataset, spec in DATASETS.items():
        at.selectbox(key="dataset").select(dataset).run()
        assert not at.exception, f"{arch} on {dataset}: {at.exception[0].message}"
        downsample = at.selectbox(key="downsample").value if get_arch(arch).downsamples else None
        model = build_model(arch, spec.shape, downsample=downsample)
        assert as_int(metric(at, "Total params")) == count_params(model), (arch, dataset)
        assert as_int(metric(at, "Trainable params")) == count_params(model, trainable_only=True)
        assert len(at.dataframe[0].value) == sum(1 for m in model.modules() if not list(m.children()))
        assert at.query_params["arch"] == arch and at.query_params["dataset"] == dataset


def test_every_downsampling_option_can_be_chosen_and_keeps_the_parameter_count():
    at = open_page(arch="conv_pool")
    expected = count_params(build_model("conv_pool", (1, 28, 28)))
    for method in get_arch("conv_pool").downsamples:
        at.selectbox(key="downsample").select(method).run()
        assert not at.exception, method
        assert as_int(metric(at, "Total params")) == expected, method
        assert at.query_params["downsample"] == method


def test_vgg16_on_fashion_mnist_shows_the_resize_layer_and_explains_it():
    at = open_page(arch="vgg16", dataset="fashion-mnist")
    table = at.dataframe[0].value
    assert table["name"].iloc[0] == "resize" and table["Output Shape"].iloc[0] == "[-1, 1, 32, 32]"
    assert any("28->32" in i.value for i in at.info)
    at.selectbox(key="dataset").select("cifar10").run()
    assert "resize" not in list(at.dataframe[0].value["name"])


@pytest.mark.parametrize("size,kernel,padding,stride", [(28, 3, 1, 1), (28, 3, 1, 2), (32, 5, 0, 1),
                                                        (7, 7, 0, 1), (10, 4, 3, 3)])
def test_calculator_formula_equals_the_measured_convolution(calculator, size, kernel, padding, stride):
    for key, value in dict(sd=size, k=kernel, p=padding, s=stride).items():
        calculator.number_input(key=key).set_value(value)
    calculator.run()
    assert not calculator.exception and not calculator.error
    oracle = F.conv2d(torch.zeros(1, 1, size, size), torch.zeros(1, 1, kernel, kernel), stride=stride,
                      padding=padding).shape[-1]
    assert as_int(metric(calculator, "S_o by the formula")) == conv_output_size(size, kernel, padding, stride) == oracle
    assert as_int(metric(calculator, "S_o measured with nn.Conv2d")) == oracle


def test_calculator_shows_one_error_for_impossible_numbers(calculator):
    for key, value in dict(sd=3, k=7, p=1, s=1).items():
        calculator.number_input(key=key).set_value(value)
    calculator.run()
    assert not calculator.exception
    assert len(calculator.error) == 1 and "does not fit" in calculator.error[0].value
    assert "S_o measured with nn.Conv2d" not in [m.label for m in calculator.metric]


def test_step_view_moves_the_kernel_window_by_the_stride(calculator):
    for key, value in dict(sd=5, k=3, p=1, s=2).items():  # a 3x3 output
        calculator.number_input(key=key).set_value(value)
    calculator.run()
    calculator.slider(key="calc_cell").set_value(6).run()  # m6: output row 1, column 2
    rects = [s for s in chart(calculator, "sliding")["layout"]["shapes"] if s["type"] == "rect"]
    window, cell = rects[0], rects[1]
    assert (window["x0"], window["y0"]) == (2 * 2 - 0.5, 1 * 2 - 0.5)  # padded col 4, row 2
    assert window["x1"] - window["x0"] == 3
    assert (cell["x0"], cell["y0"]) == (2 - 0.5, 1 - 0.5)


def test_garbage_in_the_url_falls_back_to_defaults_with_a_notice():
    at = open_page(arch="resnet9000", dataset="mnist", sd="-5", k="x", part=CALCULATOR)
    assert at.selectbox(key="arch").value == "lenet5" and at.selectbox(key="dataset").value == "fashion-mnist"
    notices = " ".join(i.value for i in at.info)
    for bad in ("arch=resnet9000", "dataset=mnist", "sd=-5", "k=x"):
        assert bad in notices


def test_the_url_reopens_the_same_view():
    at = open_page(arch="vgg16", dataset="cifar10", downsample="avg", sd=32, k=5, p=2, s=2, part=CALCULATOR)
    assert (at.selectbox(key="arch").value, at.selectbox(key="dataset").value,
            at.selectbox(key="downsample").value) == ("vgg16", "cifar10", "avg")
    assert as_int(metric(at, "S_o by the formula")) == conv_output_size(32, 5, 2, 2) == 16
    assert not any("in the link" in i.value for i in at.info)  # the link fits: no notice


def test_1x1_section_builds_both_lenets_with_identical_parameter_counts():
    at = open_page(part=ONE_BY_ONE)
    fc, conv = (as_int(metric(at, f"{n} params")) for n in ("lenet_fc", "lenet_1x1"))
    assert fc == conv == count_params(build_model("lenet_fc", (1, 28, 28))) == 421642
    assert any("Identical parameter counts" in s.value for s in at.success)


def test_1x1_score_map_renders_from_the_shipped_checkpoint():
    if not LENET_1X1.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{LENET_1X1.name} is missing on a CI machine", pytrace=False)
        pytest.skip(f"{LENET_1X1.name} not trained yet")
    at = open_page(dataset="fashion-mnist", part=ONE_BY_ONE)
    assert not at.warning
    class_map = chart(at, "class_map")["data"][0]
    assert array(class_map["z"]).shape == (8, 8)  # 56x56 canvas -> 8x8 map of predicted classes
    classes = DATASETS["fashion-mnist"].classes
    hover = {str(c).split("<br>")[0] for row in class_map["customdata"] for c in row}
    assert hover <= set(classes) and hover
    tiled = array(chart(at, "score_maps")["data"][0]["z"])  # 2 rows x 5 maps of 8x8, two NaN between
    assert tiled.shape == (18, 48)
    scores = [tiled[r * 10:r * 10 + 8, c * 10:c * 10 + 8] for r in range(2) for c in range(5)]
    assert not np.isnan(scores).any() and np.isnan(tiled[8:10]).all()
    np.testing.assert_allclose(np.sum(scores, axis=0), 1, atol=1e-4)  # softmax over classes per cell
    np.testing.assert_array_equal(np.argmax(scores, axis=0), array(class_map["z"]))
    assert array(chart(at, "canvas")["data"][0]["z"]).shape == (56, 56)
    at.slider(key="cell_row").set_value(7).run()
    at.slider(key="cell_col").set_value(7).run()
    assert any("rows 28..55 and columns 28..55" in c.value for c in at.caption)
    assert len(at.dataframe[-1].value) == 4  # each image alone vs its corner cell


@pytest.mark.parametrize("arch,dataset", [("conv_only", "fashion-mnist"), ("conv_pool", "cifar10")])
def test_the_nets_shipped_run_is_shown_with_its_recorded_curve_and_standing(arch, dataset):
    run = shipped.find_run(arch, dataset)
    if not run.path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{run.filename} is missing on a CI machine", pytrace=False)
        pytest.skip(f"{run.filename} not trained yet")
    at = open_page(arch=arch, dataset=dataset, part=TRAINED)
    history = read_meta(run.path)["history"]
    assert metric(at, "Final test accuracy") == f"{100 * history[-1]['test_acc']:.2f} %"
    assert metric(at, "Best test accuracy") == f"{100 * max(h['test_acc'] for h in history):.2f} %"
    test_curve = [t for t in chart(at, "trained_acc")["data"] if "test" in t["name"]][0]
    np.testing.assert_allclose(array(test_curve["y"]), [h["test_acc"] for h in history])
    standing = next(d.value for d in at.dataframe if "batch_size" in d.value.columns)
    on_dataset = [r for r in shipped.shipped_runs() if r.config.dataset == dataset and r.config.seed == 0]
    assert len(standing) == sum(r.path.exists() for r in on_dataset)
    assert list(standing["test_acc"]) == sorted(standing["test_acc"], reverse=True)
    row = standing[standing["label"] == read_record(run.path).label].iloc[0]
    shape = DATASETS[dataset].shape
    assert row["macs"] == costs.macs(build_model(arch, shape), shape)  # counted from the net, not typed in


def test_a_net_shipped_with_another_downsampling_says_which_to_pick():
    at = open_page(arch="lenet5", dataset="fashion-mnist", downsample="avg", part=TRAINED)
    assert any("No shipped checkpoint of lenet5 (Average pooling 2x2)" in i.value and "Max pooling 2x2" in i.value
               for i in at.info)
    assert not [m for m in at.metric if m.label == "Final test accuracy"]


def test_page_imports_no_torch():
    import ast

    tree = ast.parse((ROOT / PAGE).read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert "torch" not in imported


@pytest.mark.parametrize("dataset", ["cifar10", "fashion-mnist"])
def test_vgg16_says_how_it_differs_from_the_slides_code_with_counted_parameters(dataset):
    import torch.nn as nn

    from cnnviz.models import count_params

    shape = DATASETS[dataset].shape
    model = build_model("vgg16", shape)
    first = next(i for i, m in enumerate(model) if isinstance(m, nn.Linear))
    slide = nn.Sequential(*[nn.Linear(512 * 7 * 7, 128) if i == first else m for i, m in enumerate(model)])
    at = open_page(arch="vgg16", dataset=dataset)
    (note,) = [m.value for m in at.markdown if "the slide's" in m.value]
    assert f"`Linear({model[first].in_features}, 128)`" in note and model[first].in_features == 512
    assert f"{count_params(model[first]):,} parameters instead of {512 * 49 * 128 + 128:,}" in note
    assert f"{count_params(model):,} in the whole net instead of {count_params(slide):,}" in note


@pytest.mark.parametrize("dataset", ["fashion-mnist", "cifar10"])
def test_the_1x1_caption_names_the_map_size_of_the_chosen_dataset(dataset):
    """The caption's map size is lenet_fc's last feature map, measured on that dataset's input (7x7 on
    Fashion-MNIST, 8x8 on CIFAR-10), never a typed-in number."""
    shape = DATASETS[dataset].shape
    trunk = [m for name, m in build_model("lenet_fc", shape, 10, "max").named_children()
             if not name.startswith(("flatten", "fc", "relu_fc"))]
    h, w = torch.nn.Sequential(*trunk)(torch.zeros(1, *shape)).shape[-2:]
    at = open_page(dataset=dataset, part=ONE_BY_ONE)
    assert any(f"covers the whole {h}x{w} map" in c.value for c in at.caption), [c.value for c in at.caption]
