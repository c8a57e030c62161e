"""A run = config -> data -> model -> train -> checkpoint. Used by the CLI, the UI's jobs and grids."""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, replace
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
    writer = _Writer(path, folder, bool(out), cfg, data, model, command, resume_from, resume, in_place)

    def callback(p: Progress):
        if on_progress:
            on_progress(p)
        if p.kind == "epoch" and on_epoch:
            on_epoch(p.row)

    result = train(model, data, cfg, callback=callback, should_stop=should_stop, resume=resume,
                   on_epoch_end=writer.save)
    writer.finish(result)
    model.cpu()
    return writer.path, result


@dataclass
class _Writer:
    """One run's checkpoint file: claimed by its first write (never over another file), updated after."""
    path: Path
    folder: str | Path
    named: bool  # the caller chose the file: a taken name is an error, not a reason to pick another
    cfg: RunConfig
    data: object
    model: torch.nn.Module
    command: str
    resume_from: Checkpoint | None
    resume: Resume | None
    written: bool  # the file is this run's (it continues that very file, or wrote it already)
    saved: int = -1  # epochs the file holds as this run wrote them
    refused: FileExistsError | None = None  # raised inside train(), which would only record it as a failure

    def __post_init__(self):
        if self.written:
            self.saved = len(self.resume.history)

    def save(self, result: TrainResult) -> None:
        meta = make_meta(arch=self.cfg.arch, downsample=self.cfg.downsample, dataset=self.data.describe(),
                         in_shape=self.data.shape, num_classes=len(self.data.classes),
                         train={**asdict(self.cfg), "device": result.device, "precision": result.precision}, history=result.history,
                         complete=result.completed, reason=result.reason, model=self.model, command=self.command)
        if self.resume_from is not None:
            meta["resumed_from"] = {"file": self.resume_from.path.name if self.resume_from.path else "",
                                    "epochs": len(self.resume.history),
                                    "optimizer_state": self.resume.optimizer is not None}
        # Compact storage (`half`) is for the finished file: until then each epoch's file keeps float32
        # weights and the optimizer state, so a killed or stopped run resumes exactly where it was.
        write = dict(half=self.cfg.half and result.completed, snapshots=result.snapshots,
                     optimizer_state=result.optimizer_state)
        try:
            save_checkpoint(self.path, meta, self.model, overwrite=self.written, **write)
        except FileExistsError as e:
            if self.named:  # never overwrite a file the caller named
                self.refused = e
                raise
            # Another process took the name meanwhile: keep this run under the next free name.
            self.path = unique_path(self.folder, self.cfg.name)
            save_checkpoint(self.path, meta, self.model, **write)
        self.written, self.saved = True, len(result.history)

    def finish(self, result: TrainResult) -> None:
        if self.refused is not None:
            raise self.refused
        if not result.completed and self.saved == len(result.history) > 0:
            # Stopped or failed mid-epoch: the file already holds the state after the last finished epoch,
            # which is what the history describes and what resuming needs; only the reason changes.
            update_meta(self.path, reason=result.reason)
        else:
            self.save(result)


def continuation(record, epochs: int, device: str = "auto", half: bool = False) -> RunConfig:
    """The config that continues `record`'s run up to `epochs` in all: its own settings, on `device`, stored
    in full precision unless `half` (a continued run is the user's, and stays resumable; a run continued
    in its own file keeps that file's storage)."""
    if epochs <= record.epochs:
        raise ValueError(f"the run already has {record.epochs} epochs: ask for more (the total, e.g. "
                         f"{record.epochs + 5})")
    return replace(record.config, epochs=epochs, device=device, half=half)


def continue_note(record) -> str:
    """What continuing `record` keeps and what it cannot (a compact file has no optimizer state)."""
    where = f"{record.epochs} epochs of {record.label}"
    if record.has_optimizer_state:
        return (f"Goes on from the {where} with its weights, its Adam state and its shuffling: the same run as "
                "if it had never stopped. Written to a new file of yours; the original stays as it is.")
    stored = {"float16": "float16", "float16+int8": "float16 and int8"}.get(record.weights_dtype, record.weights_dtype)
    return (f"Goes on from the {where} with its weights (stored as {stored}) and its shuffling. The file keeps "
            "no optimizer state, so Adam's running averages start again from zero: the first steps move "
            "the weights more than an uninterrupted run would. Written to a new file of yours.")


def _start(cfg: RunConfig, data, resume_from: Checkpoint | None) -> tuple[torch.nn.Module, Resume | None]:
    """The model to train (freshly initialised from the seed, or the checkpoint's) and where to resume."""
    if resume_from is None:
        torch.manual_seed(cfg.seed)  # the initialisation: same seed, same starting weights
        return build_model(cfg.arch, data.shape, len(data.classes), cfg.downsample), None
    record = resume_from.record
    if (record.arch, record.downsample, record.dataset_name) != (cfg.arch, cfg.downsample, data.name):
        raise ValueError(f"{resume_from.path or 'this checkpoint'} is a {record.label} run, not {cfg.name}")
    if record.epochs >= cfg.epochs:
        raise ValueError(f"the run already has {record.epochs} epochs; ask for more than that to continue it")
    snaps = resume_from.meta.get("filter_snapshots")
    snapshots = [s.float() for s in snaps] if isinstance(snaps, torch.Tensor) and snaps.dim() == 5 else []
    model = copy.deepcopy(resume_from.model)  # a cached checkpoint may be shared: train a copy
    return model, Resume(list(record.history), resume_from.optimizer_state, snapshots)
