"""A run = config -> data -> model -> train -> checkpoint. Used by the CLI, the UI's jobs and grids."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch

from .checkpoints import make_meta, save_checkpoint
from .config import RunConfig
from .data import DATASETS, load_dataset
from .models import build_model
from .storage import unique_path
from .train import Progress, TrainResult, train


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

    result = train(model, data, cfg, callback=callback, should_stop=should_stop)
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
