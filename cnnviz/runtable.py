"""Comparing runs: one table row per run, groups of runs that differ only by seed, and their statistics.

A run is described by its checkpoint metadata (`checkpoints.read_meta`, or `Checkpoint.meta`): the
history rows written by `train.train` (epoch, train_loss, train_acc, test_loss, test_acc, seconds) and
the training config under `train`. Two runs belong to the same group when everything that shapes the
result but the seed is equal, so the spread inside a group is what the seed alone does, and a gap
between groups can be weighed against it (`compare_sentence`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .checkpoints import run_label

METRICS = ("train_acc", "test_acc", "train_loss", "test_loss")
# The training choices that make two runs different experiments (the seed is deliberately absent).
# `epochs` is the number of epochs actually trained, so a stopped run is not averaged with full ones.
CONFIG_FIELDS = ("lr", "optimizer", "batch_size", "limit_train")


def final_metrics(meta: dict) -> dict:
    """Final and best test accuracy of one run, from its history (NaN when it has no epoch)."""
    h = meta.get("history") or []
    test = [row["test_acc"] for row in h]
    return {"final_test_acc": test[-1] if test else float("nan"),
            "best_test_acc": max(test) if test else float("nan"),
            "best_epoch": (int(np.argmax(test)) + 1) if test else None,
            "final_train_acc": h[-1]["train_acc"] if h else float("nan")}


def seconds_per_epoch(meta: dict) -> float:
    """Mean training seconds per epoch (evaluation excluded), NaN when not recorded."""
    secs = [row["seconds"] for row in meta.get("history") or [] if "seconds" in row]
    return float(np.mean(secs)) if secs else float("nan")


def run_row(meta: dict, source: str = "", file: str = "") -> dict:
    """One row of the comparison table."""
    train = meta.get("train", {})
    return {"run": run_label(meta), "file": file, **final_metrics(meta), "params": meta.get("params"),
            "seconds_per_epoch": seconds_per_epoch(meta), "epochs": len(meta.get("history") or []),
            "complete": bool(meta.get("complete", False)), "seed": train.get("seed", 0),
            "device": train.get("device", ""), "source": source}


def run_table(metas: list[dict], sources: list[str] | None = None, files: list[str] | None = None):
    """A DataFrame with one row per run, in the order given."""
    import pandas as pd

    sources = sources or [""] * len(metas)
    files = files or [""] * len(metas)
    return pd.DataFrame([run_row(m, s, f) for m, s, f in zip(metas, sources, files)])


# ---- groups of seeds -------------------------------------------------------------------------

def group_key(meta: dict) -> tuple:
    """Everything that defines the experiment except the seed (and where or how it was stored)."""
    train = meta.get("train", {})
    return (meta["arch"], meta.get("downsample") or "", meta["dataset"]["name"],
            len(meta.get("history") or []), *(train.get(f) for f in CONFIG_FIELDS))


def _base_label(meta: dict) -> str:
    # run_label names the seed only when it is not 0: give it seed 0 to get the label without it.
    return run_label({**meta, "train": {**meta.get("train", {}), "seed": 0}})


@dataclass(frozen=True)
class Curve:
    """One metric of a group per epoch: mean, min, max and sample std across its runs."""
    epochs: np.ndarray  # (E,) 1..E, the epochs every run of the group reached
    mean: np.ndarray  # (E,)
    lo: np.ndarray
    hi: np.ndarray
    std: np.ndarray  # ddof=1; NaN for a group of one run (a single run has no spread)
    n: int


@dataclass(frozen=True)
class Group:
    """Runs that differ only by seed. `metas` in the order they were given."""
    key: tuple
    label: str
    metas: tuple[dict, ...]
    members: tuple[int, ...]  # positions of the runs in the list given to `group_runs`

    @property
    def n(self) -> int:
        return len(self.metas)

    @property
    def seeds(self) -> list[int]:
        return [m.get("train", {}).get("seed", 0) for m in self.metas]

    @property
    def finals(self) -> np.ndarray:
        """(n,) final test accuracy of each run."""
        return np.array([final_metrics(m)["final_test_acc"] for m in self.metas], dtype=float)

    @property
    def mean(self) -> float:
        return float(self.finals.mean())

    @property
    def std(self) -> float:
        """Sample standard deviation (ddof=1) of the final test accuracy; NaN for one run."""
        return float(self.finals.std(ddof=1)) if self.n > 1 else float("nan")

    @property
    def spread(self) -> float:
        """max - min of the final test accuracy across seeds (0 for one run)."""
        return float(self.finals.max() - self.finals.min())

    def curve(self, metric: str = "test_acc") -> Curve:
        """Per-epoch statistics of `metric` over the epochs all runs reached."""
        e = min(len(m["history"]) for m in self.metas)
        values = np.array([[row[metric] for row in m["history"][:e]] for m in self.metas], dtype=float)  # (n, E)
        std = values.std(axis=0, ddof=1) if self.n > 1 else np.full(e, np.nan)
        return Curve(np.arange(1, e + 1), values.mean(0), values.min(0), values.max(0), std, self.n)


def group_runs(metas: list[dict]) -> list[Group]:
    """Group runs that differ only by seed, in order of first appearance; runs without any epoch are left out.

    Two groups that would share a label (same arch, downsampling and dataset but another learning rate,
    optimiser, batch size, subset or number of epochs) get the differing settings appended to it.
    """
    keys: dict[tuple, list[int]] = {}
    for i, m in enumerate(metas):
        if m.get("history"):
            keys.setdefault(group_key(m), []).append(i)
    base = {k: _base_label(metas[idx[0]]) for k, idx in keys.items()}
    labels = {}
    for k, label in base.items():
        clashes = [o for o, lab in base.items() if lab == label and o != k]
        labels[k] = label + (" · " + _difference(metas[keys[k][0]], [metas[keys[o][0]] for o in clashes])
                             if clashes else "")
    return [Group(k, labels[k], tuple(metas[i] for i in idx), tuple(idx)) for k, idx in keys.items()]


def _difference(meta: dict, others: list[dict]) -> str:
    """The settings of `meta` that differ from at least one of `others`, e.g. "lr 1e-05, 3 epochs"."""
    parts = []
    train = meta.get("train", {})
    for f in CONFIG_FIELDS:
        if any(o.get("train", {}).get(f) != train.get(f) for o in others):
            value = train.get(f)
            parts.append(f"{f.replace('_', ' ')} {value:g}" if isinstance(value, float) else f"{f.replace('_', ' ')} {value}")
    e = len(meta.get("history") or [])
    if any(len(o.get("history") or []) != e for o in others):
        parts.append(f"{e} epoch" + ("" if e == 1 else "s"))
    return ", ".join(parts)


def group_table(groups: list[Group]):
    """One row per group: runs, seeds, mean ± std, min and max of the final test accuracy."""
    import pandas as pd

    rows = []
    for g in groups:
        finals = g.finals
        rows.append({"group": g.label, "runs": g.n, "seeds": ", ".join(map(str, g.seeds)),
                     "mean_final_test_acc": g.mean, "std_final_test_acc": g.std,
                     "min_final_test_acc": float(finals.min()), "max_final_test_acc": float(finals.max()),
                     "mean ± std": (f"{100 * g.mean:.2f} ± {100 * g.std:.2f} %" if g.n > 1
                                    else f"{100 * g.mean:.2f} % (one run)")})
    return pd.DataFrame(rows)


def ranked(groups: list[Group]) -> list[Group]:
    """Groups from the best mean final test accuracy down."""
    return sorted(groups, key=lambda g: g.mean, reverse=True)


def compare_sentence(groups: list[Group]) -> str:
    """One sentence, computed from the numbers: is the gap between the two best groups larger than
    the spread between their seeds (the largest max - min range of final test accuracy)?"""
    if len(groups) < 2:
        return "Select runs of at least two different configurations to compare them."
    a, b = ranked(groups)[:2]
    gap = 100 * (a.mean - b.mean)
    head = (f"{a.label} ({_mean_text(a)}) is ahead of {b.label} ({_mean_text(b)}) by {gap:.2f} points "
            f"of final test accuracy")
    single = [g.label for g in (a, b) if g.n < 2]
    if single:
        return (f"{head}, but {' and '.join(single)} {'has' if len(single) == 1 else 'have'} a single seed, "
                f"so the seed spread is unknown: train more seeds to tell whether the gap is real.")
    spread = 100 * max(a.spread, b.spread)
    if gap > spread:
        return (f"{head}, more than their seed spread (the widest min–max range across seeds is "
                f"{spread:.2f} points): the difference is larger than what the seed alone does.")
    return (f"{head}, which is not more than their seed spread (the widest min–max range across seeds "
            f"is {spread:.2f} points): with these seeds the difference is within seed-to-seed noise.")


def _mean_text(g: Group) -> str:
    return f"{100 * g.mean:.2f} %, mean of {g.n} seeds" if g.n > 1 else f"{100 * g.mean:.2f} %, one run"


# ---- images for galleries ----------------------------------------------------------------------

def test_images(data, indices) -> list[np.ndarray]:
    """Test images at `indices` as uint8 arrays ready for `st.image`: (H, W) gray or (H, W, 3) colour."""
    x = data.test_x[np.asarray(indices, dtype=np.int64)].numpy()  # (N, C, H, W) uint8
    return [img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0) for img in x]
