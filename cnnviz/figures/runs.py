"""Figures of training runs: curves per epoch, seed bands, accuracy against cost, confusion and bars.

A run that downsamples takes its method's colour from the downsampling registry, the same on every page.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ..downsample import get_downsample
from .style import CHART_WIDTH, TITLE_TOP, base_layout, integer_ticks, legend_below, log_axis, point_size, titled

NO_METHOD_COLOR = "#7f7f7f"  # nets that never downsample, and methods this version does not know
RUN_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
              "#bcbd22", "#17becf"]
METRIC_LABELS = {"test_acc": "test accuracy", "train_acc": "train accuracy", "test_loss": "test loss",
                 "train_loss": "train loss"}


def downsample_color(method: str | None) -> str:
    """The registered method's colour; grey for no method or one that is not registered."""
    try:
        return get_downsample(method).color if method else NO_METHOD_COLOR
    except ValueError:
        return NO_METHOD_COLOR


def run_color(i: int, downsample: str | None = None, by_downsample: bool = False) -> str:
    return downsample_color(downsample) if by_downsample else RUN_COLORS[i % len(RUN_COLORS)]


def curves_figure(runs: list[dict], metrics=("train_acc", "test_acc"), title: str = "",
                  mark_epoch: int | None = None, height: int = 380, xaxis: str = "epoch",
                  yaxis: str | None = None, x_step: int | None = None, width: int = CHART_WIDTH) -> go.Figure:
    """Overlay per-epoch curves of several runs on shared axes.

    `runs`: dicts with `label`, `history` (list of epoch rows) and `color`. Train curves are dashed,
    test curves solid, so one colour per run is enough. The "epoch" of a row can be any step (a shift
    in pixels): `xaxis` names it, `x_step` spaces its ticks; `yaxis` defaults to accuracy or loss. A legend
    entry names only what tells it apart (the run, the metric); what they all share is the subtitle (unless
    the title or the y axis says it already). `width`: the chart's expected width on screen, in pixels.
    """
    fig = go.Figure()
    names = [METRIC_LABELS.get(m, m) for m in metrics]
    shared = ([runs[0]["label"]] if len(runs) == 1 and len(metrics) > 1 else []) + (names if len(metrics) == 1 else [])
    for r in runs:
        epochs = [row["epoch"] for row in r["history"]]
        for m, metric in zip(metrics, names):
            shown = ([r["label"]] if len(runs) > 1 or len(metrics) == 1 else []) + ([metric] if len(metrics) > 1 else [])
            fig.add_trace(go.Scatter(
                x=epochs, y=[row[m] for row in r["history"]], mode="lines+markers",
                name=" · ".join(shown), legendgroup=r["label"], hovertext=f"{r['label']} ({metric})",
                marker=dict(size=point_size(len(epochs))),
                line=dict(color=r["color"], dash="dash" if m.startswith("train") else "solid")))
    if mark_epoch is not None:
        fig.add_vline(x=mark_epoch, line_dash="dot", line_color="black")
    if yaxis is None:
        yaxis = "accuracy" if all("acc" in m for m in metrics) else ("loss" if all("loss" in m for m in metrics) else "")
    subtitle = " · ".join(t for t in shared if t.lower() not in f"{title} {yaxis}".lower())
    fig.update_layout(title=titled(title, subtitle), xaxis_title=xaxis, yaxis_title=yaxis)
    integer_ticks(fig, [row["epoch"] for r in runs for row in r["history"]])
    if x_step is not None:
        fig.update_xaxes(tickmode="linear", dtick=x_step)
    return legend_below(fig, height, top=TITLE_TOP if subtitle else 40, width=width)


def band_figure(groups: list[dict], metric: str = "test_acc", title: str = "", height: int = 380) -> go.Figure:
    """Mean curve with a min-max band per group of seeds. `groups`: label, color, epochs, mean, lo, hi."""
    fig = go.Figure()
    for g in groups:
        x = list(g["epochs"])
        fig.add_trace(go.Scatter(x=x + x[::-1], y=list(g["hi"]) + list(g["lo"])[::-1], fill="toself",
                                 fillcolor=_rgba(g["color"], 0.18), line=dict(width=0), hoverinfo="skip",
                                 legendgroup=g["label"], showlegend=False))
        fig.add_trace(go.Scatter(x=x, y=list(g["mean"]), mode="lines+markers", legendgroup=g["label"],
                                 name=f"{g['label']} (mean of {g['n']} seeds)", line=dict(color=g["color"]),
                                 marker=dict(size=point_size(len(x)))))
    fig.update_layout(title=title, xaxis_title="epoch", yaxis_title=METRIC_LABELS.get(metric, metric))
    integer_ticks(fig, [e for g in groups for e in g["epochs"]])
    return legend_below(fig, height)


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    return f"rgba({int(h[0:2], 16)},{int(h[2:4], 16)},{int(h[4:6], 16)},{alpha})"


def confusion_figure(cm: np.ndarray, classes, title: str = "Confusion matrix (rows: true class)",
                     diverging: bool = False, height: int = 460) -> go.Figure:
    fig = go.Figure(go.Heatmap(z=cm, x=list(classes), y=list(classes), text=cm, texttemplate="%{text}",
                               colorscale="RdBu" if diverging else "Blues", zmid=0 if diverging else None,
                               hovertemplate="true %{y}, predicted %{x}: %{z}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", title="true")
    fig.update_xaxes(title="predicted")
    fig.update_layout(title=title)
    return base_layout(fig, height)


def bars_figure(labels, values, colors=None, title: str = "", yaxis: str = "", height: int = 320) -> go.Figure:
    fig = go.Figure(go.Bar(x=list(labels), y=list(values), marker_color=colors,
                           text=[f"{v:.3f}" for v in values], textposition="outside"))
    fig.update_layout(title=title, yaxis_title=yaxis)
    return base_layout(fig, height)


# ---- seed groups on shared axes, cost against accuracy --------------------------------------------

def group_curves_figure(groups: list[dict], metrics=("train_acc", "test_acc"), title: str = "",
                        height: int = 400) -> go.Figure:
    """Per-epoch curves of runs and groups of seeds on shared axes, one colour per entry.

    `groups`: dicts with `label`, `color`, `n` and, per metric, `{metric: {"epochs", "mean", "lo", "hi"}}`
    under `curves`. A group of several seeds is its mean line with a min-max band; a single run is a
    plain line. Train curves are dashed, test curves solid (like `curves_figure`).
    """
    fig = go.Figure()
    shared, names = split_labels([g["label"] for g in groups])
    for g, name in zip(groups, names):
        for m in metrics:
            c = g["curves"][m]
            x = [int(e) for e in c["epochs"]]
            if g["n"] > 1:
                fig.add_trace(go.Scatter(x=x + x[::-1], y=list(c["hi"]) + list(c["lo"])[::-1], fill="toself",
                                         fillcolor=_rgba(g["color"], 0.15), line=dict(width=0), hoverinfo="skip",
                                         legendgroup=g["label"], showlegend=False))
            seeds = f", {g['n']} seeds" if g["n"] > 1 else ""
            fig.add_trace(go.Scatter(x=x, y=list(c["mean"]), mode="lines+markers", legendgroup=g["label"],
                                     name=f"{name} ({m.split('_')[0]}{seeds})", hovertext=g["label"],
                                     marker=dict(size=point_size(len(x))),
                                     line=dict(color=g["color"], dash="dash" if m.startswith("train") else "solid")))
    ylabel = "accuracy" if all("acc" in m for m in metrics) else ("loss" if all("loss" in m for m in metrics) else "")
    bands = " · lines: mean over seeds, bands: min–max" if any(g["n"] > 1 for g in groups) else ""
    fig.update_layout(title=titled(title, (shared or "") + bands), xaxis_title="epoch",
                      yaxis_title=ylabel)
    integer_ticks(fig, [e for g in groups for m in metrics for e in g["curves"][m]["epochs"]])
    return legend_below(fig, height, top=TITLE_TOP)


def split_labels(labels: list[str], sep: str = " · ") -> tuple[str, list[str]]:
    """("what every label says", [what each says besides]) for labels like "arch · max · dataset", so a
    legend of 18 runs reads "max", "avg"... under one subtitle "downsample_compare · fashion-mnist"."""
    parts = [label.split(sep) for label in labels]
    common = [t for t in parts[0] if all(t in p for p in parts)] if len(labels) > 1 else []
    rest = [sep.join(t for t in p if t not in common) for p in parts]
    if not all(rest) or len(set(rest)) < len(set(labels)):  # nothing left, or two runs would look alike
        return "", list(labels)
    return sep.join(common), rest


def cost_scatter_figure(points: list[dict], xaxis: str, title: str = "", height: int = 380,
                        log_x: bool = True) -> go.Figure:
    """Final test accuracy against a cost (`x`), one colour and one legend entry per series of runs.

    `points`: dicts with `x`, `y`, `label` and optionally `color` (the run's colour on the page's other
    charts; default: its downsampling method's, `downsample_color`). Runs of one colour are one series (a
    group of seeds), named by what their labels share; what every series shares goes into the subtitle.
    """
    fig = go.Figure()
    series: dict = {}
    for p in points:
        series.setdefault(p.get("color") or downsample_color(p.get("downsample")), []).append(p)
    names = [_shared_name([p["label"] for p in pts]) for pts in series.values()]
    shared, short = split_labels(names) if len(names) > 1 else ("", names)
    for (color, pts), name in zip(series.items(), short):
        fig.add_trace(go.Scatter(
            x=[p["x"] for p in pts], y=[p["y"] for p in pts], mode="markers", name=name,
            text=[p["label"] for p in pts], marker=dict(size=11, color=color, line=dict(color="white", width=1)),
            hovertemplate="%{text}<br>" + xaxis + ": %{x:,}<br>test accuracy: %{y:.2%}<extra></extra>"))
    fig.update_xaxes(title=xaxis)
    if log_x:
        log_axis(fig, [p["x"] for p in points])
    fig.update_yaxes(tickformat=".1%")
    fig.update_layout(title=titled(title, shared), yaxis_title="final test accuracy")
    return legend_below(fig, height, top=TITLE_TOP if shared else 40)


def _shared_name(labels: list[str], sep: str = " · ") -> str:
    """What the labels of one series all say ("lenet5 · max · cifar10" for its seeds 0, 1, 2)."""
    parts = [label.split(sep) for label in labels]
    return sep.join(t for t in parts[0] if all(t in p for p in parts)) or labels[0]
