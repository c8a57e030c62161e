"""Comparing runs: one table row per run, groups of runs that differ only by seed, and their statistics.

A run is its `RunRecord` (`checkpoints.read_record`, or `Checkpoint.record`). Two runs belong to the
same group when their records' `experiment` is equal (everything that shapes the result but the seed),
so the spread inside a group is what the seed alone does, and a gap between groups can be weighed
against it (`compare_sentence`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .record import RunRecord

METRICS = ("train_acc", "test_acc", "train_loss", "test_loss")


def run_table(records: list[RunRecord], origins: list[str] | None = None):
    """A DataFrame with one row per run (`RunRecord.row`), in the order given, with where each came from."""
    import pandas as pd

    origins = origins or [""] * len(records)
    return pd.DataFrame([{**r.row(), "origin": o} for r, o in zip(records, origins)])


EXPORT_COLUMNS = ["run", "final_test_acc", "best_test_acc", "best_epoch", "params", "seconds_per_epoch", "epochs",
                  "complete", "seed", "device", "precision", "source", "file"]


def export_table(records: list[RunRecord], origins: list[str], labels: list[str], files: list[str]):
    """The comparison's table as exported: one row per run named `labels`, in `EXPORT_COLUMNS`; "source" says
    where the run came from (shipped, yours, uploaded), not the dataset's source; `files` (an upload's record
    has no path: its file name)."""
    table = run_table(records, origins=origins).assign(label=labels, file=files)
    return table.drop(columns="source").rename(columns={"label": "run", "test_acc": "final_test_acc",
                                                        "origin": "source"})[EXPORT_COLUMNS]


def single_groups(records: list[RunRecord], labels: list[str]) -> list["Group"]:
    """One group per run that has a finished epoch (the comparison with seeds not grouped)."""
    return [Group((i,), lab, (rec,), (i,)) for i, (lab, rec) in enumerate(zip(labels, records)) if rec.history]


# ---- groups of seeds -------------------------------------------------------------------------

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
    """Runs that differ only by seed, in the order they were given."""
    key: tuple
    label: str
    records: tuple[RunRecord, ...]
    members: tuple[int, ...]  # positions of the runs in the list given to `seed_groups`

    @property
    def n(self) -> int:
        return len(self.records)

    @property
    def first(self) -> RunRecord:
        return self.records[0]

    @property
    def seeds(self) -> list[int]:
        return [r.seed for r in self.records]

    @property
    def finals(self) -> np.ndarray:
        """(n,) final test accuracy of each run."""
        return np.array([r.final_test_acc for r in self.records], dtype=float)

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
        e = min(r.epochs for r in self.records)
        values = np.array([r.curve(metric)[:e] for r in self.records], dtype=float)  # (n, E)
        std = values.std(axis=0, ddof=1) if self.n > 1 else np.full(e, np.nan)
        return Curve(np.arange(1, e + 1), values.mean(0), values.min(0), values.max(0), std, self.n)


def run_labels(records: list[RunRecord]) -> list[str]:
    """Each run's legend name: its label, plus the settings that tell it from the other runs of the same
    net, downsampling and dataset that are another experiment (e.g. "· lr 1e-05" beside "· lr 0.001")."""
    out = []
    for r in records:
        others = [o.trained_config for o in records if o.base_label == r.base_label and o.experiment != r.experiment]
        extra = r.trained_config.differences(others) if others else ""
        out.append(r.label + (f" · {extra}" if extra else ""))
    return out


def seed_groups(records: list[RunRecord]) -> list[Group]:
    """Group runs that differ only by seed, in order of first appearance; runs without any epoch are left out.

    Two groups that would share a label (same arch, downsampling and dataset but another learning rate,
    optimiser, batch size, subset or number of epochs) get the differing settings appended to it.
    """
    keys: dict[tuple, list[int]] = {}
    for i, r in enumerate(records):
        if r.history:
            keys.setdefault(r.experiment, []).append(i)
    firsts = {k: records[idx[0]] for k, idx in keys.items()}
    labels = {}
    for k, first in firsts.items():
        clashes = [o for o, other in firsts.items() if other.base_label == first.base_label and o != k]
        others = [firsts[o].trained_config for o in clashes]
        labels[k] = first.base_label + (" · " + first.trained_config.differences(others)
                                        if clashes else "")
    return [Group(k, labels[k], tuple(records[i] for i in idx), tuple(idx)) for k, idx in keys.items()]


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


def sentences_by_dataset(groups: list[Group]) -> list[tuple[str, str]]:
    """(dataset, `compare_sentence` of its groups) for each dataset with more than one group, in order of
    first appearance: groups are compared only with groups on the same test set."""
    out = []
    for ds in dict.fromkeys(g.first.dataset_name for g in groups):
        on_ds = [g for g in groups if g.first.dataset_name == ds]
        if len(on_ds) > 1:
            out.append((ds, compare_sentence(on_ds)))
    return out


def _mean_text(g: Group) -> str:
    return f"{100 * g.mean:.2f} %, mean of {g.n} seeds" if g.n > 1 else f"{100 * g.mean:.2f} %, one run"



# ---- what a run will cost, before it starts ---------------------------------------------------

@dataclass(frozen=True)
class Estimate:
    seconds: float  # training + evaluation of every epoch
    basis: RunRecord  # the finished run it was scaled from


def expected_seconds(cfg, records: list[RunRecord]) -> Estimate | None:
    """How long `cfg` (resolved) will take, scaled from the most similar finished run of the same net on the
    same dataset: seconds per training image and evaluation seconds per epoch, measured, times this run's
    images and epochs. Same downsampling, batch size, precision and learning rate are preferred, in that order."""
    same_net = [r for r in records if r.arch == cfg.arch and r.dataset_name == cfg.dataset and r.history
                and all("seconds" in row and "images_per_second" in row for row in r.history)]
    if not same_net:
        return None
    # Last, between equals: this config's own file name (not a -bf16 or -lr1e-5 twin); "auto" matches no precision.
    basis = max(same_net, key=lambda r: (r.downsample == cfg.downsample, r.config.batch_size == cfg.batch_size,
                                         r.config.precision == cfg.precision, r.config.lr == cfg.lr,
                                         r.seed == cfg.seed, r.file == f"{cfg.name}.pt"))
    per_image = sum(row["seconds"] for row in basis.history) / sum(row["seconds"] * row["images_per_second"]
                                                                   for row in basis.history)
    evaluation = float(np.mean([row.get("eval_seconds", 0.0) for row in basis.history]))
    full = int(basis.dataset.get("train_size") or 0) or round(basis.history[0]["seconds"] * basis.history[0]["images_per_second"])
    images = min(full, cfg.limit_train or full)
    images = images // cfg.batch_size * cfg.batch_size or images  # the loop drops the last partial batch
    return Estimate(cfg.epochs * (images * per_image + evaluation), basis)


def duration_text(seconds: float) -> str:
    """"about 40 s", "about 12 min", "about 2.5 h": the one way durations read on every page."""
    if seconds < 90:
        return f"about {seconds:.0f} s"
    if seconds < 90 * 60:
        return f"about {seconds / 60:.0f} min"
    return f"about {seconds / 3600:.1f} h"
