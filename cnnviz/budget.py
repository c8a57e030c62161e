"""What a training job may spend, decided before it starts: memory, and compute in multiply-adds.

Why: the app is one process shared by a whole class (Streamlit Community Cloud: 0.7-2.7 GB and 1-2 cores
for everyone). Measured before these checks: vgg16 on CIFAR-10 at batch 1024 took the server to 3,018 MB,
conv_only at batch 8192 to 3.14 GB for one step, and nothing stopped VGG16 x 200 epochs (days of a shared
CPU). So a job states its cost first and is refused, with one line that says what would fit, when it is
over this server's limits (`cnnviz.limits`).

The memory estimate adds what one training step holds at once, from the summary's real forward pass:
weights, their gradients and the optimizer's state; every layer's output at the batch size (autograd keeps
them for the backward pass, and the backward pass holds gradients of the same size); the batch itself as
float32; the evaluation after each epoch; the dataset as uint8; and a fixed allowance for the kernels'
workspaces. Its factors were measured (benchmarks/job_memory.py) and are rounded up: the estimate is meant
to be above the real peak, never below it (tests/test_budget.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch

from .config import RunConfig
from . import data
from .costs import arch_macs
from .data import DATASETS
from .device import resolve_device

MB = 2**20
EVAL_BATCH = 256  # train.evaluate's CPU batch
OPTIMIZER_SLOTS = {"adam": 2, "adamw": 2, "sgd": 1}  # float32 tensors of the weights' size per optimizer
# Per image, a training step holds what autograd saved in the forward pass (measured on the net itself) and,
# during the backward pass, gradients of the layers around the largest one: measured (benchmarks/job_memory.py)
# at 0.7-0.9x of saved + 3 x the largest output for lenet5, downsample_compare and conv_only, 0.6x for vgg16.
GRADIENT_LAYERS = 3
BATCH_COPIES = 3  # the gathered uint8 batch, its float32 copy and the normalised one
WORKSPACE_MB = 200  # oneDNN primitive caches, thread pools, the checkpoint write: measured 110-120 MB, and
# on a fresh CI clone the MLP job measured 251 MB against an estimate of 235 with 150 here (first run on that machine)


class OverBudget(ValueError):
    """A job this server cannot take; the message is one line that says what would fit."""


@dataclass(frozen=True)
class NetShape:
    """What a net's memory depends on, per image, from real forward passes of the net."""
    params: int
    saved_bytes: int  # what autograd keeps for the backward pass (float32, parameters excluded)
    largest_layer_bytes: int  # the biggest single layer output (`cnnviz.summary`'s rows)
    input_bytes: int  # one image as float32


def _saved_for_backward(model: torch.nn.Module, shape: tuple[int, ...], n: int = 2) -> int:
    """Bytes autograd saves per image in one training-mode forward pass (each storage counted once)."""
    params = {p.data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t):
        if t.data_ptr() not in params:
            saved[t.data_ptr()] = t.untyped_storage().nbytes()
        return t

    was_training = model.training
    model.train()
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(torch.zeros(n, *shape))  # (n, C, H, W)
    finally:
        model.train(was_training)
    return sum(saved.values()) // n


@lru_cache(maxsize=256)
def net_shape(arch: str, dataset: str, downsample: str | None) -> NetShape:
    """The net's sizes, measured once per process (forward passes of one and two images)."""
    from .models import build_model
    from .summary import summary

    spec = DATASETS[dataset]
    model = build_model(arch, spec.shape, len(spec.classes), downsample)
    s = summary(model, spec.shape)
    largest = max((math.prod(r["output_shape"]) * 4 for r in s.rows), default=0)
    return NetShape(s.total_params, _saved_for_backward(model, spec.shape), largest, math.prod(spec.shape) * 4)


def dataset_bytes(dataset: str) -> int:
    """The dataset as the training holds it: uint8 images and int64 labels, train and test."""
    spec, (n_train, n_test) = DATASETS[dataset], _split_sizes(dataset)
    return (n_train + n_test) * (math.prod(spec.shape) + 8)


def _split_sizes(dataset: str) -> tuple[int, int]:
    return {"fashion-mnist": (60_000, 10_000), "cifar10": (50_000, 10_000)}[dataset]


@dataclass(frozen=True)
class JobMemory:
    """The parts of a job's memory in bytes; `total` is what it may add to the process at its peak."""
    model: int  # weights, gradients, optimizer state (and bf16 casts of the weights)
    per_image: int  # one training image's share of the step: saved outputs, their gradients, the batch
    batch_size: int
    evaluation: int  # the test-set pass after each epoch (forward only)
    dataset: int
    workspace: int

    @property
    def step(self) -> int:
        return max(self.per_image * self.batch_size, self.evaluation)

    @property
    def total(self) -> int:
        return self.model + self.step + self.dataset + self.workspace

    def parts_mb(self) -> dict[str, int]:
        return {"model": round(self.model / MB), "batch": round(self.step / MB),
                "dataset": round(self.dataset / MB), "workspace": round(self.workspace / MB)}

    def largest_batch(self, limit: int) -> int:
        """The largest batch size whose total stays within `limit` bytes (0 when none does)."""
        room = limit - self.model - self.dataset - self.workspace
        if room < self.evaluation:
            return 0
        return int(room // max(1, self.per_image))


def estimate(cfg: RunConfig, dataset_loaded: bool | None = None) -> JobMemory:
    """The memory `cfg`'s job will add to the process at its peak (see the module docstring). The dataset
    counts only when this process has not loaded it yet (`dataset_loaded`; None: look it up)."""
    net = net_shape(cfg.arch, cfg.dataset, cfg.downsample)
    slots = OPTIMIZER_SLOTS.get(cfg.optimizer, 2)
    model = net.params * 4 * (2 + slots) + (net.params * 2 if cfg.precision != "fp32" else 0)  # + bf16 casts
    per_image = net.saved_bytes + GRADIENT_LAYERS * net.largest_layer_bytes + BATCH_COPIES * net.input_bytes
    evaluation = EVAL_BATCH * (2 * net.largest_layer_bytes + BATCH_COPIES * net.input_bytes)
    loaded = data.in_memory(cfg.dataset) if dataset_loaded is None else dataset_loaded
    return JobMemory(model, per_image, cfg.batch_size, evaluation, 0 if loaded else dataset_bytes(cfg.dataset),
                     WORKSPACE_MB * MB)


def _on_cpu(cfg: RunConfig) -> bool:
    """Whether the job's activations live in this process's memory (a GPU holds its own and has its own OOM)."""
    return resolve_device(cfg.device).type == "cpu"


def check_memory(cfg: RunConfig, limit_mb: int) -> JobMemory:
    """The estimate, or OverBudget with one line naming the largest batch that fits (or that none does)."""
    need = estimate(cfg)
    if not _on_cpu(cfg) or need.total <= limit_mb * MB:
        return need
    fits = need.largest_batch(limit_mb * MB)
    what = f"{cfg.arch} on {cfg.dataset} at batch {cfg.batch_size:,}"
    advice = (f"batch {fits:,} fits" if fits >= 1 else
              "no batch size fits: choose a smaller network")
    raise OverBudget(f"{what} needs about {need.total / MB:,.0f} MB, over this server's {limit_mb:,} MB per "
                     f"training job: {advice}.")


def training_images(cfg: RunConfig) -> int:
    n_train = _split_sizes(cfg.dataset)[0]
    return min(n_train, cfg.limit_train) if cfg.limit_train else n_train


def cost(cfg: RunConfig) -> int:
    """Multiply-adds of the whole run's forward passes: per image x training images x epochs."""
    spec = DATASETS[cfg.dataset]
    per_image = arch_macs(cfg.arch, spec.shape, len(spec.classes), cfg.downsample)
    return per_image * training_images(cfg) * cfg.epochs


def check_cost(cfg: RunConfig, limit_tmacs: float) -> int:
    """The run's cost, or OverBudget with one line saying how many epochs (or images) would fit.

    Only on a CPU: there a run's time grows with its multiply-adds and every other student waits behind
    it; a GPU trains the same run a hundred times faster."""
    limit = limit_tmacs * 1e12
    total = cost(cfg)
    if not _on_cpu(cfg) or total <= limit:
        return total
    per_epoch = total / cfg.epochs
    epochs = int(limit // per_epoch)
    images = int(limit // (per_epoch / training_images(cfg)))
    advice = (f"at most {epochs} epoch{'s' if epochs != 1 else ''} fit" if epochs >= 1 else
              f"not even one epoch fits; train on the first {images:,} images or choose a smaller network")
    raise OverBudget(f"{cfg.arch} on {cfg.dataset} for {cfg.epochs} epochs is {total / 1e12:,.0f} T multiply-adds, "
                     f"over this server's {limit / 1e12:,.0f} T per training job on a CPU: {advice}.")


def known(cfg: RunConfig) -> bool:
    """Whether the run's sizes can be told before it starts: a built-in dataset (a folder's are not known)."""
    return cfg.dataset in DATASETS


def check(cfg: RunConfig, *, memory_mb: int | None = None, max_tmacs: float | None = None) -> None:
    """The checks whose limit is given (None: no limit), for a job about to be queued."""
    if not known(cfg):
        return
    if max_tmacs is not None:
        check_cost(cfg, max_tmacs)
    if memory_mb is not None:
        check_memory(cfg, memory_mb)
