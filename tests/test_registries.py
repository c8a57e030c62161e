"""One registration is the whole recipe: a throwaway downsampling method (2x2 min pooling) and a throwaway
architecture, each registered once in a fixture (and taken out afterwards), reach every page, menu,
summary, cost and receptive field with no other edit."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from streamlit.testing.v1 import AppTest

from cnnviz import costs, figures, shipped
from cnnviz.conv_arithmetic import receptive_fields
from cnnviz.downsample import (Downsample, apply_downsample, downsample_of, list_downsamples,
                               register_downsample, unregister_downsample)
from cnnviz.models import (add_head, build_model, count_params, get_arch, list_archs, list_baselines, make_layers,
                           register, unregister)
from cnnviz.summary import diagram_layers, summary
from pages.ui import nav

ROOT = Path(__file__).resolve().parent.parent
FMNIST = (1, 28, 28)
PAGES = tuple(p.path for p in nav.PAGES)  # every lesson page of the app's one list

pytestmark = pytest.mark.slow  # every page runs once or twice


class MinPool2d(nn.Module):
    """2x2 min pooling: the smallest value of each block (a method the lecture does not have)."""
    kernel_size, stride, padding = 2, 2, 0  # a sliding window, so the summary shows its formula

    def forward(self, x):  # (B, C, H, W) -> (B, C, H // 2, W // 2)
        return -F.max_pool2d(-x, 2, 2)


@pytest.fixture
def min_pool():
    entry = register_downsample(Downsample("min", "Min pooling 2x2", "min pooling", "#8c564b", MinPool2d, ((2, 2),)))
    try:
        yield entry
    finally:
        unregister_downsample("min")


@pytest.fixture
def tiny_net():
    @register("tiny_test_net", "Conv 3x3 (8) + ReLU, one 2x2 downsampling, FC 10: a throwaway net.",
              label="Tiny test net", sees="one learned 3x3 conv (8 channels)", baseline=True)
    def tiny(in_shape, num_classes, downsample):
        layers, _ = make_layers([(8, 3, 1), "D"], in_shape[0], downsample)
        return add_head(layers, in_shape, (), num_classes)

    try:
        yield get_arch("tiny_test_net")
    finally:
        unregister("tiny_test_net")


def _page(page: str, **query) -> AppTest:
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=300)
    at.switch_page(page)
    for k, v in query.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, (page, [e.message for e in at.exception])
    return at


# ---- a downsampling method --------------------------------------------------------------------

def test_a_registered_method_is_a_layer_with_its_geometry_summary_and_cost(min_pool):
    x = torch.randn(2, 3, 9, 12)
    torch.testing.assert_close(apply_downsample(x, "min"), -F.max_pool2d(-x, 2, 2))
    model = build_model("lenet5", FMNIST, downsample="min")  # lenet5 accepts every method, resolved now
    assert downsample_of(model.pool1) is min_pool and "min" in get_arch("lenet5").downsamples
    assert count_params(model) == count_params(build_model("lenet5", FMNIST, downsample="max"))
    s = summary(model, FMNIST)
    pool = next(r for r in s.rows if r["name"] == "pool1")
    assert pool["downsample"] == "min" and pool["output_shape"] == (6, 14, 14)
    assert pool["formula"] == "floor((28 - 2 + 2*0) / 2) + 1 = 14" and pool["receptive_field"] == 6
    assert [d["downsample"] for d in diagram_layers(s) if d["kind"] == "downsample"] == ["min", "min"]
    assert "#8c564b" in [sh.fillcolor for sh in figures.shapes_figure(s).layout.shapes]
    rf = {r["name"]: r["rf"] for r in receptive_fields(model, FMNIST)}
    assert (rf["pool1"], rf["conv2"], rf["pool2"]) == (6, 14, 16)  # the same geometry as max pooling
    assert costs.macs(model, FMNIST) == costs.macs(build_model("lenet5", FMNIST, downsample="max"), FMNIST)
    assert costs.arch_macs("downsample_compare", FMNIST, 10, "min") > 0
    assert "min" in [r.config.downsample for r in shipped.runs_of_group("downsampling", "fashion-mnist")]


def test_every_page_renders_with_a_registered_method_and_lists_it(min_pool):
    for page in PAGES:
        _page(page)
    at = _page("pages/downsampling.py", n="40", k="1")
    shapes = [c.value for c in at.caption if c.value.startswith("output shape")]
    assert len(shapes) == 1 + len(list_downsamples())  # the map before + one per method, min included
    assert any("Min pooling 2x2" in m.value for m in at.markdown)
    assert "Min pooling 2x2" in at.selectbox(key="diff_a").options
    at.selectbox(key="diff_a").select("min").run()
    assert not at.exception and at.query_params["diff"].startswith("min,")
    at = _page("pages/downsampling.py", part="The lecture's 4x4 example")  # each tab runs only while open
    worked = next(df.value for df in at.dataframe if "m1" in df.value.columns)
    assert "Min pooling 2x2" in worked.index
    at = _page("pages/downsampling.py", part="Trained with each method")
    assert any("Min pooling 2x2" in w.value for w in at.warning)  # no shipped checkpoint of it yet

    at = _page("pages/inside.py", part="Receptive field")  # the receptive field of every method of the net
    assert next(df.value for df in at.dataframe).loc["Min pooling 2x2", "pool1"] == "6 px, jump 2"
    at = _page("pages/architectures.py", arch="downsample_compare", downsample="min")
    assert at.selectbox(key="downsample").value == "min" and not at.exception
    at = _page("pages/train_compare.py", arch="downsample_compare")
    assert "Min pooling 2x2" in at.selectbox(key="t_downsample_downsample_compare").options


# ---- an architecture ----------------------------------------------------------------------------

def test_a_registered_architecture_builds_with_every_method_and_has_a_summary_and_cost(tiny_net, min_pool):
    assert tiny_net.name in list_archs() and list_baselines()[-1] == "tiny_test_net"
    assert tiny_net.downsamples == tuple(list_downsamples())  # "every method", the later min included
    pool_rf = {"max": 4, "avg": 4, "bilinear": 4, "nearest": 3, "blurmax": 6, "min": 4}  # conv 3 + the 2x2 step
    for method in tiny_net.downsamples:
        model = build_model("tiny_test_net", FMNIST, downsample=method)
        s = summary(model, FMNIST)
        assert s.total_params == count_params(model) == 80 + 8 * 14 * 14 * 10 + 10
        assert costs.arch_macs("tiny_test_net", FMNIST, 10, method) == costs.macs(model, FMNIST) > 0
        rf = {r["name"]: r["rf"] for r in receptive_fields(model, FMNIST)}
        assert rf["conv1"] == 3 and rf.get("pool1") == pool_rf.get(method)  # stride: no pool1, conv1 strides


def test_every_page_renders_with_a_registered_architecture_and_lists_it(tiny_net):
    home = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=300).run()
    assert not home.exception and {m.label: m.value for m in home.metric}["Architectures"] == str(len(list_archs()))
    for page in PAGES:
        _page(page)
    at = _page("pages/architectures.py", arch="tiny_test_net")
    assert at.selectbox(key="arch").value == "tiny_test_net"
    assert any(df.value.shape[0] == len(summary(build_model("tiny_test_net"), FMNIST).rows) for df in at.dataframe)
    at = _page("pages/train_compare.py", arch="tiny_test_net")
    assert at.selectbox(key="t_arch").value == "tiny_test_net"
    at = _page("pages/inside.py", part="Receptive field", rf_arch="tiny_test_net")
    assert list(next(df.value for df in at.dataframe).columns) == ["conv1", "pool1"]
    at = _page("pages/engineered.py", part="Engineering vs CNN features")
    assert "Tiny test net" in at.selectbox(key="e_retrain_arch").options  # a member of the comparison group
    assert any("Tiny test net" in w.value for w in at.warning)  # not shipped: the page says how to train it
