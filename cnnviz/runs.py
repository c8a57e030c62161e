"""A run = config -> data -> model -> train -> checkpoint. Used by the CLI, the UI's jobs and grids."""
from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from .checkpoints import default_run_name, make_meta, save_checkpoint, unique_path
from .data import DATASETS, load_dataset
from .models import build_model, get_arch, resolve_downsample
from .train import Progress, TrainResult, train


@dataclass(frozen=True)
class RunConfig:
    arch: str
    dataset: str = "fashion-mnist"
    downsample: str | None = None
    epochs: int = 10
    lr: float = 1e-3
    optimizer: str = "adam"
    batch_size: int = 1024
    device: str = "auto"
    seed: int = 0
    limit_train: int | None = None
    half: bool = False  # store weights as float16

    def resolved(self) -> "RunConfig":
        """The same config with the architecture's default downsampling filled in (and validated)."""
        from dataclasses import replace

        if self.epochs < 1:
            raise ValueError("epochs must be at least 1")
        if self.batch_size < 1:
            raise ValueError("batch size must be at least 1")
        if not (0 < self.lr < 10):
            raise ValueError("learning rate must be between 0 and 10")
        return replace(self, downsample=resolve_downsample(self.arch, self.downsample))

    @property
    def name(self) -> str:
        return default_run_name(self.arch, self.downsample, Path(self.dataset).name, self.seed)

    def command(self, out: str | Path) -> str:
        """The `python -m cnnviz train` command that makes this run into `out` (recorded in the file).

        Defaults (optimizer adam, device auto) and a downsampling the architecture offers no choice of
        (conv_stride) are left out, so the command reads as a person would type it; the shipped runs,
        grids and scripts/train_all.py all record commands made here."""
        args = ["python", "-m", "cnnviz", "train", "--arch", self.arch, "--dataset", self.dataset]
        if self.downsample and len(get_arch(self.arch).downsamples) > 1:
            args += ["--downsample", self.downsample]
        args += ["--epochs", str(self.epochs), "--lr", str(self.lr)]
        if self.optimizer != "adam":
            args += ["--optimizer", self.optimizer]
        args += ["--batch-size", str(self.batch_size), "--seed", str(self.seed)]
        if self.device != "auto":
            args += ["--device", self.device]
        if self.limit_train:
            args += ["--limit-train", str(self.limit_train)]
        if self.half:
            args.append("--half")
        return shlex.join(args + ["--out", str(out)])


def dataset_shape(dataset: str) -> tuple[int, int, int]:
    return DATASETS[dataset].shape if dataset in DATASETS else load_dataset(dataset).shape


def run_training(cfg: RunConfig, *, out: str | Path | None = None, folder: str | Path = "runs",
                 on_epoch: Callable[[dict], None] | None = None,
                 on_progress: Callable[[Progress], None] | None = None,
                 should_stop: Callable[[], bool] | None = None, command: str = "",
                 data=None) -> tuple[Path, TrainResult]:
    """Train `cfg` and write its checkpoint (also when stopped or failed: marked incomplete)."""
    cfg = cfg.resolved()
    data = data if data is not None else load_dataset(cfg.dataset)
    path = Path(out) if out else unique_path(folder, cfg.name)
    if path.exists():
        raise FileExistsError(f"{path} exists; choose another name")
    torch.manual_seed(cfg.seed)  # the initialisation: same seed, same starting weights
    model = build_model(cfg.arch, data.shape, len(data.classes), cfg.downsample)

    def callback(p: Progress):
        if on_progress:
            on_progress(p)
        if p.kind == "epoch" and on_epoch:
            on_epoch(p.row)

    result = train(model, data, epochs=cfg.epochs, lr=cfg.lr, optimizer=cfg.optimizer,
                   batch_size=cfg.batch_size, device=cfg.device, seed=cfg.seed, callback=callback,
                   should_stop=should_stop, limit_train=cfg.limit_train)
    meta = make_meta(arch=cfg.arch, downsample=cfg.downsample, dataset=data.describe(),
                     in_shape=data.shape, num_classes=len(data.classes),
                     train={**asdict(cfg), "device": result.device}, history=result.history,
                     complete=result.completed, reason=result.reason, model=model.cpu(), command=command)
    try:
        save_checkpoint(path, meta, model, half=cfg.half, snapshots=result.snapshots)
    except FileExistsError:
        if out:  # the caller named the file: never overwrite it
            raise
        # Another process took the name while we trained: keep this run under the next free name.
        path = unique_path(folder, cfg.name)
        save_checkpoint(path, meta, model, half=cfg.half, snapshots=result.snapshots)
    return path, result
