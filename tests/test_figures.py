"""cnnviz.figures: tiling many maps into one heatmap, labelled grids, and one colour per method."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np

from cnnviz import figures
from cnnviz.downsample import get_downsample, list_downsamples
from cnnviz.engineered import engineered_kernels
from cnnviz.figures import style


def test_tile_maps_keeps_values_and_puts_nan_between():
    maps = np.arange(10 * 2 * 3, dtype=np.float32).reshape(10, 2, 3)
    t = figures.tile(maps, cols=5, scale=None)
    assert t.shape == (2 * 3 - 1, 5 * 4 - 1)
    np.testing.assert_array_equal(t[3:5, 4:7], maps[6])  # row 1, column 1
    assert np.isnan(t[2]).all() and np.isnan(t[:, 3]).all()




def test_tile_signed_keeps_zero_and_sign():
    k = engineered_kernels(3)
    img = figures.tile(np.stack([k["sobel_x"], 3 * k["laplacian"]]), cols=2, scale="peak")
    assert img.shape == (3, 7) and np.isnan(img[:, 3]).all()
    np.testing.assert_allclose(img[:, :3], k["sobel_x"] / 2)
    np.testing.assert_allclose(img[:, 4:], k["laplacian"] / 4)


def test_labelled_grid_puts_one_label_under_each_map_and_keeps_signs():
    k = engineered_kernels(3)
    maps = np.stack([k["sobel_x"], -k["sobel_y"], k["laplacian"]])
    fig = figures.labelled_grid_figure(maps, ["a", "b", "c"], cols=8, signed=True, width=400)
    assert [a.text for a in fig.layout.annotations] == ["a", "b", "c"]
    z = np.asarray(fig.data[0].z, dtype=float)
    assert np.nanmin(z) == -1 and np.nanmax(z) == 1 and fig.data[0].zmid == 0


def test_every_method_has_its_own_colour_and_unknown_ones_are_grey():
    colors = [figures.downsample_color(m) for m in list_downsamples()]
    assert len(set(colors)) == len(colors) and figures.NO_METHOD_COLOR not in colors
    assert colors == [get_downsample(m).color for m in list_downsamples()]
    assert figures.downsample_color(None) == figures.downsample_color("no-such-method") == figures.NO_METHOD_COLOR


# ---- the shared chart style (cnnviz/figures/style.py) -------------------------------------------------

def _history(epochs):
    return [{"epoch": e, "train_acc": 0.5 + e / 100, "test_acc": 0.5 + e / 90, "train_loss": 1 / e,
             "test_loss": 1.1 / e} for e in epochs]


def test_epochs_get_whole_number_ticks_and_a_single_epoch_is_one_large_marker_mid_axis():
    ten = figures.curves_figure([{"label": "a", "history": _history(range(1, 11)), "color": "#000"}])
    assert ten.layout.xaxis.dtick == 1 and ten.layout.xaxis.tickformat == "d"
    long = figures.curves_figure([{"label": "a", "history": _history(range(1, 201)), "color": "#000"}])
    assert long.layout.xaxis.dtick == 20  # at most 10 ticks, still whole numbers
    one = figures.curves_figure([{"label": "a", "history": _history([1]), "color": "#000"}])
    assert list(one.layout.xaxis.tickvals) == [1] and list(one.layout.xaxis.range) == [0, 2]
    assert all(t.marker.size == style.SINGLE_POINT_SIZE > style.POINT_SIZE for t in one.data)


def test_the_legend_sits_under_the_axis_title_in_a_margin_grown_by_its_rows():
    runs = [{"label": f"run {i}", "history": _history(range(1, 4)), "color": "#000"} for i in range(6)]
    fig = figures.curves_figure(runs, height=380)  # 12 entries: "run 0 · train accuracy" ...
    cols = style.legend_columns([t.name for t in fig.data])
    rows = -(-12 // cols)
    assert fig.layout.legend.yref == "container" and fig.layout.legend.y == 0 and fig.layout.legend.entrywidth == 1 / cols
    assert fig.layout.margin.b == style.AXIS_BELOW + rows * style.LEGEND_ROW + 8
    assert fig.layout.height == 380 + rows * style.LEGEND_ROW + 8  # the plot keeps its height
    assert [t.name for t in fig.data[:2]] == ["run 0 · train accuracy", "run 0 · test accuracy"]
    single = figures.curves_figure(runs[:1])  # one run: its name once, in the subtitle
    assert [t.name for t in single.data] == ["train accuracy", "test accuracy"]
    assert single.layout.title.subtitle.text == "run 0"


def test_a_log_axis_labels_every_tick_with_its_magnitude():
    assert style.log_ticks(60_000, 1_200_000) == [50_000, 100_000, 200_000, 500_000, 1_000_000]
    assert style.log_ticks(592_074, 592_074) == [500_000, 600_000, 700_000]  # one value: digits, still >= 3
    assert [style.compact_number(v) for v in (800, 60_000, 1_200_000)] == ["800", "60k", "1.2M"]
    points = [{"x": 61_706, "y": 0.9, "label": "lenet5 · max · fashion-mnist", "color": "#1f77b4"},
              {"x": 592_074, "y": 0.89, "label": "downsample_compare · max · fashion-mnist", "color": "#ff7f0e"}]
    fig = figures.cost_scatter_figure(points, "parameters")
    assert fig.layout.xaxis.type == "log" and list(fig.layout.xaxis.ticktext) == ["50k", "100k", "200k", "500k"]


def test_cost_scatter_gives_two_nets_with_one_downsampling_two_colours_and_two_names():
    points = [{"x": 61_706, "y": 0.9, "label": "lenet5 · max · fashion-mnist", "color": "#1f77b4"},
              {"x": 592_074, "y": 0.89, "label": "downsample_compare · max · fashion-mnist", "color": "#ff7f0e"},
              {"x": 592_074, "y": 0.891, "label": "downsample_compare · max · fashion-mnist · seed 1",
               "color": "#ff7f0e"}]
    fig = figures.cost_scatter_figure(points, "parameters")
    assert [t.name for t in fig.data] == ["lenet5", "downsample_compare"]  # the two seeds: one series
    assert [t.marker.color for t in fig.data] == ["#1f77b4", "#ff7f0e"] and len(fig.data[1].x) == 2
    assert fig.layout.title.subtitle.text == "max · fashion-mnist"  # what all points share


def test_grid_labels_are_12_px_and_tiles_keep_a_readable_size():
    maps = np.random.default_rng(0).random((32, 28, 28))
    fig = figures.labelled_grid_figure(maps, [str(i) for i in range(32)], cols=8, width=figures.column_width(1 / 3))
    assert {a.font.size for a in fig.layout.annotations} == {style.FONT_SIZE} and style.FONT_SIZE >= 12
    columns = len({a.x for a in fig.layout.annotations})
    assert figures.column_width(1 / 3) / columns >= style.MIN_TILE  # 8 asked, fewer drawn


def test_a_long_title_of_a_small_map_wraps_instead_of_running_off_the_chart():
    fig = figures.heatmap(np.zeros((4, 4)), "Max pooling + blur (anti-aliased, Zhang 2019)")
    assert fig.layout.title.text == "Max pooling + blur<br>(anti-aliased, Zhang<br>2019)"
    assert fig.layout.margin.t == style.title_margin(3)


_FIGURE_CALLS = {"update_layout", "update_xaxes", "update_yaxes", "update_traces", "add_trace", "add_traces",
                 "add_shape", "add_annotation", "add_vline"}


def _imports_and_calls(path: Path) -> tuple[set[str], set[str]]:
    tree = ast.parse(path.read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    calls = {n.func.attr for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}
    return imported, calls


def test_every_plotly_figure_is_built_in_cnnviz_figures():
    root = Path(__file__).resolve().parent.parent
    for path in [root / "streamlit_app.py", *root.glob("pages/**/*.py")]:  # pages and pages/ui only lay figures out
        imported, calls = _imports_and_calls(path)
        assert "plotly" not in imported and not calls & _FIGURE_CALLS, (path.name, calls & _FIGURE_CALLS)
    for path in (root / "cnnviz").glob("*.py"):  # nor does the rest of the library draw
        assert "plotly" not in _imports_and_calls(path)[0], path.name
