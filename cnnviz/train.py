"""The training loop: the whole dataset as one uint8 tensor on the device, batches as index slices.

Compared with the lecture's `DataLoader` + `ToTensor` + `Normalize`, nothing runs per sample in Python:
one `randperm` per epoch, one gather + normalise per batch, and the loss/accuracy are accumulated on
the device and read back once per report (every host sync stalls a GPU).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import OPTIMIZERS, RunConfig
from .data import Dataset
from .device import configure_threads, resolve_device
from .models import first_conv
from .precision import autocast, resolve_precision

LR_PRESETS = {"lecture (1e-5)": 1e-5, "fast (1e-3)": 1e-3}
SNAPSHOT_MAX_PARAMS = 50_000  # first-conv weights kept per epoch only for small first layers


class Stopped(Exception):
    """Raised inside the loop when the caller asked to stop; `train` catches it."""


@dataclass
class Progress:
    """What a callback sees: `kind` is "batch" (every few batches) or "epoch" (with the epoch's row)."""
    kind: str
    epoch: int
    epochs: int
    batch: int
    batches: int
    loss: float
    acc: float
    row: dict | None = None

    @property
    def fraction(self) -> float:
        return ((self.epoch - 1) + self.batch / max(1, self.batches)) / max(1, self.epochs)


@dataclass
class TrainResult:
    history: list[dict]
    completed: bool  # False when stopped or failed before the last epoch
    reason: str  # "completed", "stopped", or the error
    snapshots: list[torch.Tensor] = field(default_factory=list)  # first-conv weights after each epoch
    device: str = "cpu"
    precision: str = "fp32"  # what the run trained in (cfg.precision with "auto" resolved)
    optimizer_state: dict | None = None  # opt.state_dict() after the last finished epoch (to resume)


@dataclass
class Resume:
    """Where an earlier run of the same config stopped: `train` goes on from its next epoch as if it had
    never stopped. The shuffling is not stored: the generator's only use is one `randperm(n)` per epoch,
    so replaying one per finished epoch puts it exactly where it was (which also resumes files written
    before resuming existed). Without `optimizer` (such a file) the optimizer starts afresh."""
    history: list[dict]
    optimizer: dict | None = None
    snapshots: list[torch.Tensor] = field(default_factory=list)  # epoch 0..k first-conv weights, or none


def make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    # fused: one kernel per step instead of ~6 ops per parameter tensor (CPU and CUDA, float params);
    # opt.step() of lenet5 1.57 -> 0.84 ms of CPU (docs/benchmarks.md).
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, fused=True)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, fused=True)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")


@torch.inference_mode()
def evaluate(model: nn.Module, data: Dataset, split: str = "test", device: str | torch.device = "auto",
             batch_size: int | None = None, limit: int | None = None, return_predictions: bool = False):
    """(loss, accuracy) of `model` on a split, or also the predicted labels (a CPU int64 tensor).

    On CPU batches of 256 are as fast as large ones and keep the activation peak ~40 MB instead of
    ~300 MB, which matters on a 1 GB shared server."""
    dev = resolve_device(device) if isinstance(device, str) else device
    batch_size = batch_size or (2048 if dev.type == "cuda" else 256)
    x_all, y_all = (data.test_x, data.test_y) if split == "test" else (data.train_x, data.train_y)
    if limit:
        x_all, y_all = x_all[:limit], y_all[:limit]
    x_all, y_all = x_all.to(dev), y_all.to(dev)  # one copy (uint8, 8-31 MB), not one per batch
    was_training = model.training
    model.eval()
    try:
        loss_sum = torch.zeros((), device=dev)
        preds = []
        for i in range(0, len(y_all), batch_size):
            x = data.normalize(x_all[i:i + batch_size])
            y = y_all[i:i + batch_size]
            with autocast(dev, "bf16" if dev.type == "cuda" else "fp32"):  # fp32 on CPU: see precision.py
                logits = model(x)
            loss_sum += F.cross_entropy(logits.float(), y, reduction="sum")
            preds.append(logits.argmax(1))
        pred = torch.cat(preds)
        loss_total, n_correct = torch.stack([loss_sum, (pred == y_all).sum().float()]).tolist()  # one sync
        acc, loss = n_correct / max(1, len(y_all)), loss_total / max(1, len(y_all))
    finally:
        model.train(was_training)
    return (loss, acc, pred.cpu()) if return_predictions else (loss, acc)


def _read_back(loss_sum: torch.Tensor, correct: torch.Tensor) -> tuple[float, float]:
    """Both running sums in one device-to-host copy (each `.item()` waits for the GPU queue)."""
    loss_total, n_correct = torch.stack([loss_sum.float(), correct.float()]).tolist()
    return loss_total, n_correct


@dataclass
class _Loop:
    """What every epoch of one run shares: the model and its optimizer, the data on the device."""
    model: nn.Module
    opt: torch.optim.Optimizer
    data: Dataset
    x: torch.Tensor  # (N, C, H, W) uint8 on the device
    y: torch.Tensor  # (N,) int64 on the device
    dev: torch.device
    nhwc: bool
    precision: str  # "fp32" or "bf16": cfg.precision resolved for this device and net
    cfg: RunConfig
    gen: torch.Generator
    callback: Callable[[Progress], None] | None
    should_stop: Callable[[], bool] | None
    report_every: int

    @property
    def batches(self) -> int:
        n = len(self.y)
        return max(1, n // self.cfg.batch_size) if n >= self.cfg.batch_size else 1  # drop_last, like the lecture


def _prepare(model, data, cfg, callback, should_stop, report_every, resume: Resume | None) -> _Loop:
    dev = resolve_device(cfg.device)
    if dev.type == "cpu":
        configure_threads()
    model.to(dev)
    # channels_last: cuDNN's tensor-core kernels want NHWC, and on CPU oneDNN's pooling and convs run
    # ~20-30% faster with it too (measured on 2 cores for downsample_compare and lenet_fc).
    nhwc = any(isinstance(m, nn.Conv2d) for m in model.modules())
    if nhwc:
        model.to(memory_format=torch.channels_last)
    opt = make_optimizer(cfg.optimizer, [p for p in model.parameters() if p.requires_grad], cfg.lr)
    x, y = data.train_x, data.train_y
    if cfg.limit_train:
        x, y = x[:cfg.limit_train], y[:cfg.limit_train]
    gen = torch.Generator().manual_seed(cfg.seed)
    if resume is not None:
        for _ in resume.history:  # the shuffles of the finished epochs, replayed (see Resume)
            torch.randperm(len(y), generator=gen)
        if resume.optimizer is not None:
            opt.load_state_dict(resume.optimizer)
    # uint8 on the device: 47 MB for Fashion-MNIST
    precision = resolve_precision(cfg.precision, dev, cfg.arch, data.shape, len(data.classes), cfg.downsample)
    return _Loop(model, opt, data, x.to(dev), y.to(dev), dev, nhwc, precision, cfg, gen, callback, should_stop, report_every)


def _train_epoch(loop: _Loop, epoch: int) -> dict:
    """One pass over the shuffled training set, then the test set: the epoch's history row."""
    model, dev, bs, batches = loop.model, loop.dev, loop.cfg.batch_size, loop.batches
    model.train()
    t0 = time.perf_counter()
    perm = torch.randperm(len(loop.y), generator=loop.gen).to(dev)
    loss_sum = torch.zeros((), device=dev)
    correct = torch.zeros((), device=dev, dtype=torch.int64)
    seen = 0
    for b in range(batches):
        idx = perm[b * bs:(b + 1) * bs] if len(loop.y) >= bs else perm
        x = loop.data.normalize(loop.x[idx])
        if loop.nhwc:
            x = x.contiguous(memory_format=torch.channels_last)
        y = loop.y[idx]
        with autocast(dev, loop.precision):
            logits = model(x)
            loss = F.cross_entropy(logits.float(), y)
        loop.opt.zero_grad(set_to_none=True)
        loss.backward()
        loop.opt.step()
        loss_sum += loss.detach() * len(y)
        correct += (logits.detach().argmax(1) == y).sum()
        seen += len(y)
        if loop.should_stop is not None and loop.should_stop():
            raise Stopped
        if loop.callback is not None and (b + 1) % loop.report_every == 0:
            loss_so_far, correct_so_far = _read_back(loss_sum, correct)
            loop.callback(Progress("batch", epoch, loop.cfg.epochs, b + 1, batches, loss_so_far / seen,
                                   correct_so_far / seen))
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    test_loss, test_acc = evaluate(model, loop.data, "test", dev)
    loss_total, n_correct = _read_back(loss_sum, correct)
    row = {"epoch": epoch, "train_loss": loss_total / seen, "train_acc": n_correct / seen,
           "test_loss": test_loss, "test_acc": test_acc, "seconds": seconds,
           "images_per_second": seen / seconds, "eval_seconds": time.perf_counter() - t1}
    if not math.isfinite(row["train_loss"]):
        raise FloatingPointError(f"training diverged at epoch {epoch} (loss is {row['train_loss']})")
    return row


def train(model: nn.Module, data: Dataset, cfg: RunConfig, *,
          callback: Callable[[Progress], None] | None = None, should_stop: Callable[[], bool] | None = None,
          report_every: int = 5, snapshots: bool = True, resume: Resume | None = None,
          on_epoch_end: Callable[[TrainResult], None] | None = None) -> TrainResult:
    """Train `model` in place on `data` with `cfg`'s settings (epochs, lr, optimizer, batch size, device,
    seed, limit_train); returns the per-epoch history even when stopped or failed.

    The history row of each epoch: epoch, train_loss, train_acc, test_loss, test_acc, seconds
    (training only, evaluation excluded), images_per_second, eval_seconds. The training set is
    shuffled with a generator seeded by `seed`, so two runs with the same seed see the same order.
    `should_stop()` is checked after every batch; returning True ends the run after saving progress.
    With `resume`, training goes on after its last finished epoch up to `cfg.epochs` in all.
    `on_epoch_end(result so far)` is called after every epoch (to save it: a killed run then loses at
    most the epoch it was in).
    """
    loop = _prepare(model, data, cfg, callback, should_stop, report_every, resume)
    history: list[dict] = list(resume.history) if resume else []
    conv = first_conv(model)
    keep_snaps = snapshots and conv is not None and conv[1].weight.numel() <= SNAPSHOT_MAX_PARAMS
    snaps = [conv[1].weight.detach().float().cpu().clone()] if keep_snaps else []  # epoch 0: the initialisation
    if resume is not None:  # the earlier epochs' snapshots, if the file kept one per epoch
        snaps = list(resume.snapshots) if keep_snaps and len(resume.snapshots) == len(history) + 1 else []
        keep_snaps = bool(snaps)
    reason = "completed"
    try:
        for epoch in range(len(history) + 1, cfg.epochs + 1):
            row = _train_epoch(loop, epoch)
            history.append(row)
            if keep_snaps:
                snaps.append(conv[1].weight.detach().float().cpu().clone())
            if on_epoch_end is not None:
                on_epoch_end(TrainResult(list(history), False, f"saved after epoch {epoch}; the run had not finished",
                                         list(snaps), str(loop.dev), loop.precision,
                                         loop.opt.state_dict()))
            if callback is not None:
                callback(Progress("epoch", epoch, cfg.epochs, loop.batches, loop.batches, row["train_loss"],
                                  row["train_acc"], row))
    except Stopped:
        reason = "stopped"
    except Exception as e:  # noqa: BLE001 - the epochs already done are still returned (and saved)
        if loop.dev.type == "cuda" and isinstance(e, torch.cuda.OutOfMemoryError):
            torch.cuda.empty_cache()
            reason = "CUDA out of memory: try a smaller batch size"
        else:
            reason = f"{type(e).__name__}: {e}"
    finally:
        model.eval()
    return TrainResult(history, reason == "completed" and len(history) == cfg.epochs, reason, snaps, str(loop.dev),
                       loop.precision, loop.opt.state_dict())
