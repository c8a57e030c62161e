"""The look every chart shares, defined once: the smallest font, the margins, where a legend goes and how
much room it takes, whole-number ticks for epochs and shifts, and readable ticks on a log axis.

A legend sits under the plot, below the x-axis title, in a fixed number of columns: its number of rows is
then known here, before the browser draws it, and the bottom margin is made to hold exactly that many rows
(a legend placed at a fraction of the plot's height lands on the axis title whenever the chart is short).
"""
from __future__ import annotations

import math

import plotly.graph_objects as go

FONT_SIZE = 12  # the smallest text on any chart (tick labels, legends, labels under tiles): legible on a projector
MARGIN = dict(l=10, r=10, t=40, b=10)  # around the plot; plotly's automargin adds room for ticks and titles
TITLE_TOP = 60  # the top margin under a title with a subtitle
CONTENT_WIDTH = 980  # px: the page's main column in the wide layout, in Chromium at 1440x900 (measured)
COLUMN_GAP = 16  # px between two st.columns


def column_width(share: float = 1.0) -> int:
    """The width in px of a chart in an st.columns column holding `share` of the page's main column."""
    return int(CONTENT_WIDTH * share - COLUMN_GAP * (1 - share))


CHART_WIDTH = column_width(1 / 2)  # the usual chart with a legend: one of two columns
LEGEND_ROW = 21  # px per row of legend entries at FONT_SIZE
AXIS_BELOW = 52  # px under the plot for the x tick labels and the x-axis title
CHAR_WIDTH = 7.0  # px: a generous average width of one character at FONT_SIZE
SYMBOL_WIDTH = 50  # px: a legend entry's line sample and the gaps around it
GRID_HEIGHT = 900  # px: the tallest grid of maps (one screen); past it the tiles shrink, the labels do not
TILE_GAP = 6  # px between two maps of a grid side by side
MIN_TILE = 64  # px: the narrowest column of a grid of maps (tile and gap; a 28x28 map at 2 px per pixel)
TITLE_CHARS = 24  # characters per line of a small map's title (its chart may be ~200 px wide)
TITLE_LINE = 22  # px per line of a chart title
TITLE_CHAR_PX = 9  # px: a generous average width of one character of a chart title (bold, larger than FONT_SIZE)
POINT_SIZE, SINGLE_POINT_SIZE = 6, 11  # a single epoch is one point: drawn large enough to be seen


def legend_columns(names: list[str], width: int = CHART_WIDTH) -> int:
    """How many legend entries fit side by side in a chart `width` px wide, judged by the longest name."""
    longest = max((len(n) for n in names), default=1)
    return max(1, min(len(names), int(width // (longest * CHAR_WIDTH + SYMBOL_WIDTH))))


def legend_below(fig: go.Figure, height: int, *, top: int = MARGIN["t"], x_title: bool = True,
                 width: int = CHART_WIDTH) -> go.Figure:
    """Put the figure's legend under the plot, in columns, and grow the figure by exactly its rows.

    `height` is the figure's height without a legend: the plot keeps its size whatever the number of entries;
    `width` the chart's expected width on screen (it sets how many entries fit side by side).
    """
    names = [t.name for t in fig.data if t.showlegend is not False and t.name]
    cols = legend_columns(names, width)
    rows = math.ceil(len(names) / cols) if names else 0
    legend_px = rows * LEGEND_ROW + 8 if rows else 0
    bottom = (AXIS_BELOW if x_title else 28) + legend_px
    fig.update_layout(
        height=height + legend_px, margin=dict(MARGIN, t=top, b=bottom), showlegend=bool(names),
        # "container": y counts from the figure's bottom edge, not the plot's, so the legend stays in the margin
        # made for it; "normal": one entry after another in rows (grouped entries would stack in columns).
        legend=dict(orientation="h", yref="container", y=0, yanchor="bottom", x=0, xanchor="left",
                    entrywidthmode="fraction", entrywidth=1 / cols, traceorder="normal",
                    font=dict(size=FONT_SIZE)))
    return fig


def titled(title: str, subtitle: str = "") -> dict:
    """A chart title with its subtitle at FONT_SIZE (plotly draws a subtitle smaller than the tick labels)."""
    return dict(text=title, subtitle=dict(text=subtitle, font=dict(size=FONT_SIZE)))


def base_layout(fig: go.Figure, height: int, *, top: int = MARGIN["t"], **margin) -> go.Figure:
    """The shared margins and font of a figure without a legend under it."""
    fig.update_layout(height=height, margin=dict(MARGIN, t=top, **margin), font=dict(size=FONT_SIZE))
    return fig


def _nice_step(span: float, most: int) -> int:
    """The smallest whole step of 1, 2, 5 x 10^k that puts at most `most` ticks on `span`."""
    for k in range(10):
        for m in (1, 2, 5):
            step = m * 10 ** k
            if span / step <= most:
                return step
    return 10 ** 10


def integer_ticks(fig: go.Figure, values, *, axis: str = "x", most: int = 10) -> go.Figure:
    """Ticks on whole numbers only (epochs, shifts in pixels): never "0.5", at most `most` of them. A single
    value gets a range of one unit around it, so its points sit in the middle of the axis."""
    values = sorted({int(v) for v in values})
    if not values:
        return fig
    lo, hi = values[0], values[-1]
    update = dict(tickmode="linear", tick0=0, dtick=_nice_step(hi - lo, most), tickformat="d")
    if lo == hi:
        update.update(tickmode="array", tickvals=[lo], range=[lo - 1, hi + 1])
    (fig.update_xaxes if axis == "x" else fig.update_yaxes)(**update)
    return fig


def compact_number(v: float) -> str:
    """60000 -> "60k", 1200000 -> "1.2M", 800 -> "800": a tick label with its magnitude on it."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= scale:
            return f"{v / scale:.3g}{suffix}"
    return f"{v:.3g}"


def log_ticks(lo: float, hi: float, least: int = 3) -> list[float]:
    """Tick values for a log axis over [lo, hi]: powers of ten, then 1-2-5, then every digit, whichever first
    puts at least `least` ticks on the range (plotly's own labels read "6 7 8 9 100k 2 3")."""
    lo, hi = min(lo, hi), max(lo, hi)
    span_lo, span_hi = lo / 1.25, hi * 1.25  # the range the axis shows (see `log_axis`)
    for mantissas in ((1,), (1, 2, 5), (1, 2, 3, 4, 5, 6, 7, 8, 9)):
        ticks = [m * 10 ** k for k in range(math.floor(math.log10(span_lo)), math.ceil(math.log10(span_hi)) + 1)
                 for m in mantissas if span_lo <= m * 10 ** k <= span_hi]
        if len(ticks) >= least:
            return ticks
    return ticks


def log_axis(fig: go.Figure, values, *, axis: str = "x") -> go.Figure:
    """A log axis over `values` (all > 0) whose every tick label carries its magnitude ("200k", "1M")."""
    values = [v for v in values if v and v > 0]
    if not values:
        return fig
    ticks = log_ticks(min(values), max(values))
    update = dict(type="log", tickmode="array", tickvals=ticks, ticktext=[compact_number(t) for t in ticks],
                  range=[math.log10(min(values) / 1.25), math.log10(max(values) * 1.25)])
    (fig.update_xaxes if axis == "x" else fig.update_yaxes)(**update)
    return fig


def point_size(n_points: int) -> int:
    return SINGLE_POINT_SIZE if n_points == 1 else POINT_SIZE


def wrap_title(title: str, chars: int = TITLE_CHARS) -> tuple[str, int]:
    """(the title with "<br>" between lines of at most `chars` characters, broken at spaces; its lines)."""
    lines: list[str] = []
    for word in title.split():
        if lines and len(lines[-1]) + 1 + len(word) <= chars:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return "<br>".join(lines), len(lines)


def title_margin(lines: int) -> int:
    """px above the plot for a title of `lines` lines hung from the figure's top edge."""
    return 16 + TITLE_LINE * lines
