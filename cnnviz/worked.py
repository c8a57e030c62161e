"""The lecture's remaining worked examples, computed by the torch layers the networks use.

- "Convolve D with stride=1 / stride=2": the 4x4 data v1..v16 and a 2x2 kernel give a 3x3 output, then 2x2;
- "Feature map (220x220) -> max pooling -> max pooling -> (55x55)": two 2x2 poolings of a 220x220 image;
- "Convolve with 1 kernel (1,5,5) + activation" on a gray image and "(3,5,5)" on a colour one: one trained
  first-layer kernel of each dataset's net, on one of its test images.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .downsample import apply_downsample
from .models import first_conv

STRIDE_DATA = np.arange(1, 17, dtype=float).reshape(4, 4)  # v1..v16, row by row
STRIDE_KERNEL = np.array([[1.0, 2.0], [3.0, 4.0]])  # w1 w2 / w3 w4: small integers a student can check by hand
POOLED_SIZE = 220  # the slide's feature map


@torch.no_grad()
def strided(data: np.ndarray = STRIDE_DATA, kernel: np.ndarray = STRIDE_KERNEL, bias: float = 0.0,
            strides=(1, 2)) -> dict[int, np.ndarray]:
    """stride -> the output of `F.conv2d(data, kernel, bias, stride)` (no padding): 3x3, then 2x2 on 4x4 data."""
    x = torch.as_tensor(np.asarray(data, np.float32))[None, None]  # (1, 1, 4, 4)
    k = torch.as_tensor(np.asarray(kernel, np.float32))[None, None]  # (1, 1, 2, 2)
    return {s: F.conv2d(x, k, torch.tensor([float(bias)]), stride=s)[0, 0].double().numpy() for s in strides}


@dataclass(frozen=True)
class Pooled:
    method: str
    maps: list[np.ndarray]  # (H, W) each: the image, after one pooling, after two


@torch.no_grad()
def pooled_twice(image: torch.Tensor, methods=("max", "avg"), size: int = POOLED_SIZE) -> list[Pooled]:
    """The image (C, H, W) uint8, resized to `size` x `size` (bilinear) and made gray, then downsampled twice
    by each method, as the slide does with a 220x220 feature map: 220 -> 110 -> 55."""
    x = image[None].float() / 255  # (1, C, H, W)
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).mean(1, keepdim=True)  # (1, 1, S, S)
    out = []
    for m in methods:
        once = apply_downsample(x, m)
        twice = apply_downsample(once, m)
        out.append(Pooled(m, [t[0, 0].double().numpy() for t in (x, once, twice)]))
    return out


@dataclass(frozen=True)
class OneKernel:
    image: np.ndarray  # (C, H, W) the normalised input the kernel sees
    kernel: np.ndarray  # (C, k, k): one output channel's kernel, one slice per input channel
    bias: float
    output: np.ndarray  # (H - k + 1, W - k + 1): ReLU(conv), the lecture's "+activation"
    params: int  # C * k * k + 1


@torch.no_grad()
def one_kernel(model: nn.Module, x: torch.Tensor, channel: int = 0) -> OneKernel:
    """Output channel `channel` of the net's first conv alone (its kernel (C, k, k) and bias) on one image x
    (1, C, H, W), through a ReLU, without padding: the slide's "1 kernel (C,5,5) + activation"."""
    found = first_conv(model)
    if found is None:
        raise ValueError("this net has no learned conv layer")
    conv = found[1]
    w, b = conv.weight[channel:channel + 1].detach(), conv.bias[channel:channel + 1].detach()  # (1, C, k, k), (1,)
    out = F.relu(F.conv2d(x, w, b))[0, 0]  # (H - k + 1, W - k + 1)
    return OneKernel(x[0].double().numpy(), w[0].double().numpy(), float(b), out.double().numpy(), w.numel() + 1)


def first_window_latex(data: np.ndarray = STRIDE_DATA, kernel: np.ndarray = STRIDE_KERNEL, bias: float = 0.0) -> str:
    """m_1 written out: the top-left 2x2 window of the data times the kernel, plus the bias, and its value."""
    k = np.asarray(kernel)
    window = np.asarray(data)[: k.shape[0], : k.shape[1]]
    terms = " + ".join(rf"{v:g} \cdot {w:g}" for v, w in zip(window.ravel(), k.ravel()))
    return rf"m_1 = {terms} + {bias:g} = {float((window * k).sum() + bias):g}"
