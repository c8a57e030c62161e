"""Figures of one computation: a map to click a pixel on, the input window that made it, small grids of
numbers (window, kernel, products), a unit's receptive field, and receptive field size per layer."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ..conv_arithmetic import Field
from ..inside import Pixel
from .maps import heatmap, image_figure
from .style import FONT_SIZE, base_layout, integer_ticks, legend_below

WINDOW = "#e6550d"  # the window / the theoretical field
PICKED = "#31a354"  # the chosen output pixel
WINNER = "#ffd700"


def _box(top: float, left: float, bottom: float, right: float, color: str, width: int = 3, dash=None) -> dict:
    """A rectangle around pixels top..bottom, left..right (inclusive) of a heatmap."""
    return dict(type="rect", x0=left - 0.5, x1=right + 0.5, y0=top - 0.5, y1=bottom + 0.5,
                line=dict(color=color, width=width, dash=dash))


def pick_figure(fmap: np.ndarray, picked: tuple[int, int], title: str = "", height: int = 330) -> go.Figure:
    """A (h, w) map with the picked pixel boxed; an invisible marker on every pixel makes each one clickable
    (a plotly heatmap cannot be selected, a scatter point can: its x, y are the column and row)."""
    fig = heatmap(fmap, title, colorscale="Viridis", height=height, showscale=True)
    h, w = fmap.shape
    rows, cols = np.mgrid[0:h, 0:w]
    fig.add_trace(go.Scatter(x=cols.ravel(), y=rows.ravel(), mode="markers", showlegend=False,
                             marker=dict(symbol="square", size=max(4, 300 // max(h, w)), opacity=0),
                             customdata=fmap.ravel(), hovertemplate="row %{y}, col %{x}: %{customdata:.4f}"
                                                                    "<extra>click to pick</extra>"))
    fig.update_layout(shapes=[_box(*picked, *picked, PICKED)], clickmode="event+select", dragmode=False)
    fig.update_xaxes(showgrid=False, zeroline=False)
    fig.update_yaxes(showgrid=False, zeroline=False)
    return fig


def window_figure(fmap: np.ndarray, pixel: Pixel, title: str = "", height: int = 330) -> go.Figure:
    """The layer's input (one channel, (H, W)) with the window that made `pixel`: its box (dashed where it
    reaches into the padding), the max's winner as a star, the pixels a blurmax's nine maxima read."""
    fig = heatmap(fmap, title, colorscale="gray", height=height, showscale=True)
    h, w = fmap.shape
    parts = pixel.parts or (pixel,)
    shapes = [_box(min(p.rows), min(p.cols), max(p.rows), max(p.cols), WINDOW, 1 if pixel.parts else 3)
              for p in parts]
    if pixel.parts:  # the whole area the nine maxima read, drawn over them
        reads = pixel.reads((h, w))
        rr, cc = [r for r, _ in reads], [c for _, c in reads]
        shapes.append(_box(min(rr), min(cc), max(rr), max(cc), WINDOW, 3))
    if min(pixel.rows) < 0 or min(pixel.cols) < 0 or max(pixel.rows) >= h or max(pixel.cols) >= w:
        shapes.append(_box(-0.5, -0.5, h - 0.5, w - 0.5, "#9ecae1", 1, "dot"))  # the map's edge, padding beyond
    fig.update_layout(shapes=shapes)
    winners = [p.winner for p in parts if p.winner is not None]
    if winners:
        fig.add_trace(go.Scatter(x=[c for _, _, c in winners], y=[r for _, r, _ in winners], mode="markers",
                                 marker=dict(symbol="star", size=14, color=WINNER, line=dict(color="black", width=1)),
                                 name="max", showlegend=False, hovertemplate="winner: row %{y}, col %{x}<extra></extra>"))
    pad = 1 + (max(pixel.rows) - min(pixel.rows)) // 4
    fig.update_xaxes(range=[min(-0.5, min(pixel.cols) - pad), max(w - 0.5, max(pixel.cols) + pad)])
    fig.update_yaxes(range=[max(h - 0.5, max(pixel.rows) + pad), min(-0.5, min(pixel.rows) - pad)],
                     autorange=False)
    return fig


def numbers_figure(values: np.ndarray, title: str = "", *, signed: bool = True, rows=None, cols=None,
                   mark: tuple[int, int] | None = None, height: int = 260) -> go.Figure:
    """A small (kh, kw) grid with each number written in its cell (rounded for the eye; hover for more); `rows`
    and `cols` label the cells with the input rows and columns they come from."""
    v = np.asarray(values, dtype=float)
    finite = v[np.isfinite(v)]
    peak = float(np.abs(finite).max()) if finite.size and np.abs(finite).max() > 0 else 1.0
    fig = go.Figure(go.Heatmap(z=np.where(np.isfinite(v), v, np.nan), colorscale="RdBu_r" if signed else "Greys",
                               zmid=0 if signed else None, zmin=-peak if signed else 0, zmax=peak,
                               text=[[_short(x) for x in row] for row in v],
                               texttemplate="%{text}" if v.size <= 81 else None, showscale=False,
                               textfont=dict(size=FONT_SIZE),
                               hovertemplate="%{z:.6f}<extra></extra>"))
    if mark is not None:
        fig.update_layout(shapes=[_box(mark[0], mark[1], mark[0], mark[1], WINNER, 4)])
    # Tick labels, not category axes: a bilinear window at the border reads one row twice.
    fig.update_yaxes(autorange="reversed", scaleanchor="x", showgrid=False, zeroline=False,
                     tickvals=list(range(v.shape[0])), ticktext=[str(r) for r in rows] if rows is not None else None)
    fig.update_xaxes(side="top", showgrid=False, zeroline=False, tickvals=list(range(v.shape[1])),
                     ticktext=[str(c) for c in cols] if cols is not None else None)
    fig.update_layout(title=dict(text=title, y=0.98, yanchor="top"))
    return base_layout(fig, height, top=70 if title else 25, l=5, r=5, b=5)


def _short(x: float) -> str:
    if not np.isfinite(x):
        return "-inf" if x < 0 else "pad"
    if float(x).is_integer():
        return f"{abs(x) if x == 0 else x:.0f}"  # no "-0"
    return f"{x:.2f}" if abs(x) < 100 else f"{x:.0f}"


def field_figure(image: np.ndarray, field: Field, title: str = "", height: int = 330) -> go.Figure:
    """The input image (C, H, W) uint8 with a unit's theoretical receptive field boxed, clipped to the image."""
    fig = image_figure(image, title, height=height)
    _, h, w = image.shape
    f = field.clipped(h, w)
    fig.update_layout(shapes=[_box(f.top, f.left, f.bottom, f.right, WINDOW)])
    return fig


def effective_figure(grad: np.ndarray, field: Field, title: str = "", height: int = 330) -> go.Figure:
    """|d unit / d input| (H, W) as a heatmap, with the theoretical field boxed for comparison."""
    h, w = grad.shape
    fig = heatmap(grad, title, colorscale="Hot_r", height=height, showscale=True)
    f = field.clipped(h, w)
    fig.update_layout(shapes=[_box(0, 0, h - 1, w - 1, "#bbbbbb", 1),  # the image's edge: zeros are white
                              _box(f.top, f.left, f.bottom, f.right, WINDOW, 2, "dash")])
    return fig


def fields_per_layer_figure(rows: list[dict], colors: dict[str, str], height: int = 320) -> go.Figure:
    """Receptive field size (pixels) after each layer, one line per downsampler (`rows`: method, layer, rf); a
    layer one method lacks (the strided conv has no pool layer) is a gap in its line."""
    layers = list(dict.fromkeys(r["layer"] for r in sorted(rows, key=lambda r: r["order"])))
    fig = go.Figure()
    for method, color in colors.items():
        mine = [r for r in rows if r["method"] == method]
        fig.add_trace(go.Scatter(x=[r["layer"] for r in mine], y=[r["rf"] for r in mine], mode="lines+markers",
                                 name=method, line=dict(color=color)))
    fig.update_xaxes(categoryorder="array", categoryarray=layers)
    fig.update_layout(yaxis_title="receptive field (pixels)", xaxis_title="layer")
    integer_ticks(fig, [r["rf"] for r in rows], axis="y")
    return legend_below(fig, height, top=10)
