"""What training the lecture's net once per downsampling method gave: one row per method, and the twins.

Twins are method pairs that compute the same network on an even map (24x24 on Fashion-MNIST) (bilinear x0.5 with
align_corners=False averages each 2x2 block like average pooling; nearest x0.5 keeps the pixels a stride-2
conv reads), so with the same seed their curves differ only by floating-point rounding.
"""
from __future__ import annotations

import numpy as np

from . import results
from .conv_arithmetic import conv_output_size
from .downsample import downsample_label, get_downsample, twin_pairs, twin_reason
from .models import build_model, first_conv
from .record import RunRecord

TWINS = twin_pairs()  # (("avg", "bilinear"), ("nearest", "stride")): the same numbers on even sizes


def seed0_by_method(records: list[RunRecord]) -> dict[str, RunRecord]:
    """downsample method -> its seed-0 run."""
    return {r.downsample: r for r in records if r.seed == 0}


def method_rows(records: list[RunRecord], order: list[str], labels: dict[str, str]) -> list[dict]:
    """Per method in `order`: seeds present, mean final test accuracy (± sample std), mean best test accuracy,
    parameters, mean seconds per epoch and device, over the runs that differ from its seed-0 run only by seed."""
    seed0, groups, rows = seed0_by_method(records), results.seed_groups(records), []
    for m in order:
        g = next(g for g in groups if any(x is seed0[m] for x in g.records))  # the seed-0 run's group
        rows.append({"method": labels[m], "seeds": g.n,
                     "final test acc": g.mean, "± std (seeds)": g.std if g.n > 1 else None,
                     "best test acc": float(np.mean([x.best_test_acc for x in g.records])),
                     "params": seed0[m].params,
                     "seconds/epoch": float(np.nanmean([x.seconds_per_epoch for x in g.records])),
                     "device": seed0[m].device})
    return rows


def default_run(rows: dict[str, dict]) -> str | None:
    """Of the runs (id -> runs-table row), the shipped downsample_compare net to show first: the downsampling
    group's max pooling at seed 0 (not the lecture's lr 1e-5 twin nor a bf16 seed), else any shipped
    downsample_compare run, else None."""
    from .shipped import find_run

    candidates = [k for k, r in rows.items() if r["origin"] == "shipped" and r["arch"] == "downsample_compare"]
    planned = {find_run("downsample_compare", rows[k]["dataset"], "max") for k in candidates}
    planned_files = {r.filename for r in planned if r is not None}
    return next((k for k in candidates if rows[k]["file"] in planned_files), candidates[0] if candidates else None)


def seed_bands(records: list[RunRecord], order: list[str]) -> tuple[list[dict], list[results.Group]]:
    """(band series for `figures.band_figure`, their groups): test accuracy over the seeds of each method in
    `order` that has more than one seed, in that order."""
    multi = [g for g in results.seed_groups(records) if g.n > 1 and g.first.downsample in order]
    bands = []
    for g in sorted(multi, key=lambda g: order.index(g.first.downsample)):
        c, m = g.curve("test_acc"), g.first.downsample
        bands.append({"label": downsample_label(m), "color": get_downsample(m).color, "epochs": c.epochs.tolist(),
                      "mean": c.mean.tolist(), "lo": c.lo.tolist(), "hi": c.hi.tolist(), "n": c.n})
    return bands, multi


def twins_sentence(records: list[RunRecord]) -> str | None:
    """The twin pairs' largest gaps and why they are twins, or None when no pair has both seed-0 runs."""
    gaps = [f"{get_downsample(a).short} and {get_downsample(b).short} differ by at most {100 * gap:.2f} points of "
            "test accuracy over the epochs" for a, b, gap in twin_gaps(records)]
    if not gaps:
        return None
    h = downsampled_size(records[0])
    why = "; ".join(twin_reason(a, b) for a, b, _ in twin_gaps(records))
    return ("Twins: " + "; ".join(gaps) + f". On the even {h}x{h} map {why}; so with the same seed these pairs "
            "train the same network up to floating-point rounding.")


def downsampled_size(record: RunRecord) -> int:
    """The side of the map the net's first downsampling halves: its first conv's output, by the lecture's
    formula (Fashion-MNIST 28 -> 24 for downsample_compare's 5x5 conv, CIFAR-10 32 -> 28)."""
    conv = first_conv(build_model(record.arch, record.in_shape, record.num_classes, record.downsample))[1]
    return conv_output_size(record.in_shape[-1], conv.kernel_size[0], conv.padding[0], conv.stride[0],
                            conv.dilation[0])


def twin_gaps(records: list[RunRecord]) -> list[tuple[str, str, float]]:
    """(a, b, largest gap in test accuracy over the epochs both ran) for each twin pair with both seed-0 runs."""
    seed0, out = seed0_by_method(records), []
    for a, b in TWINS:
        if a in seed0 and b in seed0:
            acc_a, acc_b = np.array(seed0[a].curve("test_acc")), np.array(seed0[b].curve("test_acc"))
            e = min(len(acc_a), len(acc_b))
            out.append((a, b, float(np.abs(acc_a[:e] - acc_b[:e]).max())))
    return out
