"""What training the lecture's net once per downsampling method gave: one row per method, and the twins.

Twins are method pairs that compute the same network on the even 24x24 map (bilinear x0.5 with
align_corners=False averages each 2x2 block like average pooling; nearest x0.5 keeps the pixels a stride-2
conv reads), so with the same seed their curves differ only by floating-point rounding.
"""
from __future__ import annotations

import numpy as np

from . import results
from .record import RunRecord

TWINS = (("avg", "bilinear"), ("nearest", "stride"))


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


def twin_gaps(records: list[RunRecord]) -> list[tuple[str, str, float]]:
    """(a, b, largest gap in test accuracy over the epochs both ran) for each twin pair with both seed-0 runs."""
    seed0, out = seed0_by_method(records), []
    for a, b in TWINS:
        if a in seed0 and b in seed0:
            acc_a, acc_b = np.array(seed0[a].curve("test_acc")), np.array(seed0[b].curve("test_acc"))
            e = min(len(acc_a), len(acc_b))
            out.append((a, b, float(np.abs(acc_a[:e] - acc_b[:e]).max())))
    return out
