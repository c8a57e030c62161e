"""Feature maps of named layers, and every registered downsampling method applied to the same map.

Models are shared between Streamlit sessions (one cached copy per process), so nothing here mutates
them: for an `nn.Sequential` the layers are run one by one and the wanted outputs kept (no hooks at
all); any other module gets forward hooks under a lock, removed in `finally`.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .downsample import apply_downsample, get_downsample, list_downsamples, twin_reason

_HOOK_LOCK = threading.Lock()


@torch.inference_mode()
def feature_maps(model: nn.Module, x: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
    """Outputs of the named layers for a batch `x` (B, C, H, W), in eval mode, as CPU tensors."""
    wanted = set(layers)
    if isinstance(model, nn.Sequential):
        missing = wanted - {n for n, _ in model.named_children()}
        if missing:
            raise ValueError(f"no layer named {', '.join(sorted(missing))}")
        out = {}
        for name, layer in model.named_children():
            x = layer(x)
            if name in wanted:
                out[name] = x.detach().cpu()
            if len(out) == len(wanted):
                break
        return out
    return _feature_maps_hooked(model, x, wanted)


def _feature_maps_hooked(model, x, wanted):
    modules = dict(model.named_modules())
    missing = wanted - set(modules)
    if missing:
        raise ValueError(f"no layer named {', '.join(sorted(missing))}")
    out, hooks = {}, []
    with _HOOK_LOCK:
        was_training = model.training
        try:
            model.eval()
            for name in wanted:
                hooks.append(modules[name].register_forward_hook(
                    lambda m, i, o, name=name: out.__setitem__(name, o.detach().cpu())))
            model(x)
        finally:
            for h in hooks:
                h.remove()
            model.train(was_training)
    return out


def activation_after(model: nn.Sequential, layer: str) -> str:
    """The layer whose output is `layer`'s activation: the ReLU right after a conv, if there is one."""
    names = [n for n, _ in model.named_children()]
    i = names.index(layer)
    if i + 1 < len(names) and isinstance(model[i + 1], nn.ReLU):
        return names[i + 1]
    return layer


@dataclass
class DownsampleComparison:
    layer: str
    fmap: torch.Tensor  # (C, H, W): the chosen conv layer's activation (after its ReLU)
    downsampled: dict[str, torch.Tensor]  # method -> (C, h, w)


@torch.inference_mode()
def compare_downsampling(model: nn.Sequential, x: torch.Tensor, layer: str,
                         methods: list[str] | None = None) -> DownsampleComparison:
    """One image's conv activation, then that same map downsampled by every method (default: every
    registered one).

    A method that `strides_conv` is computed for real: the chosen conv re-run with stride 2 on its own
    input (then ReLU), which equals the stride-1 map sampled at every other pixel.
    """
    names = [n for n, _ in model.named_children()]
    conv = model[names.index(layer)]
    if not isinstance(conv, nn.Conv2d):
        raise ValueError(f"{layer} is not a conv layer")
    prev = names[names.index(layer) - 1] if names.index(layer) > 0 else None
    act = activation_after(model, layer)
    maps = feature_maps(model, x, [act] + ([prev] if prev else []))
    conv_in = maps[prev] if prev else x.cpu()
    fmap = maps[act][0]
    out = {}
    for m in list_downsamples() if methods is None else methods:
        if get_downsample(m).strides_conv:
            w, b = conv.weight.float().cpu(), conv.bias.float().cpu() if conv.bias is not None else None
            y = F.conv2d(conv_in.float(), w, b, stride=2, padding=conv.padding)
            out[m] = (F.relu(y) if act != layer else y)[0]
        else:
            out[m] = apply_downsample(fmap[None], m)[0]
    return DownsampleComparison(layer, fmap, out)


def difference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a - b, cropped to the common size (strided conv keeps ceil(H/2) rows on odd maps)."""
    h, w = min(a.shape[-2], b.shape[-2]), min(a.shape[-1], b.shape[-1])
    return a[..., :h, :w] - b[..., :h, :w]


def worked_example(grid: np.ndarray, kernel: np.ndarray, bias: float = 0.0) -> dict[str, np.ndarray]:
    """The lecture's 4x4 -> 2x2 example (v1..v16 -> m1..m4) for every registered method, on a user's grid.

    A method that `strides_conv` is the lecture's "convolve with stride=2" with a 2x2 kernel w1..w4 and
    bias b; every other method is its own layer on the grid.
    """
    x = torch.as_tensor(np.asarray(grid, np.float32))[None, None]  # (1, 1, 4, 4)
    k = torch.as_tensor(np.asarray(kernel, np.float32))[None, None]  # (1, 1, 2, 2)
    strided = F.conv2d(x, k, torch.tensor([float(bias)]), stride=2)[0, 0].numpy()
    return {m: strided if get_downsample(m).strides_conv else apply_downsample(x, m)[0, 0].numpy()
            for m in list_downsamples()}


# What each of the lecture's five methods computes on one 2x2 block, as the torch call the networks use.
WORKED_NOTES = {"max": "`nn.MaxPool2d(2, 2)`: the largest value of each 2x2 block.",
                "avg": "`nn.AvgPool2d(2, 2)`: the mean of each 2x2 block.",
                "bilinear": "`F.interpolate(scale_factor=0.5, mode='bilinear', align_corners=False)` samples "
                            "at the centre of each 2x2 block, half-way between 4 pixels: on even sizes it "
                            "is exactly average pooling.",
                "nearest": "`F.interpolate(scale_factor=0.5, mode='nearest')` keeps the top-left pixel of "
                           "each block (source index floor(2i)) and throws the other three away.",
                "stride": "`nn.Conv2d(1, 1, kernel_size=2, stride=2)`: a learned weighted sum of each block."}


def worked_example_remark(results: dict[str, np.ndarray]) -> str | None:
    """What it means when the strided convolution's m1..m4 equal another method's (None when they do not)."""
    if np.allclose(results["stride"], results["avg"]):
        return ("With these weights the strided convolution computes exactly average pooling: pooling "
                "is a strided convolution with a fixed kernel, which training is free to learn or not.")
    if np.allclose(results["stride"], results["nearest"]):
        return ("With these weights the strided convolution computes exactly nearest x0.5: both keep the "
                "top-left pixel of each block.")
    return None


def difference_sentence(delta: np.ndarray, shape_a: tuple, shape_b: tuple, a: str | None = None,
                        b: str | None = None) -> str:
    """How to read the map of A - B (`delta`, cropped to the common size of A's and B's shapes); when it is 0
    everywhere, why (methods `a` and `b` may be twins: `downsample.twin_reason`)."""
    if float(np.abs(delta).mean()) == 0:
        if a is not None and a == b:
            return "A and B are the same method: the difference is 0 everywhere."
        why = twin_reason(a, b) if a and b else None
        return (f"The two methods give identical maps here, by construction (the map they halve has even "
                f"sides): {why}." if why else
                "The two methods give identical maps on this image.")
    return (f"Blue: A larger, red: B larger (colour scale centred on 0). Shapes {tuple(shape_a)} and "
            f"{tuple(shape_b)}, compared on the common {delta.shape[-2]}x{delta.shape[-1]}.")


WORKED_PATTERNS = ("1..16", "random integers", "checkerboard", "one bright pixel")
WORKED_BLOCKS = ((0, 1, 4, 5), (2, 3, 6, 7), (8, 9, 12, 13), (10, 11, 14, 15))  # v indices (from 0) of m1..m4


def worked_pattern(name: str) -> np.ndarray:
    """A 4x4 start for the worked example: v1..v16 in order, seeded random integers, a checkerboard, one pixel."""
    if name == "1..16":
        return np.arange(1, 17, dtype=float).reshape(4, 4)
    if name == "random integers":
        return np.random.default_rng(0).integers(0, 10, size=(4, 4)).astype(float)
    if name == "checkerboard":
        return (np.indices((4, 4)).sum(0) % 2 * 9).astype(float)
    if name == "one bright pixel":
        grid = np.zeros((4, 4))
        grid[1, 2] = 9.0
        return grid
    raise ValueError(f"unknown pattern {name!r}; patterns: {', '.join(WORKED_PATTERNS)}")


def worked_example_latex(method: str, grid: np.ndarray, kernel: np.ndarray, bias: float,
                         out: np.ndarray) -> str:
    """m1..m4 of `method` written out: the symbols, then this grid's numbers, then the result `out` (2x2)."""
    v, w, lines = np.asarray(grid).reshape(-1), np.asarray(kernel).reshape(-1), []
    for i, b in enumerate(WORKED_BLOCKS):
        sym = ", ".join(f"v_{{{j + 1}}}" for j in b)
        num = ", ".join(f"{v[j]:g}" for j in b)
        if method == "max":
            rhs = rf"\max({sym}) = \max({num})"
        elif method in ("avg", "bilinear"):
            rhs = (rf"\tfrac14({' + '.join(f'v_{{{j + 1}}}' for j in b)}) = "
                   rf"\tfrac14({' + '.join(f'{v[j]:g}' for j in b)})")
        elif method == "nearest":
            rhs = rf"v_{{{b[0] + 1}}}"
        elif method == "stride":
            rhs = (" + ".join(rf"w_{{{k + 1}}} v_{{{j + 1}}}" for k, j in enumerate(b)) + " + b = "
                   + " + ".join(rf"{w[k]:g} \cdot {v[j]:g}" for k, j in enumerate(b)) + rf" + {bias:g}")
        else:
            raise ValueError(f"no worked example for {method!r}")
        lines.append(rf"m_{{{i + 1}}} &= {rhs} = {np.asarray(out).reshape(-1)[i]:.4g}")
    return r"\begin{aligned}" + r"\\ ".join(lines) + r"\end{aligned}"
