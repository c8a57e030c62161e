"""The Look inside page (AppTest, opened through the app's navigation): every number it shows against an oracle
computed here from the checkpoint and the test image (the network's own layers, cnnviz's exporter), its URL state,
and in Chromium a click on the map picking the pixel."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from cnnviz import export
from cnnviz.checkpoints import load_checkpoint
from cnnviz.data import DATASETS
from pages.ui import nav
from test_page_architectures import metric  # noqa: E402 - one reader of st.metric for the page tests

ROOT = Path(__file__).resolve().parent.parent
PAGE = nav.lesson("inside").path
MAX_NET = ROOT / "checkpoints" / "fashion-mnist-downsample_compare-max.pt"

pytestmark = [pytest.mark.slow, pytest.mark.data]


def open_page(**query) -> AppTest:
    if not MAX_NET.exists():
        pytest.skip(f"{MAX_NET.name} is not shipped in this checkout")
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=300)
    for k, v in query.items():
        at.query_params[k] = str(v)
    at.switch_page(PAGE)
    at.run()
    assert not at.exception, at.exception[0].message
    return at


def keys(at: AppTest) -> list[str]:
    return [c.proto.id for c in at.get("plotly_chart")]


def _net_output(path: Path, data, image: int, upto: str) -> np.ndarray:
    """The oracle: the checkpoint's own layers up to and including `upto`, run on the test image (C, h, w)."""
    model = load_checkpoint(path).model
    names = [n for n, _ in model.named_children()]
    with torch.no_grad():
        return model[: names.index(upto) + 1](data.normalize(data.test_x[image:image + 1]))[0].numpy()


def _first_of_class(data, cls: str) -> int:
    return int(np.flatnonzero(data.test_y.numpy() == DATASETS["fashion-mnist"].classes.index(cls))[0])


def test_the_default_pixel_is_the_strongest_of_conv1_and_its_hand_value_is_the_networks(fashion_mnist):
    at = open_page()
    assert [t.value for t in at.title] == ["Look inside"]
    assert at.selectbox(key="net").value == MAX_NET.name and at.selectbox(key="layer").value == "conv1"
    out = _net_output(MAX_NET, fashion_mnist, _first_of_class(fashion_mnist, "T-shirt/top"), "relu1")[0]  # (24, 24)
    row, col = np.unravel_index(int(out.argmax()), out.shape)
    assert (at.number_input(key="row").value, at.number_input(key="col").value) == (row, col)
    assert float(metric(at, "Computed by hand")) == pytest.approx(out[row, col], abs=1e-6)
    assert float(metric(at, "The network computed (forward hook)")) == pytest.approx(out[row, col], abs=1e-6)
    assert f"row {row}, column {col}" in next(c.value for c in at.caption if c.value.startswith("Output pixel"))
    assert any("ReLU" in lx.value for lx in at.latex)
    assert at.sidebar.code[0].value.startswith("(this page as it opens")  # every choice at its default


def test_a_link_opens_a_pooling_pixel_of_another_image_and_the_max_marks_its_winner(fashion_mnist):
    at = open_page(layer="pool1", ch=3, row=5, col=7, **{"class": "Sneaker", "index": 2})
    assert (at.number_input(key="ch").value, at.number_input(key="row").value) == (3, 5)
    image = int(np.flatnonzero(fashion_mnist.test_y.numpy() == 7)[2])  # the third sneaker
    pooled = _net_output(MAX_NET, fashion_mnist, image, "pool1")[3, 5, 7]
    relu1 = _net_output(MAX_NET, fashion_mnist, image, "relu1")[3, 10:12, 14:16]  # its 2x2 window
    assert pooled == relu1.max()
    assert float(metric(at, "Computed by hand")) == pytest.approx(pooled, abs=1e-6)
    assert "winner" in " ".join(json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")
                                if "grid0" in c.proto.id)
    assert any(r"\max(" in lx.value for lx in at.latex)


def test_a_link_outside_the_map_falls_back_with_a_notice():
    at = open_page(row=999, layer="nope")
    assert at.selectbox(key="layer").value == "conv1"
    notes = " ".join(i.value for i in at.info)
    assert "`row=999`" in notes and "`layer=nope`" in notes


def test_the_receptive_field_tab_keeps_the_gradient_inside_the_closed_form_field():
    at = open_page(part="Receptive field", layer="pool1", ch=1, row=4, col=4)
    sentence = next(c.value for c in at.caption if c.value.startswith("Theoretical field"))
    assert "Theoretical field: 6x6 pixels (rows 8..13 and columns 8..13)" in sentence  # start 0 + 4 * 2, rf 6
    assert "0 of them outside the field" in sentence or "The gradient is zero everywhere" in sentence
    table = next(df.value for df in at.dataframe)
    assert table.loc["Max pooling 2x2", "pool1"] == "6 px, jump 2"
    assert table.loc["Max pooling + blur (anti-aliased, Zhang 2019)", "pool1"] == "8 px, jump 2"
    assert table.loc["Strided convolution (stride 2)", "conv1"] == "5 px, jump 2"
    assert all(any(name in k for k in keys(at)) for name in ("field", "erf", "rf_figure"))


def test_where_it_looks_shows_each_downsamplers_net_for_the_predicted_and_the_true_class(fashion_mnist):
    at = open_page(part="Where it looks")
    assert sum("looks_" in k for k in keys(at)) == 4  # Grad-CAM and gradient, predicted and true
    model = load_checkpoint(MAX_NET).model
    with torch.no_grad():
        probs = model(fashion_mnist.normalize(fashion_mnist.test_x[_first_of_class(fashion_mnist, "T-shirt/top")][None]))
    probs = probs.softmax(1)[0]
    label = f"max pooling: {DATASETS['fashion-mnist'].classes[int(probs.argmax())]} ({float(probs.max()):.2f})"
    chart = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if "looks_predicted_cams" in c.proto.id)
    assert label in [a["text"] for a in chart["layout"]["annotations"]]


def test_export_shows_the_code_cnnviz_writes_for_the_chosen_runs_settings():
    at = open_page(part="Export as code")
    code = at.code[0].value  # the page's code block (the sidebar's link is the sidebar's)
    assert code == export.script(load_checkpoint(MAX_NET).record.config).rstrip("\n")  # st.code drops the last newline
    assert "nn.MaxPool2d(2, 2)," in code
    assert len(at.get("download_button")) == 2


def test_the_worked_examples_show_the_lectures_sizes_and_parameter_counts():
    at = open_page(part="Worked examples")
    latex = " ".join(lx.value for lx in at.latex)
    assert r"\right\rfloor + 1 = 3" in latex and r"\right\rfloor + 1 = 2" in latex
    headings = " ".join(m.value for m in at.markdown)  # figure_rows' headings above each map
    assert headings.count(">220x220<") == headings.count(">110x110<") == headings.count(">55x55<") == 2  # max, avg
    captions = " ".join(c.value for c in at.caption)
    assert "26 parameters: 1 x 5 x 5" in captions
    if (ROOT / "checkpoints" / "cifar10-downsample_compare-max.pt").exists():
        assert "76 parameters: 3 x 5 x 5" in captions


def test_clicking_a_pixel_on_the_map_picks_it_in_chromium(tmp_path):
    """What AppTest cannot do: a real click on the plotly map sets the row and column inputs."""
    pytest.importorskip("playwright")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from playwright.sync_api import sync_playwright
    from streamlit_server import CHROMIUM, CHROMIUM_ARGS, running_app

    from test_browser import _open

    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}")
    with open(tmp_path / "server.log", "w") as log, running_app(log) as (port, _), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            _open(page, f"http://127.0.0.1:{port}/inside?row=20&col=20")
            plot = page.locator(".st-key-pick_conv1 .js-plotly-plot").first
            # Where plotly draws cell (row 1, column 2): its axes' own data-to-pixel maps.
            x, y = plot.evaluate("(el) => { const L = el._fullLayout, r = el.getBoundingClientRect();"
                                 " return [r.left + L.xaxis._offset + L.xaxis.l2p(2),"
                                 " r.top + L.yaxis._offset + L.yaxis.l2p(1)]; }")
            page.mouse.move(x, y)
            page.mouse.click(x, y)
            page.wait_for_function("() => document.querySelector(\"input[aria-label^='Row']\").value === '1'",
                                   timeout=120_000)
            assert page.locator("input[aria-label^='Column']").first.input_value() == "2"
        finally:
            browser.close()
