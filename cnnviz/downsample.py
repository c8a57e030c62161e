"""The lecture's 2x2 downsampling options as one factory, plus Zhang's anti-aliased `blurmax`.

Every option halves H and W of a feature map (floor for odd sizes) and adds no parameters, so the
models built with any of them have the same parameter count and differ only in *how* they subsample.
`stride` is not a layer: it turns the preceding convolution into a stride-2 convolution (see models.py);
on a feature map it is the exact equivalent `x[..., ::2, ::2]` of that stride-1 output (see
`apply_downsample`).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

DOWNSAMPLE_METHODS = ("max", "avg", "bilinear", "nearest", "stride", "blurmax")

DOWNSAMPLE_LABELS = {
    "max": "Max pooling 2x2",
    "avg": "Average pooling 2x2",
    "bilinear": "Bilinear interpolation x0.5",
    "nearest": "Nearest interpolation x0.5",
    "stride": "Strided convolution (stride 2)",
    "blurmax": "Max pooling + blur (anti-aliased, Zhang 2019)",
}


class Interpolate(nn.Module):
    """The lecture's `ResizeLayer`: `F.interpolate(scale_factor=0.5)` as a layer.

    `align_corners=False` (the lecture's choice) samples at pixel centres, so x0.5 bilinear averages
    each 2x2 block exactly like average pooling on even sizes; `nearest` keeps the top-left pixel.
    """

    def __init__(self, scale_factor: float = 0.5, mode: str = "bilinear"):
        super().__init__()
        self.scale_factor, self.mode = scale_factor, mode

    def forward(self, x):
        align = False if self.mode in ("bilinear", "bicubic") else None
        return F.interpolate(x, scale_factor=self.scale_factor, mode=self.mode, align_corners=align)

    def extra_repr(self):
        return f"scale_factor={self.scale_factor}, mode={self.mode!r}"


class Resize(nn.Module):
    """Resize to a fixed size (used by `vgg16` to bring 28x28 inputs up to 32x32)."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def forward(self, x):
        if x.shape[-1] == self.size and x.shape[-2] == self.size:
            return x
        return F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)

    def extra_repr(self):
        return f"size={self.size}"


class BlurMaxPool(nn.Module):
    """Max pooling with stride 1, then a fixed [1,2,1]x[1,2,1]/16 blur subsampled by 2 (Zhang 2019).

    Taking the max densely and low-pass filtering before subsampling removes most of the aliasing that
    makes plain max pooling sensitive to 1-pixel shifts. The blur is a buffer, never trained.
    """

    def __init__(self):
        super().__init__()
        k = torch.tensor([1.0, 2.0, 1.0])
        self.register_buffer("kernel", (k[:, None] * k[None, :] / 16.0)[None, None], persistent=False)

    def forward(self, x):  # (B, C, H, W) -> (B, C, floor(H/2), floor(W/2))
        x = F.max_pool2d(x, kernel_size=2, stride=1)
        # Reflect needs 2+ pixels; a 2x2 input (VGG16's last block) leaves 1x1, which is replicated.
        x = F.pad(x, (1, 1, 1, 1), mode="reflect" if min(x.shape[-2:]) > 1 else "replicate")
        c = x.shape[1]
        return F.conv2d(x, self.kernel.to(x.dtype).expand(c, 1, 3, 3), stride=2, groups=c)


def make_downsample(method: str) -> nn.Module:
    """A parameter-free 2x2 downsampling layer for `method` (everything but `stride`)."""
    if method == "max":
        return nn.MaxPool2d(2, 2)
    if method == "avg":
        return nn.AvgPool2d(2, 2)
    if method in ("bilinear", "nearest"):
        return Interpolate(0.5, method)
    if method == "blurmax":
        return BlurMaxPool()
    if method == "stride":
        raise ValueError("'stride' is not a layer: build the preceding conv with stride=2")
    raise ValueError(f"unknown downsample {method!r}; choose one of {', '.join(DOWNSAMPLE_METHODS)}")


def apply_downsample(fmap: torch.Tensor, method: str) -> torch.Tensor:
    """Downsample a feature map (B, C, H, W) directly, so the methods can be compared on one input.

    For `stride`, a stride-2 convolution equals the stride-1 convolution sampled at every other pixel,
    so `fmap[..., ::2, ::2]` of the stride-1 map is exactly what a strided conv would have produced
    (ceil(H/2) rows for odd H, as the conv gives; the other methods give floor(H/2)).
    """
    if method == "stride":
        return fmap[..., ::2, ::2]
    return make_downsample(method).to(fmap.device)(fmap)
