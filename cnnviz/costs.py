"""What a network costs per image: multiply-adds, in total and per layer.

Multiply-adds are measured with `torch.utils.flop_counter.FlopCounterMode` (it counts 2 FLOPs per
multiply-add in convs and matmuls); the per-layer column is the analytic count of each conv/linear.
(Receptive fields are geometry, in `conv_arithmetic`.)
"""
from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from .engineered import EngineeredFrontEnd
from .models import build_model


@torch.no_grad()
def macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-adds of one forward pass on one image, measured by torch's FLOP counter."""
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, *input_shape))
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


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
    """Analytic multiply-adds of one conv/linear layer given its output (the per-row column)."""
    if isinstance(module, nn.Conv2d):
        k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
        return out[0].numel() * k
    if isinstance(module, nn.Linear):
        return module.in_features * module.out_features
    if isinstance(module, EngineeredFrontEnd):
        return out.shape[-2] * out.shape[-1] * module.kernels.shape[0] * 9
    return 0
