"""The registry of 2x2 downsampling methods: the lecture's five plus Zhang's anti-aliased `blurmax`.

Every method is one `Downsample` entry (name, labels, colour, a factory for its layer, and its geometry)
registered here, torchvision `_api.py` style: `register_downsample`, `get_downsample`,
`list_downsamples`; a duplicate name is an error. Everything else (models, summaries, receptive fields,
figures, pages, the CLI, the shipped runs) looks the method up, so one registration adds a method
everywhere.

Every method halves H and W of a feature map and adds no parameters, so the models built with any of
them have the same parameter count and differ only in *how* they subsample. `stride` is the one whose
entry says `strides_conv`: in a conv trunk it is no layer, the preceding conv gets stride 2 instead (see
models.py); on a feature map its layer samples `x[..., ::2, ::2]`, exactly that stride-1 output sampled
as a stride-2 conv would have computed it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

Steps = tuple[tuple[float, ...], ...]  # (kernel, stride[, padding before the first pixel]) along one axis, in order


@dataclass(frozen=True)
class Downsample:
    """One downsampling method: everything a model, a figure or a page needs to know about it."""
    name: str  # the lecture's word, the `downsample=` value saved in checkpoints
    label: str  # for menus, legends and tables: "Max pooling 2x2"
    short: str  # inside a sentence: "max pooling"
    color: str  # the same colour on every page and figure
    factory: Callable[[], nn.Module]  # a fresh parameter-free layer halving H and W
    steps: Steps  # its geometry, for receptive fields: max pooling is ((2, 2),), padding 0 when left out
    strides_conv: bool = False  # in a conv trunk: no layer, the conv before it gets stride 2
    twin: tuple[str, str] | None = None  # (a method it equals on even sizes, why): the same numbers by construction

    def layer(self) -> nn.Module:
        """A fresh layer, tagged with this entry so summaries and diagrams can find the method again."""
        module = self.factory()
        module.downsample_method = self.name  # a plain attribute: not in the state_dict
        return module


_REGISTRY: dict[str, Downsample] = {}


def twin_pairs() -> tuple[tuple[str, str], ...]:
    """(method, its twin) pairs that give the same numbers on even sizes, e.g. ("avg", "bilinear")."""
    return tuple((e.twin[0], e.name) for e in _REGISTRY.values() if e.twin and e.twin[0] in _REGISTRY)


def twin_reason(a: str, b: str) -> str | None:
    """Why methods `a` and `b` give the same numbers on even sizes, or None when they are not twins."""
    for x, y in ((a, b), (b, a)):
        entry = _REGISTRY.get(y)
        if entry is not None and entry.twin and entry.twin[0] == x:
            return entry.twin[1]
    return None


def register_downsample(entry: Downsample) -> Downsample:
    """Add a method to every menu, model and figure; a duplicate name is a programming error."""
    if entry.name in _REGISTRY:
        raise ValueError(f"downsampling method {entry.name!r} registered twice")
    _REGISTRY[entry.name] = entry
    return entry


def unregister_downsample(name: str) -> None:
    """Remove a method (tests register throwaway methods and take them out again)."""
    del _REGISTRY[name]


def list_downsamples() -> list[str]:
    """Every registered method, in registration order (the lecture's order first)."""
    return list(_REGISTRY)


def get_downsample(name: str) -> Downsample:
    if name not in _REGISTRY:
        raise ValueError(f"unknown downsample {name!r}; choose one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def downsample_label(name: str | None) -> str:
    """The method's label for menus and legends; a name that is not registered (an old checkpoint's,
    or None for a net that never downsamples) is shown as it is."""
    return _REGISTRY[name].label if name in _REGISTRY else str(name)


def downsample_of(module: nn.Module) -> Downsample | None:
    """The entry a layer was built from (by `Downsample.layer`), or None for any other layer."""
    name = getattr(module, "downsample_method", None)
    return _REGISTRY.get(name) if name is not None else None


def make_downsample(method: str) -> nn.Module:
    """A parameter-free 2x2 downsampling layer for `method`."""
    return get_downsample(method).layer()


def apply_downsample(fmap: torch.Tensor, method: str) -> torch.Tensor:
    """Downsample a feature map (B, C, H, W) directly, so the methods can be compared on one input.

    For `stride` this is the stride-1 map sampled at every other pixel: exactly what a strided conv
    would have produced (ceil(H/2) rows for odd H, as the conv gives; the 2x2 windows give floor(H/2)).
    """
    return make_downsample(method).to(fmap.device)(fmap)


# ---- the layers --------------------------------------------------------------------------------

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

    def rf_steps(self, in_hw: int, out_hw: int) -> list[tuple[float, float]]:
        """Geometry for receptive fields: one input pixel per output pixel, `in/out` apart (counted as
        starting at pixel 0: the half-pixel offset of align_corners=False is left out)."""
        return [(1, in_hw / out_hw)]

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

    def multiply_adds(self, out) -> int:
        """The blur: one 3x3 depthwise window per output value (the max takes comparisons, not multiplies)."""
        return out[0].numel() * 9


class EveryOther(nn.Module):
    """`x[..., ::2, ::2]`: what a stride-2 conv keeps of its stride-1 output (and a fixed front end's
    stride, since a fixed layer cannot become strided)."""

    def forward(self, x):  # (B, C, H, W) -> (B, C, ceil(H/2), ceil(W/2))
        return x[..., ::2, ::2]


# ---- the lecture's methods, in the order its slides take them --------------------------------------

register_downsample(Downsample("max", "Max pooling 2x2", "max pooling", "#1f77b4",
                               lambda: nn.MaxPool2d(2, 2), ((2, 2),)))
register_downsample(Downsample("avg", "Average pooling 2x2", "average pooling", "#ff7f0e",
                               lambda: nn.AvgPool2d(2, 2), ((2, 2),)))
# x0.5 bilinear (align_corners=False) reads the 2 neighbouring pixels around each centre; nearest reads 1.
register_downsample(Downsample("bilinear", "Bilinear interpolation x0.5", "bilinear x0.5", "#2ca02c",
                               lambda: Interpolate(0.5, "bilinear"), ((2, 2),),
                               twin=("avg", "bilinear x0.5 (align_corners=False) reads each output at the centre "
                                            "of a 2x2 block with weight 1/4 on each of its pixels: average pooling")))
register_downsample(Downsample("nearest", "Nearest interpolation x0.5", "nearest x0.5", "#9467bd",
                               lambda: Interpolate(0.5, "nearest"), ((1, 2),)))
register_downsample(Downsample("stride", "Strided convolution (stride 2)", "the strided conv", "#d62728",
                               EveryOther, ((1, 2),), strides_conv=True,
                               twin=("nearest", "the strided conv computes the conv at rows and columns 0, 2, 4, "
                                                "..., exactly the pixels nearest x0.5 keeps")))
# The dense 2x2 max (stride 1), then the 3x3 blur with stride 2 over a map padded by 1 (reflected).
register_downsample(Downsample("blurmax", "Max pooling + blur (anti-aliased, Zhang 2019)", "blurmax", "#17becf",
                               BlurMaxPool, ((2, 1), (3, 2, 1))))
