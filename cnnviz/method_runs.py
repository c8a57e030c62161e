"""What training the lecture's net once per downsampling method gave: one row per method, and the twins.

Twins are method pairs that compute the same network on the even 24x24 map (bilinear x0.5 with
align_corners=False averages each 2x2 block like average pooling; nearest x0.5 keeps the pixels a stride-2
conv reads), so with the same seed their curves differ only by floating-point rounding.
"""
from __future__ import annotations

import numpy as np

from . import runtable

TWINS = (("avg", "bilinear"), ("nearest", "stride"))


def seed0_by_method(metas: list[dict]) -> dict[str, dict]:
    """downsample method -> the metadata of its seed-0 run."""
    return {m["downsample"]: m for m in metas if m.get("train", {}).get("seed", 0) == 0}


def method_rows(metas: list[dict], order: list[str], labels: dict[str, str]) -> list[dict]:
    """Per method in `order`: seeds present, mean final test accuracy (± sample std), mean best test accuracy,
    parameters, mean seconds per epoch and device, over the runs that differ from its seed-0 run only by seed."""
    seed0, groups, rows = seed0_by_method(metas), runtable.group_runs(metas), []
    for m in order:
        g = next(g for g in groups if any(x is seed0[m] for x in g.metas))  # the seed-0 run's group
        rows.append({"method": labels[m], "seeds": g.n,
                     "final test acc": g.mean, "± std (seeds)": g.std if g.n > 1 else None,
                     "best test acc": float(np.mean([runtable.final_metrics(x)["best_test_acc"] for x in g.metas])),
                     "params": seed0[m].get("params"),
                     "seconds/epoch": float(np.nanmean([runtable.seconds_per_epoch(x) for x in g.metas])),
                     "device": seed0[m].get("train", {}).get("device", "")})
    return rows


def twin_gaps(metas: list[dict]) -> list[tuple[str, str, float]]:
    """(a, b, largest gap in test accuracy over the epochs both ran) for each twin pair with both seed-0 runs."""
    seed0, out = seed0_by_method(metas), []
    for a, b in TWINS:
        if a in seed0 and b in seed0:
            acc_a = np.array([r["test_acc"] for r in seed0[a]["history"]])
            acc_b = np.array([r["test_acc"] for r in seed0[b]["history"]])
            e = min(len(acc_a), len(acc_b))
            out.append((a, b, float(np.abs(acc_a[:e] - acc_b[:e]).max())))
    return out
