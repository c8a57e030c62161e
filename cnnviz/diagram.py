"""The Architectures page's maths: layer-shape diagrams, the output-size calculator measured by a real
`nn.Conv2d`, the sliding-window step view, and the 1x1-convolution canvas with its class-score maps.

Everything here returns plain values, numpy arrays or plotly figures; the page only lays them out.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch
import torch.nn as nn
from plotly.subplots import make_subplots  # the step view: input and output side by side

from .data import Dataset
from . import figures
from .figures import DOWNSAMPLE_COLORS
from .models import build_model, class_score_map, count_params
from .summary import Summary, conv_output_size

# ---- the summary table and the layer-shape diagram -------------------------------------------

def summary_table(s: Summary):
    """The lecture's columns (Layer (type), Output Shape, Param #) + the layer's name and formula."""
    import pandas as pd

    return pd.DataFrame({
        "Layer (type)": [r["layer"] for r in s.rows],
        "Output Shape": ["[-1, " + ", ".join(map(str, r["output_shape"])) + "]" for r in s.rows],
        "Param #": [f"{r['params']:,}" for r in s.rows],
        "name": [r["name"] for r in s.rows],
        "output size S_o": [r["formula"] for r in s.rows],
    })


# Kept apart from the downsampling colours of cnnviz.figures (blue, orange, green, purple, red, cyan).
_KIND_COLORS = {"conv": "#e7ba52", "fc": "#7b4173", "input": "#bab0ac", "resize": "#637939",
                "flatten": "#bab0ac", "front": "#8c6d31"}
_DOWNSAMPLE_TYPES = {"MaxPool2d": "max", "AvgPool2d": "avg", "BlurMaxPool": "blurmax"}


def _kind(row: dict) -> tuple[str, str]:
    """(kind, colour) of a summary row for the diagram."""
    t = row["type"]
    if t == "Conv2d":
        return "conv", _KIND_COLORS["conv"]
    if t == "Linear":
        return "fc", _KIND_COLORS["fc"]
    if t in _DOWNSAMPLE_TYPES:
        return "downsample", DOWNSAMPLE_COLORS[_DOWNSAMPLE_TYPES[t]]
    if t == "Interpolate":  # bilinear or nearest: `shapes_figure` recolours by the model's option
        return "downsample", DOWNSAMPLE_COLORS["bilinear"]
    if t == "Resize":
        return "resize", _KIND_COLORS["resize"]
    if t == "Flatten":
        return "flatten", _KIND_COLORS["flatten"]
    if t == "EngineeredFrontEnd":
        return "front", _KIND_COLORS["front"]
    return "other", "#7f7f7f"


def diagram_layers(s: Summary) -> list[dict]:
    """The layers that change the shape (activations dropped), with channels and spatial size.

    A vector of N units is drawn as N channels of 1x1: exactly how a 1x1 convolution sees it.
    """
    out = [{"name": "input", "kind": "input", "color": _KIND_COLORS["input"], "shape": tuple(s.input_shape),
            "params": 0, "formula": ""}]
    prev = tuple(s.input_shape)
    for r in s.rows:
        shape = tuple(r["output_shape"])
        if r["type"] in ("ReLU", "Identity") or (shape == prev and r["params"] == 0):
            continue
        kind, color = _kind(r)
        out.append({"name": r["name"], "kind": kind, "color": color, "shape": shape,
                    "params": r["params"], "formula": r["formula"], "layer": r["layer"]})
        prev = shape
    for d in out:
        d["channels"] = d["shape"][0]
        d["size"] = d["shape"][1] if len(d["shape"]) == 3 else 1
    return out


def shapes_figure(s: Summary, downsample: str | None = None, height: int = 360) -> go.Figure:
    """One box per layer: height = spatial size (pixels), width ~ log2(channels), left to right."""
    layers = diagram_layers(s)
    fig = go.Figure()
    x, gap = 0.0, 1.2
    xs, ys, hover, shapes, notes = [], [], [], [], []
    max_size = max(d["size"] for d in layers)
    for d in layers:
        color = d["color"]
        if d["kind"] == "downsample" and downsample in DOWNSAMPLE_COLORS:
            color = DOWNSAMPLE_COLORS[downsample]
        w = 1 + math.log2(max(d["channels"], 1))
        h = max(d["size"], 0.6)  # a 1x1 map is still drawn visibly
        shapes.append(dict(type="rect", x0=x, x1=x + w, y0=-h / 2, y1=h / 2, line=dict(color="#333", width=1),
                           fillcolor=color, opacity=0.85))
        dims = " x ".join(map(str, d["shape"]))
        notes.append(dict(x=x + w / 2, y=max_size / 2 + 1, text=d["name"], showarrow=False, textangle=-60,
                          yanchor="bottom", font=dict(size=11)))
        notes.append(dict(x=x + w / 2, y=-h / 2 - 0.6, text=dims.replace(" x ", "x"), showarrow=False,
                          yanchor="top", textangle=-60, font=dict(size=10, color="#444")))
        xs.append(x + w / 2)
        ys.append(0)
        hover.append(f"<b>{d['name']}</b> ({d.get('layer', 'input')})<br>output {dims}<br>"
                     f"params {d['params']:,}" + (f"<br>{d['formula']}" if d["formula"] else ""))
        x += w + gap
    # Shapes and annotations set in one go: adding them one at a time is quadratic in plotly.
    fig.update_layout(shapes=shapes, annotations=notes)
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", marker=dict(size=14, opacity=0),
                             hovertext=hover, hoverinfo="text", showlegend=False))
    # A legend of the kinds present, drawn with invisible points.
    seen = {}
    for d in layers:
        label = {"conv": "convolution", "fc": "fully connected (Linear)", "downsample": "downsampling",
                 "resize": "resize", "flatten": "flatten / input", "input": "flatten / input",
                 "front": "engineered front end (fixed)"}.get(d["kind"], d["kind"])
        color = DOWNSAMPLE_COLORS.get(downsample, d["color"]) if d["kind"] == "downsample" else d["color"]
        seen.setdefault(label, color)
    fig.add_traces([go.Scatter(x=[None], y=[None], mode="markers", name=label,
                               marker=dict(size=12, symbol="square", color=color)) for label, color in seen.items()])
    fig.update_xaxes(visible=False, range=[-gap, x])
    fig.update_yaxes(title="spatial size (pixels)", range=[-max_size / 2 - 9, max_size / 2 + 9],
                     zeroline=False, showticklabels=False)
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=10, b=10), plot_bgcolor="white",
                      legend=dict(orientation="h", y=-0.05))
    return fig


# ---- the output-size calculator ---------------------------------------------------------------

@torch.no_grad()
def measure_conv_output(size: int, kernel: int, padding: int = 0, stride: int = 1) -> int:
    """S_o measured: run a real `nn.Conv2d` on a (1, 1, size, size) tensor and read the output's size.

    Raises ValueError with one sentence when the numbers are impossible (no output pixel).
    """
    for name, v, lo in (("input size S_D", size, 1), ("kernel K", kernel, 1), ("padding P", padding, 0),
                        ("stride S", stride, 1)):
        if int(v) != v or v < lo:
            raise ValueError(f"{name} must be a whole number >= {lo}, not {v}")
    if size + 2 * padding < kernel:
        raise ValueError(f"the {kernel}x{kernel} kernel does not fit in the padded input "
                         f"({size} + 2x{padding} = {size + 2 * padding} pixels), so there is no output pixel")
    conv = nn.Conv2d(1, 1, kernel, stride=stride, padding=padding, bias=False)
    return int(conv(torch.zeros(1, 1, size, size)).shape[-1])


@dataclass(frozen=True)
class Window:
    """Where the kernel sits for one output cell, in padded-input coordinates (row, col of top left)."""
    out_row: int
    out_col: int
    row: int
    col: int
    kernel: int


def window_at(index: int, size: int, kernel: int, padding: int, stride: int) -> Window:
    """The kernel's window producing output cell `index` (row-major, 0-based, like m_1, m_2, ...)."""
    n = conv_output_size(size, kernel, padding, stride)
    if n < 1:
        raise ValueError("no output cell: the kernel does not fit in the padded input")
    if not 0 <= index < n * n:
        raise ValueError(f"output cell {index} is outside the {n}x{n} output")
    r, c = divmod(index, n)
    return Window(r, c, r * stride, c * stride, kernel)


def sliding_figure(size: int, kernel: int, padding: int, stride: int, index: int,
                   height: int = 380) -> go.Figure:
    """The padded input (pad cells grey, data cells v_i) with the kernel's window, and the output grid
    with the cell that window produces, side by side."""
    n = conv_output_size(size, kernel, padding, stride)
    win = window_at(index, size, kernel, padding, stride)
    total = size + 2 * padding
    data = np.zeros((total, total))
    data[padding:padding + size, padding:padding + size] = 1
    labels = np.full((total, total), "0", dtype=object)
    for i in range(size):
        for j in range(size):
            labels[padding + i, padding + j] = f"v{i * size + j + 1}"
    inside = np.zeros((total, total))
    inside[win.row:win.row + kernel, win.col:win.col + kernel] = 1
    out = np.zeros((n, n))
    out[win.out_row, win.out_col] = 1
    out_labels = np.array([[f"m{i * n + j + 1}" for j in range(n)] for i in range(n)], dtype=object)
    fig = make_subplots(rows=1, cols=2, column_widths=[total / (total + n), n / (total + n)],
                        horizontal_spacing=0.06,
                        subplot_titles=(f"padded input {total}x{total} (grey: padding P={padding})",
                                        f"output {n}x{n}"))
    show_text = total <= 16
    fig.add_trace(go.Heatmap(z=data + 0.6 * inside, colorscale=[[0, "#d9d9d9"], [0.6, "#f7f7f7"], [1, "#9ecae1"]],
                             zmin=0, zmax=1.6, showscale=False, text=labels,
                             texttemplate="%{text}" if show_text else None,
                             hovertemplate="padded row %{y}, col %{x}: %{text}<extra></extra>"), 1, 1)
    fig.add_trace(go.Heatmap(z=out, colorscale=[[0, "#f7f7f7"], [1, "#fdae6b"]], zmin=0, zmax=1,
                             showscale=False, text=out_labels, texttemplate="%{text}" if n <= 16 else None,
                             hovertemplate="output row %{y}, col %{x}: %{text}<extra></extra>"), 1, 2)
    fig.add_shape(type="rect", x0=win.col - 0.5, x1=win.col + kernel - 0.5, y0=win.row - 0.5,
                  y1=win.row + kernel - 0.5, line=dict(color="#08519c", width=3), row=1, col=1)
    fig.add_shape(type="rect", x0=win.out_col - 0.5, x1=win.out_col + 0.5, y0=win.out_row - 0.5,
                  y1=win.out_row + 0.5, line=dict(color="#a63603", width=3), row=1, col=2)
    for c in (1, 2):
        fig.update_yaxes(autorange="reversed", scaleanchor=f"x{'' if c == 1 else c}", showticklabels=False,
                         showgrid=False, zeroline=False, row=1, col=c)
        fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, row=1, col=c)
    fig.update_layout(height=height, margin=dict(l=5, r=5, t=30, b=5))
    return fig


# ---- 1x1 convolution: the same parameters, and a map of class scores ---------------------------

def fc_vs_1x1_params(in_shape, downsample: str = "max") -> dict:
    """lenet_fc's fc1/fc2 and lenet_1x1's conv3/conv4, built live, with their parameter counts."""
    fc = build_model("lenet_fc", tuple(in_shape), downsample=downsample)
    conv = build_model("lenet_1x1", tuple(in_shape), downsample=downsample)
    fc1, fc2, conv3, conv4 = fc.fc1, fc.fc2, conv.conv3, conv.conv4
    return {"lenet_fc": count_params(fc), "lenet_1x1": count_params(conv),
            "fc1": (fc1.in_features, fc1.out_features, count_params(fc1)),
            "fc2": (fc2.in_features, fc2.out_features, count_params(fc2)),
            "conv3": (conv3.out_channels, conv3.in_channels, *conv3.kernel_size, count_params(conv3)),
            "conv4": (conv4.out_channels, conv4.in_channels, *conv4.kernel_size, count_params(conv4))}


def pick_images(labels: torch.Tensor, seed: int, classes: list[int] | None = None, n: int = 4) -> list[int]:
    """`n` test-set indices chosen by `seed`; with `classes`, slot i holds an image of classes[i % len]."""
    g = torch.Generator().manual_seed(int(seed))
    if not classes:
        return torch.randperm(len(labels), generator=g)[:n].tolist()
    picked = []
    for i in range(n):
        pool = (labels == classes[i % len(classes)]).nonzero().flatten()
        if len(pool) == 0:
            raise ValueError(f"no test image of class {classes[i % len(classes)]}")
        picked.append(int(pool[torch.randint(len(pool), (1,), generator=g)]))
    return picked


def make_canvas(images: torch.Tensor, grid: int = 2) -> torch.Tensor:
    """(grid*grid, C, H, W) images -> one (C, grid*H, grid*W) canvas, row by row (2x2: 28 -> 56)."""
    if images.dim() != 4 or images.shape[0] != grid * grid:
        raise ValueError(f"need {grid * grid} images of shape (C, H, W), got {tuple(images.shape)}")
    rows = [torch.cat(list(images[r * grid:(r + 1) * grid]), dim=-1) for r in range(grid)]
    return torch.cat(rows, dim=-2)


@dataclass
class Canvas:
    """Test images tiled into one larger input, with where they came from."""
    image: torch.Tensor  # (C, 2H, 2W) uint8
    indices: list[int]  # test-set index of each quadrant, row by row
    labels: list[str]  # true class name of each quadrant


def canvas_of_test_images(data: Dataset, seed: int, classes: list[str] | None = None) -> Canvas:
    """Four test images (chosen by `seed`, optionally one of each named class) tiled 2x2."""
    wanted = [data.classes.index(c) for c in classes] if classes else None
    indices = pick_images(data.test_y, seed, wanted)
    return Canvas(make_canvas(data.test_x[indices]), indices, [data.classes[int(data.test_y[i])] for i in indices])


def softmax(logits: np.ndarray, axis: int = 0) -> np.ndarray:
    z = logits - logits.max(axis=axis, keepdims=True)  # subtract the max: exp never overflows
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


@dataclass
class ScoreMaps:
    logits: np.ndarray  # (K, h, w)
    probs: np.ndarray  # (K, h, w), softmax over classes in each cell
    pred: np.ndarray  # (h, w) argmax class per cell
    step: int  # input pixels between neighbouring output cells
    window: int  # input size the net was trained on: one output cell <-> one window this big

    def cell_window(self, row: int, col: int) -> tuple[int, int, int, int]:
        """(top, left, bottom, right) exclusive, in canvas pixels, of the window output cell sees."""
        return row * self.step, col * self.step, row * self.step + self.window, col * self.step + self.window


@torch.no_grad()
def score_maps(model: nn.Sequential, canvas_uint8: torch.Tensor, data: Dataset, train_size: int) -> ScoreMaps:
    """Run a fully convolutional net on a canvas larger than its training input: a map of scores.

    The step between output cells is measured, not assumed: (canvas - train_size) / (cells - 1).
    """
    x = data.normalize(canvas_uint8[None])  # (1, C, H, W)
    logits = class_score_map(model, x)[0].float().numpy()  # (K, h, w)
    h = logits.shape[-1]
    step = (canvas_uint8.shape[-1] - train_size) // (h - 1) if h > 1 else 0
    probs = softmax(logits, axis=0)
    return ScoreMaps(logits, probs, probs.argmax(0), step, train_size)


@torch.no_grad()
def predict_images(model: nn.Module, data: Dataset, indices: list[int]) -> np.ndarray:
    """Class probabilities (N, K) of test images alone, at the size the net was trained on."""
    return softmax(model(data.normalize(data.test_x[indices])).float().numpy(), axis=1)


def canvas_figure(canvas: np.ndarray, window: tuple[int, int, int, int] | None = None,
                  labels: list[str] | None = None, height: int = 360) -> go.Figure:
    """The (C, H, W) uint8 canvas, the window one output cell sees, and each quadrant's true class."""
    c, h, w = canvas.shape
    if c == 1:
        fig = go.Figure(go.Heatmap(z=canvas[0], colorscale="gray", showscale=False,
                                   hovertemplate="canvas row %{y}, col %{x}: %{z}<extra></extra>"))
    else:
        fig = go.Figure(go.Image(z=canvas.transpose(1, 2, 0)))
    if window is not None:
        t, l, b, r = window
        fig.add_shape(type="rect", x0=l - 0.5, x1=r - 0.5, y0=t - 0.5, y1=b - 0.5,
                      line=dict(color="#e6550d", width=3))
    for i, text in enumerate(labels or []):
        rr, cc = divmod(i, 2)
        fig.add_annotation(x=cc * w / 2 + 1, y=rr * h / 2 + 1, text=text, showarrow=False, xanchor="left",
                           yanchor="top", font=dict(color="white", size=11), bgcolor="rgba(0,0,0,0.55)")
    fig.update_yaxes(autorange="reversed", scaleanchor="x", showticklabels=False, showgrid=False, zeroline=False)
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_layout(height=height, margin=dict(l=5, r=5, t=5, b=5))
    return fig


CLASS_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                "#bcbd22", "#17becf"]


def class_map_figure(sm: ScoreMaps, classes, cell: tuple[int, int] | None = None,
                     height: int = 360) -> go.Figure:
    """The map of predicted classes (argmax per cell), class names on hover and in each cell."""
    k = len(classes)
    scale = []
    for i, color in enumerate(CLASS_COLORS[:k]):
        scale += [[i / k, color], [(i + 1) / k, color]]
    names = np.array(classes, dtype=object)[sm.pred]
    best = sm.probs.max(0)
    text = np.array([[f"{names[i, j]}<br>p={best[i, j]:.2f}" for j in range(sm.pred.shape[1])]
                     for i in range(sm.pred.shape[0])], dtype=object)
    short = np.array([[str(n)[:4] for n in row] for row in names], dtype=object)
    fig = go.Figure(go.Heatmap(z=sm.pred, zmin=-0.5, zmax=k - 0.5, colorscale=scale, showscale=False,
                               text=short, customdata=text, texttemplate="%{text}",
                               textfont=dict(size=10, color="white"), showlegend=False,
                               hovertemplate="cell (%{y}, %{x}): %{customdata}<extra></extra>"))
    fig.add_traces([go.Scatter(x=[None], y=[None], mode="markers", name=str(name),  # legend: colour -> class
                               marker=dict(size=11, symbol="square", color=CLASS_COLORS[i]))
                    for i, name in enumerate(classes)])
    if cell is not None:
        r, c = cell
        fig.add_shape(type="rect", x0=c - 0.5, x1=c + 0.5, y0=r - 0.5, y1=r + 0.5,
                      line=dict(color="black", width=3))
    fig.update_yaxes(autorange="reversed", scaleanchor="x", title="output row")
    fig.update_xaxes(title="output column")
    fig.update_layout(height=height, margin=dict(l=5, r=5, t=5, b=5), legend=dict(font=dict(size=10)))
    return fig


def score_maps_figure(sm: ScoreMaps, classes, cols: int = 5, height: int = 330) -> go.Figure:
    """One small map per class, the softmax probability of that class in each output cell (0..1), tiled
    into ONE heatmap (ten subplots cost seconds to build and draw; one heatmap costs milliseconds)."""
    k, h, w = sm.probs.shape
    gap = 2  # room for each map's class name above it
    z = figures.tile(sm.probs, cols, gap, scale=None)  # probabilities stay comparable
    names = np.full(z.shape, "", dtype=object)
    cells = np.full(z.shape, "", dtype=object)
    notes = []
    for i, name in enumerate(classes):
        r, c = divmod(i, cols)
        top, left = r * (h + gap), c * (w + gap)
        names[top: top + h, left: left + w] = str(name)
        for y in range(h):
            for x in range(w):
                cells[top + y, left + x] = f"({y}, {x})"
        notes.append(dict(x=left + (w - 1) / 2, y=top - 0.6, text=str(name), showarrow=False,
                          yanchor="bottom", font=dict(size=11)))
    fig = go.Figure(go.Heatmap(z=z, zmin=0, zmax=1, colorscale="Viridis", customdata=np.dstack([names, cells]),
                               colorbar=dict(title="p", thickness=12), hoverongaps=False,
                               hovertemplate="%{customdata[0]}, cell %{customdata[1]}: p=%{z:.3f}<extra></extra>"))
    fig.update_layout(annotations=notes, height=height, margin=dict(l=5, r=5, t=25, b=5), plot_bgcolor="white")
    fig.update_yaxes(autorange="reversed", scaleanchor="x", visible=False)
    fig.update_xaxes(visible=False)
    return fig
