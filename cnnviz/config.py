"""A training run's settings: one frozen record, the single definition of every training setting.

Each field carries its help text and how it appears on the command line, so the CLI's `train` and
`grid` options, the command recorded in every checkpoint, the table of a run and "the same experiment
except the seed" are all generated from this one list. A new setting is one field here (plus, where the
app should offer it, one widget on the Train form); `train()` reads it from the config it is given.
"""
from __future__ import annotations

import shlex
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path

from .downsample import list_downsamples
from .models import get_arch, list_archs, resolve_downsample
from .precision import PRECISIONS

OPTIMIZERS = ("adam", "sgd", "adamw")
# Settings that say where or how a run was stored or run, not what was trained: two runs that differ
# only in these (and the seed) are the same experiment, so their spread is what the seed alone does.
NOT_THE_EXPERIMENT = ("seed", "device", "half")


def _setting(default, help: str, *, shown: str = "always", choices=None):
    """A RunConfig field. `shown`: "always" in the recorded command, "changed" (only when not the
    default) or "choice" (only when the architecture offers more than one value); `choices`: the allowed
    values (a callable, read when the CLI is built)."""
    return field(default=default, metadata={"help": help, "shown": shown, "choices": choices})


@dataclass(frozen=True)
class RunConfig:
    arch: str = _setting(MISSING, "architecture", choices=list_archs)
    dataset: str = _setting("fashion-mnist", "fashion-mnist, cifar10, or a folder with train/<class>/ and "
                            "test/<class>/ images")
    downsample: str | None = _setting(None, "2x2 downsampling (default: the architecture's own)", shown="choice",
                                      choices=list_downsamples)
    epochs: int = _setting(10, "epochs to train")
    lr: float = _setting(1e-3, "learning rate: 1e-3 (default) or the lecture's 1e-5")
    optimizer: str = _setting("adam", "optimizer", shown="changed", choices=lambda: OPTIMIZERS)
    batch_size: int = _setting(1024, "images per optimizer step")
    seed: int = _setting(0, "seed of the initialisation and the shuffling")
    device: str = _setting("auto", "auto, cpu, cuda, mps", shown="changed")
    limit_train: int | None = _setting(None, "train on the first N training images only", shown="changed")
    half: bool = _setting(False, "store the weights compactly (float16; int8 per output channel for large layers)",
                          shown="changed")
    precision: str = _setting("auto", "fp32, bf16 (autocast, fp32 master weights) or auto: bf16 on CUDA, and on a CPU "
                              "with native bf16 where a probe measured it faster for this net", shown="changed",
                              choices=lambda: PRECISIONS)

    def resolved(self) -> "RunConfig":
        """The same config with the architecture's default downsampling filled in (and validated)."""
        if self.epochs < 1:
            raise ValueError("epochs must be at least 1")
        if self.batch_size < 1:
            raise ValueError("batch size must be at least 1")
        if not (0 < self.lr < 10):
            raise ValueError("learning rate must be between 0 and 10")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        return replace(self, downsample=resolve_downsample(self.arch, self.downsample))

    @classmethod
    def from_record(cls, train: dict, *, arch: str, dataset: str, downsample: str | None) -> "RunConfig":
        """The config a checkpoint was trained with, from its `train` record (unknown keys ignored, a
        setting added after the file was written takes its default). The file's `device` is where the
        run really trained (the record's `device`), not the setting asked for, so it is not read back. Its
        `precision` is the one really used; a file from before precision was a setting trained in bf16 on
        CUDA and in fp32 elsewhere."""
        known = {f.name for f in fields(cls)} - {"arch", "dataset", "downsample", "device"}
        kept = {k: v for k, v in train.items() if k in known}
        kept.setdefault("precision", "bf16" if str(train.get("device", "")).startswith("cuda") else "fp32")
        return cls(arch=arch, dataset=dataset, downsample=downsample, **kept)

    def as_recorded_by(self, trained: "RunConfig") -> "RunConfig":
        """This config as a run of it would record itself beside `trained`: "auto" precision becomes the one
        `trained` used (the machine picks it, so it does not make another run; an explicit one must match)."""
        return replace(self, precision=trained.precision) if self.precision == "auto" else self

    @property
    def name(self) -> str:
        """The checkpoint's file stem: "<dataset>-<arch>[-<downsample>][-s<seed>]"."""
        parts = [Path(self.dataset).name, self.arch] + ([self.downsample] if self.downsample else [])
        return "-".join(parts + ([f"s{self.seed}"] if self.seed else []))

    def experiment(self) -> tuple:
        """Everything that shapes the result except the seed: runs with equal keys form a seed group."""
        return tuple((k, v) for k, v in asdict(self).items() if k not in NOT_THE_EXPERIMENT)

    def differences(self, others: list["RunConfig"]) -> str:
        """The experiment settings of this config that differ from at least one of `others`, e.g.
        "lr 1e-05, 3 epochs": what tells two groups with the same net and dataset apart."""
        mine, parts = dict(self.experiment()), []
        for key, value in sorted(mine.items(), key=lambda kv: kv[0] == "epochs"):  # epochs last
            if any(dict(o.experiment()).get(key) != value for o in others):
                parts.append(_describe(key, value))
        return ", ".join(parts)

    def command(self, out: str | Path) -> str:
        """The `python -m cnnviz train` command that makes this run into `out` (recorded in the file).

        Settings shown "changed" appear only when not the default, and a downsampling the architecture
        offers no choice of (conv_stride) is left out, so the command reads as a person would type it."""
        args = ["python", "-m", "cnnviz", "train"]
        for f in fields(self):
            value, shown = getattr(self, f.name), f.metadata["shown"]
            if shown == "changed" and value == f.default or value is None:
                continue
            if shown == "choice" and len(get_arch(self.arch).downsamples) < 2:
                continue
            flag = "--" + f.name.replace("_", "-")
            args += [flag] if value is True else [flag, str(value)]
        return shlex.join(args + ["--out", str(out)])


def _describe(key: str, value) -> str:
    if key == "epochs":
        return f"{value} epoch" + ("" if value == 1 else "s")
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return f"{key.replace('_', ' ')} {text}"


def config_fields():
    """The RunConfig fields, in order, with their metadata (for building CLI options and forms)."""
    return fields(RunConfig)
