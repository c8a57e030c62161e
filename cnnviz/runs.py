"""A run = config -> data -> model -> train -> checkpoint. Used by the CLI, the UI's jobs and grids."""
from __future__ import annotations

import copy
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch

from .checkpoints import Checkpoint, make_meta, save_checkpoint, update_meta
from .config import RunConfig
from .data import DATASETS, load_dataset
from .models import build_model
from .storage import unique_path
from .train import Progress, Resume, TrainResult, train


def dataset_shape(dataset: str) -> tuple[int, int, int]:
    return DATASETS[dataset].shape if dataset in DATASETS else load_dataset(dataset).shape


def run_training(cfg: RunConfig, *, out: str | Path | None = None, folder: str | Path = "runs",
                 on_epoch: Callable[[dict], None] | None = None,
                 on_progress: Callable[[Progress], None] | None = None,
                 should_stop: Callable[[], bool] | None = None, command: str = "",
                 data=None, resume_from: Checkpoint | None = None) -> tuple[Path, TrainResult]:
    """Train `cfg` and write its checkpoint after every epoch (a killed run keeps its finished epochs)
    and at the end, also when stopped or failed (then marked incomplete).

    `resume_from`: a checkpoint of this same config; training goes on after its last finished epoch
    (its weights, optimizer state and history) up to `cfg.epochs`. Its file is written over only when
    `out` names that very file (a grid continuing its own run); otherwise the run goes to a new file.
    """
    cfg = cfg.resolved()
    data = data if data is not None else load_dataset(cfg.dataset)
    path = Path(out) if out else unique_path(folder, cfg.name)
    in_place = resume_from is not None and resume_from.path is not None and path.resolve() == resume_from.path.resolve()
    if path.exists() and not in_place:
        raise FileExistsError(f"{path} exists; choose another name")
    model, resume = _start(cfg, data, resume_from)
    written = [in_place]  # the first write claims the name (never over another file), later ones update it
    saved = [len(resume.history) if in_place else -1]  # epochs the file holds, as this run wrote them
    refused: list[FileExistsError] = []  # the named file was taken: train() would only record it as a failure

    def save(result: TrainResult) -> None:
        meta = make_meta(arch=cfg.arch, downsample=cfg.downsample, dataset=data.describe(),
                         in_shape=data.shape, num_classes=len(data.classes),
                         train={**asdict(cfg), "device": result.device}, history=result.history,
                         complete=result.completed, reason=result.reason, model=model, command=command)
        if resume_from is not None:
            meta["resumed_from"] = {"file": resume_from.path.name if resume_from.path else "",
                                    "epochs": len(resume.history), "optimizer_state": resume.optimizer is not None}
        nonlocal path
        try:
            save_checkpoint(path, meta, model, half=cfg.half, snapshots=result.snapshots,
                            optimizer_state=result.optimizer_state, overwrite=written[0])
        except FileExistsError as e:
            if out:  # the caller named the file: never overwrite it
                refused.append(e)
                raise
            # Another process took the name meanwhile: keep this run under the next free name.
            path = unique_path(folder, cfg.name)
            save_checkpoint(path, meta, model, half=cfg.half, snapshots=result.snapshots,
                            optimizer_state=result.optimizer_state)
        written[0], saved[0] = True, len(result.history)

    def callback(p: Progress):
        if on_progress:
            on_progress(p)
        if p.kind == "epoch" and on_epoch:
            on_epoch(p.row)

    result = train(model, data, cfg, callback=callback, should_stop=should_stop, resume=resume, on_epoch_end=save)
    if refused:
        raise refused[0]
    if not result.completed and saved[0] == len(result.history) > 0:
        # Stopped or failed mid-epoch: the file already holds the state after the last finished epoch,
        # which is what the history describes and what resuming needs; only the reason changes.
        update_meta(path, reason=result.reason)
    else:
        save(result)
    model.cpu()
    return path, result


def _start(cfg: RunConfig, data, resume_from: Checkpoint | None) -> tuple[torch.nn.Module, Resume | None]:
    """The model to train (freshly initialised from the seed, or the checkpoint's) and where to resume."""
    if resume_from is None:
        torch.manual_seed(cfg.seed)  # the initialisation: same seed, same starting weights
        return build_model(cfg.arch, data.shape, len(data.classes), cfg.downsample), None
    record = resume_from.record
    if record.config.experiment()[:3] != cfg.experiment()[:3] or record.dataset_name != data.name:
        raise ValueError(f"{resume_from.path or 'this checkpoint'} is a {record.label} run, not {cfg.name}")
    if record.epochs >= cfg.epochs:
        raise ValueError(f"the run already has {record.epochs} epochs; ask for more than that to continue it")
    snaps = resume_from.meta.get("filter_snapshots")
    snapshots = [s.float() for s in snaps] if isinstance(snaps, torch.Tensor) and snaps.dim() == 5 else []
    model = copy.deepcopy(resume_from.model)  # a cached checkpoint may be shared: train a copy
    return model, Resume(list(record.history), resume_from.optimizer_state, snapshots)
