"""What a network costs per image: multiply-adds, activation memory, and each layer's receptive field.

Multiply-adds are measured with `torch.utils.flop_counter.FlopCounterMode` (it counts 2 FLOPs per
multiply-add in convs and matmuls); receptive fields follow the closed form
r_out = r_in + (k - 1) * j_in, j_out = j_in * s, with j the distance in input pixels between
neighbouring outputs.
"""
from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from .downsample import BlurMaxPool, Interpolate, Resize
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


def _kernel_stride(module: nn.Module, in_hw: int | None, out_hw: int | None) -> list[tuple[float, float]]:
    """(kernel, stride) steps a layer applies along one axis; [] for layers that keep the geometry."""
    def first(v):
        return v if isinstance(v, (int, float)) else v[0]

    if isinstance(module, nn.Conv2d):
        return [(module.dilation[0] * (module.kernel_size[0] - 1) + 1, module.stride[0])]
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        return [(first(module.kernel_size), first(module.stride or module.kernel_size))]
    if isinstance(module, Interpolate):
        # x0.5 bilinear (align_corners=False) reads 2 neighbouring pixels; nearest reads 1.
        return [(2 if module.mode == "bilinear" else 1, 2)]
    if isinstance(module, BlurMaxPool):
        return [(2, 1), (3, 2)]
    if isinstance(module, EngineeredFrontEnd):
        return [(3, 1)]
    if isinstance(module, Resize) and in_hw and out_hw:
        return [(1, in_hw / out_hw)]
    if type(module).__name__ == "_EveryOther":
        return [(1, 2)]
    return []


def receptive_fields(model: nn.Sequential, input_shape: tuple[int, int, int]) -> list[dict]:
    """Per top-level layer: receptive field and jump in input pixels; after Flatten, the whole input."""
    rows, r, j, full = [], 1.0, 1.0, False
    x = torch.zeros(1, *input_shape)
    with torch.no_grad():
        for name, layer in model.named_children():
            in_hw = x.shape[-1] if x.dim() == 4 else None
            x = layer(x)
            out_hw = x.shape[-1] if x.dim() == 4 else None
            if isinstance(layer, (nn.Flatten, nn.Linear)) or x.dim() != 4:
                full = True
            if not full:
                for k, s in _kernel_stride(layer, in_hw, out_hw):
                    r, j = r + (k - 1) * j, j * s
            rows.append({"name": name, "rf": None if full else int(round(r)), "jump": None if full else j,
                         "whole_input": full})
    return rows
