"""The Downsampling page in Streamlit's AppTest: it renders, its controls work, and what it shows is right.

The shift probe runs on N=40 images here (a URL parameter) to keep the file quick; the page's default
is 500. Sections that need the shipped downsample_compare checkpoints check them when they exist;
under `CI` a missing checkpoint fails instead of skipping.
"""
from __future__ import annotations

import ast
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from cnnviz import shipped
from pages.ui import nav
from cnnviz.data import DATASETS
from cnnviz.downsample import get_downsample, list_downsamples

ROOT = Path(__file__).resolve().parent.parent
PAGE = nav.lesson("downsampling").path
SMALL = {"n": "40", "k": "2"}
# The page's tabs (each runs only while open; `part` in the link opens one).
IMAGE, WORKED, TRAINED, SHIFT = ("On a real image", "The lecture's 4x4 example", "Trained with each method",
                                 "Is it shift-invariant?")


def open_page(params: dict | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=300)
    at.switch_page(PAGE)  # straight to the page: the home page's run is not needed
    for key, value in {**SMALL, **(params or {})}.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, at.exception
    return at


def charts(at: AppTest) -> dict[str, dict]:
    """Plotly charts on the page by their title (untitled ones are left out)."""
    out = {}
    for el in at.get("plotly_chart"):
        spec = json.loads(el.proto.spec)
        title = spec.get("layout", {}).get("title", {})
        text = title.get("text") if isinstance(title, dict) else title
        if text:
            out[text] = spec
    return out


def table_with(at: AppTest, *columns: str):
    for df in at.dataframe:
        if all(c in df.value.columns for c in columns):
            return df.value
    raise AssertionError(f"no table with columns {columns}")


def shipped_seed0(dataset: str) -> list[str]:
    """Methods whose shipped seed-0 downsample_compare checkpoint exists; fails under CI when any is missing."""
    runs = shipped.runs_of_group("downsampling", dataset)
    present = [r.config.downsample for r in runs if r.path.exists()]
    if len(present) < len(runs) and os.environ.get("CI"):
        pytest.fail(f"shipped downsample_compare checkpoints missing on a CI machine for {dataset}")
    return present


# ---- rendering --------------------------------------------------------------------------------

def test_page_renders_on_defaults_without_exception():
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=300)
    at.switch_page(PAGE).run()
    assert not at.exception
    assert at.title[0].value.startswith("Downsampling")
    assert [t.label for t in at.tabs][:4] == [IMAGE, WORKED, TRAINED, SHIFT]
    assert at.selectbox(key="dataset").value == "fashion-mnist"
    assert not at.error
    assert at.query_params["dataset"] == "fashion-mnist"


def test_a_closed_tab_runs_nothing_and_the_link_opens_a_tab():
    at = open_page()  # the feature maps: no shift probe, no 4x4 example
    assert not [e for e in at.number_input if e.key in ("k", "n")] and not at.data_editor
    at = open_page({"part": SHIFT})
    assert at.number_input(key="n").value == 40 and at.number_input(key="k").value == 2
    assert not [c for c in at.caption if c.value.startswith("output shape")]


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_each_dataset_renders_its_feature_maps_and_shapes(dataset):
    at = open_page({"dataset": dataset})
    assert at.selectbox(key="dataset").value == dataset
    shapes = [c.value for c in at.caption if c.value.startswith("output shape")]
    assert len(shapes) == 1 + len(list_downsamples())  # the map before + one per method
    c, h, w = DATASETS[dataset].shape
    size = h - 5 + 1  # conv1 of downsample_compare: 5x5, no padding
    assert shapes[0] == f"output shape (32, {size}, {size}) (C, H, W)"
    assert f"(32, {size // 2}, {size // 2})" in shapes[1]


@pytest.mark.parametrize("cls, index", [(1, 0), (7, 5), (9, 123)])
def test_a_chosen_test_image_is_the_indexed_member_of_its_class(fashion_mnist, cls, index):
    name = fashion_mnist.classes[cls]
    at = open_page({"class": name, "index": str(index)})
    expected = int(np.flatnonzero(fashion_mnist.test_y.numpy() == cls)[index])
    assert any(c.value == f"test image #{expected} ({name})" for c in at.caption)


# ---- uploads ----------------------------------------------------------------------------------

def test_uploading_a_file_that_is_not_an_image_shows_one_error_not_an_exception():
    at = open_page()
    at.file_uploader(key="upload").set_value(("bad.png", b"not an image", "image/png")).run()
    assert not at.exception
    assert len(at.error) == 1 and "not an image" in at.error[0].value


def test_uploading_a_colour_photo_converts_it_and_says_so():
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (50, 40), (200, 30, 30)).save(buf, format="PNG")
    at = open_page()
    at.file_uploader(key="upload").set_value(("photo.png", buf.getvalue(), "image/png")).run()
    assert not at.exception and not at.error
    notes = [c.value for c in at.caption if c.value.startswith("Converted:")]
    assert notes == ["Converted: RGB converted to grayscale; resized from 50x40 to 28x28."]
    assert any(c.value == "your image photo.png" for c in at.caption)


# ---- the worked example -----------------------------------------------------------------------

@pytest.mark.parametrize("pattern", ["1..16", "random integers", "checkerboard", "one bright pixel"])
def test_worked_example_values_follow_the_lectures_definitions(pattern):
    at = open_page({"part": WORKED})
    at.selectbox(key="we_pattern").select(pattern).run()
    grid = at.data_editor[0].value.to_numpy(dtype=float)  # the 4x4 grid shown (no edits in AppTest)
    kernel = at.data_editor[1].value.to_numpy(dtype=float)
    blocks = grid.reshape(2, 2, 2, 2).transpose(0, 2, 1, 3).reshape(4, 4)  # m1..m4 -> their 4 v's
    result = table_with(at, "m1", "m2", "m3", "m4")
    np.testing.assert_allclose(result.loc[get_downsample("max").label], blocks.max(1))  # m1 = max(v1,v2,v5,v6)
    np.testing.assert_allclose(result.loc[get_downsample("avg").label], blocks.mean(1))
    np.testing.assert_allclose(result.loc[get_downsample("bilinear").label], blocks.mean(1))
    np.testing.assert_allclose(result.loc[get_downsample("nearest").label], blocks[:, 0])
    np.testing.assert_allclose(result.loc[get_downsample("stride").label], blocks @ kernel.reshape(-1), rtol=1e-6)
    first = ", ".join(f"{v:g}" for v in blocks[0])
    assert any(rf"m_{{1}} &= \max(v_{{1}}, v_{{2}}, v_{{5}}, v_{{6}}) = \max({first})" in m.value for m in at.latex)


# ---- comparing two methods --------------------------------------------------------------------

def test_average_pooling_and_bilinear_halving_are_identical_on_even_maps_and_max_is_not():
    at = open_page({"diff": "avg,bilinear"})
    assert at.metric[0].label == "mean |A − B|"
    assert at.metric[0].value == "0.0000"
    at.selectbox(key="diff_a").select("max").run()
    assert not at.exception and float(at.metric[0].value) > 0
    assert at.query_params["diff"] == "max,bilinear"


# ---- trained runs and the shift probe ---------------------------------------------------------

def test_trained_runs_comparison_shows_one_curve_per_shipped_method_present():
    present = shipped_seed0("fashion-mnist")
    if not present:
        pytest.skip("no shipped downsample_compare checkpoint for fashion-mnist yet")
    at = open_page({"part": TRAINED})
    figs = charts(at)
    for title in ("Test accuracy per epoch", "Test loss per epoch"):
        names = [t["name"] for t in figs[title]["data"]]
        assert len(names) == len(present)
        assert set(names) == {get_downsample(m).label for m in present}  # the metric is in the title
    table = table_with(at, "method", "final test acc", "best test acc", "params", "seconds/epoch")
    assert len(table) == len(present)
    assert (table["best test acc"] >= table["final test acc"] - 1e-12).all()


def test_shift_probe_shows_agreement_and_similarity_per_method_and_a_verdict():
    present = shipped_seed0("fashion-mnist")
    if not present:
        pytest.skip("no shipped downsample_compare checkpoint for fashion-mnist yet")
    at = open_page({"k": "2", "n": "40", "part": SHIFT})
    figs = charts(at)
    for title in ("Predictions unchanged", "Cosine similarity of the downsampled map"):
        assert len(figs[title]["data"]) == len(present)
        assert [p["x"] for p in figs[title]["data"]][0] == [0, 1, 2]
    sim = [t["y"] for t in figs["Cosine similarity of the downsampled map"]["data"]]
    for ys in sim:  # shift 0 and the even shift 2 are exact on the compared interior
        assert ys[0] == pytest.approx(1.0) and ys[2] == pytest.approx(1.0, abs=1e-6)
    assert any("At a 2-pixel shift" in s.value for s in at.success)


# ---- URL state --------------------------------------------------------------------------------

def test_query_params_round_trip():
    params = {"dataset": "fashion-mnist", "class": "Bag", "index": "3", "layer": "conv1",
              "diff": "nearest,stride", "fft_channel": "5"}
    at = open_page(params)
    assert at.selectbox(key="class_fashion-mnist").value == "Bag"
    assert at.number_input(key="index").value == 3
    assert (at.selectbox(key="diff_a").value, at.selectbox(key="diff_b").value) == ("nearest", "stride")
    assert at.selectbox(key="fft_channel").value == 5  # the aliasing expander opens for a link that names it
    for key, value in params.items():
        assert at.query_params[key] == value, key
    assert not any("Ignored URL parameters" in i.value for i in at.info)
    at.selectbox(key="class_fashion-mnist").select("Sandal").run()
    assert at.query_params["class"] == "Sandal"
    shift_params = {"part": SHIFT, "k": "2", "n": "40", "fill": "edge"}
    at = open_page(shift_params)
    assert at.number_input(key="k").value == 2 and at.selectbox(key="fill").value == "edge"
    for key, value in shift_params.items():
        assert at.query_params[key] == value, key


def test_garbage_query_params_fall_back_to_defaults_with_a_notice():
    at = open_page({"dataset": "imagenet", "class": "zzz", "index": "-4", "diff": "max",
                    "source": "../../etc/passwd", "fft_channel": "x"})
    notice = [i.value for i in at.info if "Ignored URL parameters" in i.value]
    assert len(notice) == 1
    for key in ("dataset", "class", "index", "diff", "source", "fft_channel"):
        assert f"{key}=" in notice[0], key
    assert at.selectbox(key="dataset").value == "fashion-mnist"
    assert at.selectbox(key="class_fashion-mnist").value == "T-shirt/top"
    assert at.number_input(key="index").value == 0
    assert (at.selectbox(key="diff_a").value, at.selectbox(key="diff_b").value) == ("max", "avg")
    at = open_page({"part": SHIFT, "k": "99", "fill": "plaid"})
    notice = [i.value for i in at.info if "Ignored URL parameters" in i.value]
    assert len(notice) == 1 and "k=" in notice[0] and "fill=" in notice[0]
    assert at.number_input(key="k").value == 4
    assert at.query_params["k"] == "4"  # the URL now says what is shown


def test_page_imports_no_torch():
    tree = ast.parse((ROOT / PAGE).read_text())
    imported = {a.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert "torch" not in imported
