"""A run's record: what a checkpoint says about its run, read once into one typed, frozen object.

Every table row, figure, manifest entry, grid line and page reads a run through this record: its
`RunConfig` (rebuilt from the file), its per-epoch history, the dataset and where it came from, whether
it finished, the command that made it, and the values derived from them (final and best accuracy,
seconds per epoch, its label, its experiment). Nothing else re-derives them from the raw dict.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

from .config import RunConfig


@dataclass(frozen=True)
class RunRecord:
    config: RunConfig  # as the file recorded it (its downsampling is the one the run really used)
    history: tuple[dict, ...]  # one row per finished epoch: epoch, train/test loss and acc, seconds, ...
    dataset: dict  # Dataset.describe(): name, source, lossy, shape, classes, mean, std, sizes
    in_shape: tuple[int, int, int]
    num_classes: int
    complete: bool
    reason: str = ""
    command: str = ""
    device: str = ""  # where it trained ("cpu", "cuda"), as opposed to the config's "auto"
    params: int | None = None
    trainable_params: int | None = None
    weights_dtype: str = "float32"  # "float32", "float16" or "float16+int8" (checkpoints.compact_state)
    has_optimizer_state: bool = False  # continuing it is then exactly the run it would have been
    created: str = ""
    versions: dict = field(default_factory=dict)
    path: Path | None = None

    @classmethod
    def from_meta(cls, meta: dict, path: str | Path | None = None) -> "RunRecord":
        """The record of a checkpoint's metadata (`checkpoints.read_meta`, or a loaded file's)."""
        train = meta.get("train") if isinstance(meta.get("train"), dict) else {}
        config = RunConfig.from_record(train, arch=meta["arch"], dataset=meta["dataset"]["name"],
                                       downsample=meta.get("downsample"))
        return cls(config=config, history=tuple(meta.get("history") or ()), dataset=dict(meta["dataset"]),
                   in_shape=tuple(meta.get("in_shape") or ()), num_classes=int(meta.get("num_classes") or 0),
                   complete=bool(meta.get("complete", False)), reason=str(meta.get("reason", "")),
                   command=str(meta.get("command", "")), device=str(train.get("device", "")),
                   params=meta.get("params"), trainable_params=meta.get("trainable_params"),
                   weights_dtype=str(meta.get("weights_dtype", "float32")),
                   has_optimizer_state=bool(meta.get("has_optimizer_state")), created=str(meta.get("created", "")),
                   versions=dict(meta.get("versions") or {}), path=Path(path) if path else None)

    # ---- what the run is -------------------------------------------------------------------------

    @property
    def arch(self) -> str:
        return self.config.arch

    @property
    def downsample(self) -> str | None:
        return self.config.downsample

    @property
    def dataset_name(self) -> str:
        return self.dataset["name"]

    @property
    def seed(self) -> int:
        return self.config.seed

    @property
    def file(self) -> str:
        return self.path.name if self.path else ""

    @property
    def label(self) -> str:
        """"arch · downsample · dataset" (+ seed when not 0): the legend name of a run."""
        return self.base_label + (f" · seed {self.seed}" if self.seed else "")

    @property
    def base_label(self) -> str:
        """The label without the seed: the name of the run's seed group."""
        return " · ".join([self.arch] + ([self.downsample] if self.downsample else []) + [self.dataset_name])

    @property
    def trained_config(self) -> RunConfig:
        """The config with the epochs actually trained (fewer than asked for when stopped)."""
        return replace(self.config, epochs=self.epochs)

    @property
    def experiment(self) -> tuple:
        """Everything that shapes the result but the seed, with the epochs actually trained (a stopped
        run is not averaged with full ones)."""
        return self.trained_config.experiment()

    # ---- how it did ------------------------------------------------------------------------------

    @property
    def epochs(self) -> int:
        """Epochs finished (fewer than configured when stopped)."""
        return len(self.history)

    def curve(self, metric: str) -> list[float]:
        """`metric` per finished epoch (NaN where an epoch did not record it)."""
        return [float(row.get(metric, math.nan)) for row in self.history]

    @property
    def final_test_acc(self) -> float:
        return self.curve("test_acc")[-1] if self.history else math.nan

    @property
    def final_train_acc(self) -> float:
        return self.curve("train_acc")[-1] if self.history else math.nan

    @property
    def best_test_acc(self) -> float:
        return max(self.curve("test_acc"), default=math.nan)

    @property
    def best_epoch(self) -> int | None:
        """The epoch (1-based) of the best test accuracy, the first one on a tie."""
        test = self.curve("test_acc")
        return test.index(max(test)) + 1 if test and not math.isnan(max(test)) else None

    @property
    def seconds_per_epoch(self) -> float:
        """Mean training seconds per epoch (evaluation excluded), NaN when not recorded."""
        secs = [row["seconds"] for row in self.history if "seconds" in row]
        return sum(secs) / len(secs) if secs else math.nan

    def row(self) -> dict:
        """The run as one table row: every table (runs list, comparison, manifest, CLI) starts here."""
        return {"file": self.file, "label": self.label, "arch": self.arch, "downsample": self.downsample or "",
                "dataset": self.dataset_name, "seed": self.seed, "epochs": self.epochs,
                "test_acc": self.final_test_acc, "best_test_acc": self.best_test_acc,
                "best_epoch": self.best_epoch, "train_acc": self.final_train_acc, "params": self.params,
                "seconds_per_epoch": self.seconds_per_epoch, "complete": self.complete, "device": self.device,
                "precision": self.config.precision,
                "source": self.dataset.get("source", ""), "created": self.created,
                "path": str(self.path) if self.path else ""}
