"""What a network costs per image: multiply-adds, in total and per layer.

Each conv and linear layer's multiply-adds are counted from its output's shape (`layer_macs`); a layer that
computes in its own way (a fixed front end, a blur) says its count itself (`multiply_adds(output)`). The
total is their sum over one forward pass. The tests hold every registered net's total against torch's own
`torch.utils.flop_counter.FlopCounterMode` (2 FLOPs per multiply-add); the pages do not use the counter,
whose first use imports ~340 more modules (9 s measured on a loaded 2-core machine, on a page's first open).
(Receptive fields are geometry, in `conv_arithmetic`.)
"""
from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn as nn

from .models import build_model, device_of


@torch.no_grad()
def macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-adds of one forward pass on one image: the leaf layers' `layer_macs`, summed."""
    total = 0

    def count(module, _inputs, output):
        nonlocal total
        total += layer_macs(module, output)

    hooks = [m.register_forward_hook(count) for m in model.modules() if not list(m.children())]
    was_training = model.training
    model.eval()
    try:
        model(torch.zeros(1, *input_shape, device=device_of(model)))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return total


@lru_cache(maxsize=256)
def arch_macs(arch: str, input_shape: tuple[int, ...], num_classes: int = 10, downsample: str | None = None) -> int:
    """Multiply-adds per image of a registered net, counted once per process: they depend on nothing else."""
    return macs(build_model(arch, input_shape, num_classes, downsample), input_shape)


def cost_points(records, labels: list[str], colors: list[str] | None = None) -> tuple[list[dict], list[dict]]:
    """(by parameters, by multiply-adds per image): one point per run with a finished epoch, its final test
    accuracy against its cost, named by `labels` and drawn in `colors` (the run's colour on the page's other
    charts; without them, its downsampling method's)."""
    colors = colors if colors is not None else [None] * len(records)
    done = [(lab, rec, c) for lab, rec, c in zip(labels, records, colors) if rec.history]
    base = [{"y": rec.final_test_acc, "label": lab, "downsample": rec.downsample, "color": c} for lab, rec, c in done]
    by_params = [{**b, "x": rec.params} for b, (_, rec, _) in zip(base, done)]
    by_macs = [{**b, "x": arch_macs(rec.arch, rec.in_shape, rec.num_classes, rec.downsample)}
               for b, (_, rec, _) in zip(base, done)]
    return by_params, by_macs


def layer_macs(module: nn.Module, out: torch.Tensor) -> int:
    """Analytic multiply-adds of one leaf layer given its output (the summary's per-row column)."""
    own = getattr(module, "multiply_adds", None)  # layers that compute in their own way count themselves
    if own is not None:
        return own(out)
    if isinstance(module, nn.Conv2d):
        k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
        return out[0].numel() * k
    if isinstance(module, nn.Linear):
        return module.in_features * module.out_features
    return 0
