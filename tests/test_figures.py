"""cnnviz.figures: tiling many maps into one heatmap, labelled grids, and one colour per method."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np

from cnnviz import figures
from cnnviz.downsample import get_downsample, list_downsamples
from cnnviz.engineered import engineered_kernels


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
