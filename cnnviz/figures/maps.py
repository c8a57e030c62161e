"""Figures of many small maps (feature maps, kernels, filters, spectra) and of images.

Many small maps are tiled into ONE heatmap (a grid of subplots costs seconds to draw in the browser;
one heatmap of the same pixels costs milliseconds, see PLATFORM.md).
"""
from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from .style import (CHAR_WIDTH, FONT_SIZE, GRID_HEIGHT, MIN_TILE, TILE_GAP, TITLE_CHAR_PX, TITLE_CHARS, TITLE_LINE, base_layout,
                    title_margin, wrap_title)


def tile(maps: np.ndarray, cols: int | None = None, pad: int = 1, scale: str | None = "minmax",
         row_pad: int | None = None) -> np.ndarray:
    """(N, H, W) -> one (rows*(H+row_pad), cols*(W+pad)) image, NaN between the maps (`row_pad`: the gap
    between rows, default `pad`; a taller one holds a label under each map).

    `scale`: "minmax" rescales each map to 0..1 (shapes of activations); "peak" divides each map by its
    largest |value|, so 0 stays 0 and the sign survives (kernels, on a diverging scale); None keeps the
    values (differences, probabilities comparable across maps).
    """
    maps = np.asarray(maps, dtype=np.float32)
    n, h, w = maps.shape
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    rpad = pad if row_pad is None else row_pad
    out = np.full((rows * (h + rpad) - rpad, cols * (w + pad) - pad), np.nan, np.float32)
    for i, m in enumerate(maps):
        if scale == "minmax":
            lo, hi = float(m.min()), float(m.max())
            m = (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)
        elif scale == "peak":
            peak = float(np.abs(m).max())
            m = m / peak if peak > 0 else np.zeros_like(m)
        elif scale is not None:
            raise ValueError(f"scale must be 'minmax', 'peak' or None, not {scale!r}")
        r, c = divmod(i, cols)
        out[r * (h + rpad): r * (h + rpad) + h, c * (w + pad): c * (w + pad) + w] = m
    return out


def heatmap(img: np.ndarray, title: str = "", colorscale: str = "gray", zmid: float | None = None,
            height: int = 300, showscale: bool = False) -> go.Figure:
    fig = go.Figure(go.Heatmap(z=np.asarray(img), colorscale=colorscale, zmid=zmid, showscale=showscale,
                               hovertemplate="row %{y}, col %{x}: %{z:.3f}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", scaleanchor="x", showticklabels=False)
    fig.update_xaxes(showticklabels=False)
    return _titled(fig, title, height)


def _titled(fig: go.Figure, title: str, height: int, chars: int = TITLE_CHARS) -> go.Figure:
    """A small map's title, wrapped to the map's width (plotly never wraps a title: it runs off the chart),
    standing on the map, and the top margin that holds its lines."""
    text, lines = wrap_title(title, chars)
    # Standing on the plot, the margin grown to hold it (automargin). Plotly anchors a title of several lines by
    # its first line (the others hang below it, onto the map), so the padding lifts it by the lines below.
    fig.update_layout(title=dict(text=text, yref="paper", y=1, yanchor="bottom", automargin=True,
                                 pad=dict(b=6 + TITLE_LINE * (lines - 1))))
    return base_layout(fig, height, top=title_margin(lines) if title else 5, l=5, r=5, b=5)


def image_figure(x_uint8: np.ndarray, title: str = "", height: int = 220) -> go.Figure:
    """(C, H, W) uint8 -> a gray heatmap (C=1) or an RGB image."""
    x = np.asarray(x_uint8)
    if x.shape[0] == 1:
        return heatmap(x[0], title, "gray", height=height)
    fig = go.Figure(go.Image(z=x.transpose(1, 2, 0)))
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    return _titled(fig, title, height)


def labelled_grid_figure(maps: np.ndarray, labels: list[str], cols: int, *, signed: bool = False,
                         title: str = "", width: int = 1100, lines: int = 1) -> go.Figure:
    """Many small maps tiled into ONE heatmap, each labelled underneath (signed: 0 stays white).

    `width` is the expected width on screen in pixels: it sizes the gaps that hold `lines` lines of
    label and the height that keeps the pixels square (`style.column_width` gives it for a column). Fewer
    columns are drawn where `cols` would make a tile narrower than `MIN_TILE` pixels or than its label.
    """
    n, h, w = maps.shape
    label_chars = max((len(line) for label in labels for line in str(label).split("<br>")), default=1)
    cols = max(1, min(cols, width // max(MIN_TILE, int(label_chars * CHAR_WIDTH) + 8)))
    if n < cols:  # a handful of maps: keep their tiles the size they would have in a full row
        width, cols = int(width * n / cols), n
    label_px = (FONT_SIZE + 3) * lines + 4
    rows = math.ceil(n / cols)
    chars = max(TITLE_CHARS, int(width // TITLE_CHAR_PX))
    top, bottom = (title_margin(wrap_title(title, chars)[1]) if title else 5), label_px + 5
    # Screen pixels per map pixel: the tiles fill the width (a thin gap between columns), unless the grid would
    # then grow past GRID_HEIGHT; the gap between rows is sized at that scale to hold the labels in pixels.
    plot_w = width - 10
    px = (plot_w - (cols - 1) * TILE_GAP) / (cols * w)
    px = max(0.5, min(px, (GRID_HEIGHT - top - bottom - (rows - 1) * label_px) / (rows * h)))
    row_pad = max(1, math.ceil(label_px / px))
    pad = max(1, round((plot_w / px - cols * w) / (cols - 1))) if cols > 1 else 1
    img = tile(maps, cols, pad, scale="peak" if signed else "minmax", row_pad=row_pad)
    height = int(top + bottom + px * img.shape[0]) + 1
    fig = _titled(heatmap(img, colorscale="RdBu_r" if signed else "gray", zmid=0 if signed else None),
                  title, max(140, height), chars)
    if signed:
        fig.update_traces(zmin=-1, zmax=1)
    fig.update_xaxes(visible=False)  # no axis: no stray tick or grid line under the labels
    fig.update_yaxes(visible=False)
    # One update with every label: add_annotation one by one re-validates the whole list each time.
    notes = [dict(x=(i % cols) * (w + pad) + (w - 1) / 2, y=(i // cols) * (h + row_pad) + h - 0.5, text=label,
                  showarrow=False, yanchor="top", font=dict(size=FONT_SIZE)) for i, label in enumerate(labels)]
    fig.update_layout(annotations=notes, margin=dict(l=5, r=5, t=top, b=bottom))
    return fig
