"""Figures of a network's geometry: the layer-shape diagram and the sliding window of one convolution."""
from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots  # the step view: input and output side by side

from ..conv_arithmetic import conv_output_size, window_at
from ..summary import Summary, diagram_layers
from .runs import downsample_color
from .style import FONT_SIZE, base_layout, legend_below

# Kept apart from the downsampling methods' colours (blue, orange, green, purple, red, cyan).
_KIND_COLORS = {"conv": "#e7ba52", "fc": "#7b4173", "input": "#bab0ac", "resize": "#637939",
                "flatten": "#bab0ac", "front": "#8c6d31"}
_KIND_LABELS = {"conv": "convolution", "fc": "fully connected (Linear)", "downsample": "downsampling",
                "resize": "resize", "flatten": "flatten / input", "input": "flatten / input",
                "front": "engineered front end (fixed)"}


def _color(d: dict) -> str:
    """A diagram box's colour: its downsampling method's, else its kind's (grey for "other")."""
    return downsample_color(d["downsample"]) if d["kind"] == "downsample" else _KIND_COLORS.get(d["kind"], "#7f7f7f")


def shapes_figure(s: Summary, height: int = 360) -> go.Figure:
    """One box per layer: height = spatial size (pixels), width ~ log2(channels), left to right; a
    downsampling layer in its method's colour."""
    layers = diagram_layers(s)
    fig = go.Figure()
    x, gap = 0.0, 1.2
    xs, ys, hover, shapes, notes = [], [], [], [], []
    max_size = max(d["size"] for d in layers)
    for d in layers:
        color = _color(d)
        w = 1 + math.log2(max(d["channels"], 1))
        h = max(d["size"], 0.6)  # a 1x1 map is still drawn visibly
        shapes.append(dict(type="rect", x0=x, x1=x + w, y0=-h / 2, y1=h / 2, line=dict(color="#333", width=1),
                           fillcolor=color, opacity=0.85))
        dims = " x ".join(map(str, d["shape"]))
        notes.append(dict(x=x + w / 2, y=max_size / 2 + 1, text=d["name"], showarrow=False, textangle=-60,
                          yanchor="bottom", font=dict(size=FONT_SIZE)))
        notes.append(dict(x=x + w / 2, y=-h / 2 - 0.6, text=dims.replace(" x ", "x"), showarrow=False,
                          yanchor="top", textangle=-60, font=dict(size=FONT_SIZE, color="#444")))
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
        seen.setdefault(_KIND_LABELS.get(d["kind"], d["kind"]), _color(d))
    fig.add_traces([go.Scatter(x=[None], y=[None], mode="markers", name=label,
                               marker=dict(size=12, symbol="square", color=color)) for label, color in seen.items()])
    fig.update_xaxes(visible=False, range=[-gap, x])
    fig.update_yaxes(title="spatial size (pixels)", range=[-max_size / 2 - 9, max_size / 2 + 9],
                     zeroline=False, showticklabels=False)
    fig.update_layout(plot_bgcolor="white")
    return legend_below(fig, height, top=10, x_title=False)


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
    return base_layout(fig, height, top=30, l=5, r=5, b=5)
