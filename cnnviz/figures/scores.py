"""Figures of a fully convolutional net's class scores on a canvas: the canvas with the window one
output cell sees, the map of predicted classes, and one probability map per class."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ..score_maps import ScoreMaps
from .maps import tile
from .style import FONT_SIZE, base_layout


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
                           yanchor="top", font=dict(color="white", size=FONT_SIZE), bgcolor="rgba(0,0,0,0.55)")
    fig.update_yaxes(autorange="reversed", scaleanchor="x", showticklabels=False, showgrid=False, zeroline=False)
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
    return base_layout(fig, height, top=5, l=5, r=5, b=5)


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
                               textfont=dict(size=FONT_SIZE, color="white"), showlegend=False,
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
    fig.update_layout(legend=dict(font=dict(size=FONT_SIZE)))
    return base_layout(fig, height, top=5, l=5, r=5, b=5)


def score_maps_figure(sm: ScoreMaps, classes, cols: int = 5, height: int = 330) -> go.Figure:
    """One small map per class, the softmax probability of that class in each output cell (0..1), tiled
    into ONE heatmap (ten subplots cost seconds to build and draw; one heatmap costs milliseconds)."""
    k, h, w = sm.probs.shape
    gap = 2  # room for each map's class name above it
    z = tile(sm.probs, cols, gap, scale=None)  # probabilities stay comparable
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
                          yanchor="bottom", font=dict(size=FONT_SIZE)))
    fig = go.Figure(go.Heatmap(z=z, zmin=0, zmax=1, colorscale="Viridis", customdata=np.dstack([names, cells]),
                               colorbar=dict(title="p", thickness=12), hoverongaps=False,
                               hovertemplate="%{customdata[0]}, cell %{customdata[1]}: p=%{z:.3f}<extra></extra>"))
    fig.update_layout(annotations=notes, plot_bgcolor="white")
    base_layout(fig, height, top=25, l=5, r=5, b=5)
    fig.update_yaxes(autorange="reversed", scaleanchor="x", visible=False)
    fig.update_xaxes(visible=False)
    return fig
