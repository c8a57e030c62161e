"""Figures of training runs: curves per epoch, seed bands, accuracy against cost, confusion and bars.

A run that downsamples takes its method's colour from the downsampling registry, the same on every page.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ..downsample import get_downsample

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
                  yaxis: str | None = None, x_step: int | None = None) -> go.Figure:
    """Overlay per-epoch curves of several runs on shared axes.

    `runs`: dicts with `label`, `history` (list of epoch rows) and `color`. Train curves are dashed,
    test curves solid, so one colour per run is enough. The "epoch" of a row can be any step (a shift
    in pixels): `xaxis` names it, `x_step` spaces its ticks; `yaxis` defaults to accuracy or loss.
    """
    fig = go.Figure()
    for r in runs:
        epochs = [row["epoch"] for row in r["history"]]
        for m in metrics:
            fig.add_trace(go.Scatter(
                x=epochs, y=[row[m] for row in r["history"]], mode="lines+markers",
                name=f"{r['label']} ({METRIC_LABELS.get(m, m)})", legendgroup=r["label"],
                line=dict(color=r["color"], dash="dash" if m.startswith("train") else "solid")))
    if mark_epoch is not None:
        fig.add_vline(x=mark_epoch, line_dash="dot", line_color="black")
    if yaxis is None:
        yaxis = "accuracy" if all("acc" in m for m in metrics) else ("loss" if all("loss" in m for m in metrics) else "")
    fig.update_layout(title=title, xaxis_title=xaxis, yaxis_title=yaxis, height=height,
                      legend=dict(orientation="h", y=-0.25), margin=dict(l=10, r=10, t=40, b=10))
    if x_step is not None:
        fig.update_xaxes(dtick=x_step)
    return fig


def band_figure(groups: list[dict], metric: str = "test_acc", title: str = "", height: int = 380) -> go.Figure:
    """Mean curve with a min-max band per group of seeds. `groups`: label, color, epochs, mean, lo, hi."""
    fig = go.Figure()
    for g in groups:
        x = list(g["epochs"])
        fig.add_trace(go.Scatter(x=x + x[::-1], y=list(g["hi"]) + list(g["lo"])[::-1], fill="toself",
                                 fillcolor=_rgba(g["color"], 0.18), line=dict(width=0), hoverinfo="skip",
                                 legendgroup=g["label"], showlegend=False))
        fig.add_trace(go.Scatter(x=x, y=list(g["mean"]), mode="lines+markers", legendgroup=g["label"],
                                 name=f"{g['label']} (mean of {g['n']} seeds)", line=dict(color=g["color"])))
    fig.update_layout(title=title, xaxis_title="epoch", yaxis_title=METRIC_LABELS.get(metric, metric),
                      height=height, legend=dict(orientation="h", y=-0.25), margin=dict(l=10, r=10, t=40, b=10))
    return fig


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
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def bars_figure(labels, values, colors=None, title: str = "", yaxis: str = "", height: int = 320) -> go.Figure:
    fig = go.Figure(go.Bar(x=list(labels), y=list(values), marker_color=colors,
                           text=[f"{v:.3f}" for v in values], textposition="outside"))
    fig.update_layout(title=title, yaxis_title=yaxis, height=height, margin=dict(l=10, r=10, t=40, b=10))
    return fig


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
                                     line=dict(color=g["color"], dash="dash" if m.startswith("train") else "solid")))
    ylabel = "accuracy" if all("acc" in m for m in metrics) else ("loss" if all("loss" in m for m in metrics) else "")
    bands = " · lines: mean over seeds, bands: min–max" if any(g["n"] > 1 for g in groups) else ""
    fig.update_layout(title=dict(text=title, subtitle=dict(text=(shared or "") + bands)), xaxis_title="epoch",
                      yaxis_title=ylabel, height=height, legend=dict(orientation="h", y=-0.25),
                      margin=dict(l=10, r=10, t=60, b=10))
    return fig


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
    """Final test accuracy against a cost (`x`), one colour per downsampling method (`downsample_color`).

    `points`: dicts with `x`, `y`, `label` and `downsample` (None or "" for nets that never downsample).
    """
    fig = go.Figure()
    by_method: dict = {}
    for p in points:
        by_method.setdefault(p.get("downsample") or "", []).append(p)
    for method, pts in by_method.items():
        fig.add_trace(go.Scatter(
            x=[p["x"] for p in pts], y=[p["y"] for p in pts], mode="markers", name=method or "no downsampling",
            text=[p["label"] for p in pts], marker=dict(size=11, color=downsample_color(method)),
            hovertemplate="%{text}<br>" + xaxis + ": %{x:,}<br>test accuracy: %{y:.4f}<extra></extra>"))
    fig.update_xaxes(type="log" if log_x else "linear", title=xaxis)
    fig.update_layout(title=title, yaxis_title="final test accuracy", height=height,
                      legend=dict(title="downsampling"), margin=dict(l=10, r=10, t=40, b=10))
    return fig
