"""Look inside one computation: one output pixel of a trained net worked out by hand, beside the value the
network computed itself.

For a conv layer the pixel is the window of the layer's input times the kernel, summed, plus the bias, through
the ReLU that follows; for a downsampling layer it is the window's own rule (max pooling: the winner; average
pooling: the mean; bilinear x0.5: four weights; nearest x0.5 and the stride's every-other-pixel layer: one
pixel; blurmax: a 3x3 blur of dense 2x2 maxima). The hand computation is float64 numpy on the layer's input and
never calls the layer, so its equality with the network's own value (read by a forward hook) is a check of the
rule, not a copy of the answer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from .downsample import BlurMaxPool, EveryOther, Interpolate
from .features import HOOK_LOCK, activation_after

POOLS = (nn.MaxPool2d, nn.AvgPool2d, Interpolate, EveryOther, BlurMaxPool)  # layers with a hand rule here


@dataclass(frozen=True)
class LayerIO:
    """One layer's input and what the network passed on from it, for one image, both read by forward hooks."""
    layer: str
    input: np.ndarray  # (C_in, H, W): what the layer was given
    output: np.ndarray  # (C, h, w): its output, after the ReLU that follows it if one does
    relu: bool  # a ReLU follows the layer


@dataclass(frozen=True)
class Pixel:
    """One output pixel as a window of the layer's input and the weights the layer's rule gives it."""
    layer: str
    rule: str  # "conv", "max", "avg", "bilinear", "nearest", "every other", "blurmax"
    channel: int  # the output pixel: channel, row, column
    row: int
    col: int
    in_channels: tuple[int, ...]  # the input channels the window reads
    rows: tuple[int, ...]  # the input row of each window row (outside 0..H-1: padding)
    cols: tuple[int, ...]
    inputs: np.ndarray  # (len(in_channels), len(rows), len(cols)) the values under the window
    weights: np.ndarray  # the same shape: the kernel, or the rule's weights (max pooling: 1 at the winner)
    combine: str  # "sum" (of inputs x weights) or "max" (of the inputs)
    total: float  # that sum or max
    bias: float
    relu: bool
    hooked: float  # the value the network computed, from the forward hook
    parts: tuple["Pixel", ...] = ()  # blurmax: the dense 2x2 maxima its blur weighs (their `rows` are input rows)
    stride: int = 1  # input pixels between the windows of neighbouring output pixels

    @property
    def value(self) -> float:
        """total + bias, through the ReLU when one follows: the hand computation's answer."""
        z = self.total + self.bias
        return max(z, 0.0) if self.relu else z

    @property
    def products(self) -> np.ndarray:
        return self.inputs * self.weights

    @property
    def winner(self) -> tuple[int, int, int] | None:
        """Max pooling: the (channel, row, col) of the input pixel that won (the first largest, as torch picks)."""
        if self.combine != "max":
            return None
        k, i, j = np.unravel_index(int(np.argmax(self.inputs)), self.inputs.shape)
        return self.in_channels[k], self.rows[i], self.cols[j]

    def reads(self, size: tuple[int, int]) -> set[tuple[int, int]]:
        """The (row, col) input pixels inside the map that the value depends on (padding left out)."""
        if self.parts:
            return set().union(*(p.reads(size) for p in self.parts))
        h, w = size
        return {(r, c) for r in self.rows for c in self.cols if 0 <= r < h and 0 <= c < w}


def inside_layers(model: nn.Sequential) -> list[str]:
    """The layers whose pixels `explain` works out: every conv (one group, zero padding) and downsampling layer."""
    return [n for n, m in model.named_children() if _explainable(m)]


def _explainable(m: nn.Module) -> bool:
    if isinstance(m, nn.Conv2d):
        return m.groups == 1 and m.padding_mode == "zeros"
    return isinstance(m, POOLS)


def layer_io(model: nn.Sequential, x: torch.Tensor, layer: str) -> LayerIO:
    """Run `model` once on `x` (1, C, H, W) with forward hooks on `layer` and the ReLU after it.

    The model may be shared by every session (one cached copy): the hooks go on under `HOOK_LOCK` and come
    off in `finally`, and eval mode is restored to what it was."""
    names = [n for n, _ in model.named_children()]
    module, after = model[names.index(layer)], activation_after(model, layer)
    seen: dict[str, torch.Tensor] = {}

    def keep(key, which):
        def hook(m, i, o):  # returns None: a hook that returned a tensor would replace the layer's output
            seen[key] = (i[0] if which == "in" else o).detach().clone()
        return hook

    with HOOK_LOCK:
        was_training, hooks = model.training, []
        try:
            model.eval()
            hooks.append(module.register_forward_hook(keep("input", "in")))
            hooks.append(model[names.index(after)].register_forward_hook(keep("output", "out")))
            with torch.inference_mode():
                model(x)
        finally:
            for h in hooks:
                h.remove()
            model.train(was_training)
    as_np = {k: v[0].double().cpu().numpy() for k, v in seen.items()}  # (C, H, W) each
    return LayerIO(layer, as_np["input"], as_np["output"], after != layer)


def strongest(io: LayerIO, channel: int) -> tuple[int, int]:
    """(row, col) of the largest value of one output channel (the first, row by row)."""
    i, j = np.unravel_index(int(np.argmax(io.output[channel])), io.output[channel].shape)
    return int(i), int(j)


def explain(model: nn.Sequential, io: LayerIO, channel: int, row: int, col: int) -> Pixel:
    """Output pixel (channel, row, col) of `io.layer`, computed by hand from `io.input` with the layer's rule."""
    c, h, w = io.output.shape
    if not (0 <= channel < c and 0 <= row < h and 0 <= col < w):
        raise ValueError(f"pixel ({channel}, {row}, {col}) is outside {io.layer}'s {c}x{h}x{w} output")
    m = getattr(model, io.layer)
    rule = next((f for kind, f in _RULES if isinstance(m, kind)), None)
    if rule is None or not _explainable(m):
        raise ValueError(f"{io.layer} ({type(m).__name__}) has no hand rule here")
    hooked = float(io.output[channel, row, col])
    return rule(m, io, channel, row, col, hooked)


# ---- the rules ----------------------------------------------------------------------------------

def _window(x: np.ndarray, rows, cols, fill: float = 0.0) -> np.ndarray:
    """x[:, rows][:, :, cols] (C, len(rows), len(cols)), with `fill` where a row or column is outside x."""
    _, h, w = x.shape
    out = np.full((x.shape[0], len(rows), len(cols)), fill)
    for a, r in enumerate(rows):
        for b, q in enumerate(cols):
            if 0 <= r < h and 0 <= q < w:
                out[:, a, b] = x[:, r, q]
    return out


def _taps(out_index: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> tuple[int, ...]:
    """The input rows a sliding window reads for output row `out_index` (negative: padding)."""
    return tuple(out_index * stride - padding + dilation * t for t in range(kernel))


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def _conv(m: nn.Conv2d, io, c, i, j, hooked) -> Pixel:
    (kh, kw), (sh, sw), (dh, dw) = m.kernel_size, m.stride, m.dilation
    if isinstance(m.padding, str):  # "same" (stride 1) pads (k - 1) // 2 first; "valid" pads nothing
        ph, pw = ((dh * (kh - 1)) // 2, (dw * (kw - 1)) // 2) if m.padding == "same" else (0, 0)
    else:
        ph, pw = m.padding
    rows, cols = _taps(i, kh, sh, ph, dh), _taps(j, kw, sw, pw, dw)
    inputs = _window(io.input, rows, cols)  # (C_in, kh, kw), zeros where the window hangs over the padding
    weights = m.weight[c].detach().double().cpu().numpy()  # (C_in, kh, kw)
    bias = float(m.bias[c].detach()) if m.bias is not None else 0.0
    return Pixel(io.layer, "conv", c, i, j, tuple(range(inputs.shape[0])), rows, cols, inputs, weights, "sum",
                 float((inputs * weights).sum()), bias, io.relu, hooked, stride=sh)


def _max(m: nn.MaxPool2d, io, c, i, j, hooked) -> Pixel:
    (k, _), (s, _), (p, _), (d, _) = (_pair(v) for v in (m.kernel_size, m.stride or m.kernel_size, m.padding,
                                                          m.dilation))
    rows, cols = _taps(i, k, s, p, d), _taps(j, k, s, p, d)
    inputs = _window(io.input[c:c + 1], rows, cols, fill=-math.inf)  # max pooling pads with -inf
    return _max_pixel(io, c, i, j, rows, cols, inputs, hooked, s)


def _max_pixel(io, c, i, j, rows, cols, inputs, hooked, stride) -> Pixel:
    weights = np.zeros_like(inputs)
    weights.flat[int(np.argmax(inputs))] = 1.0  # the winner
    return Pixel(io.layer, "max", c, i, j, (c,), tuple(rows), tuple(cols), inputs, weights, "max",
                 float(inputs.max()), 0.0, io.relu, hooked, stride=stride)


def _avg(m: nn.AvgPool2d, io, c, i, j, hooked) -> Pixel:
    (k, _), (s, _), (p, _) = (_pair(v) for v in (m.kernel_size, m.stride or m.kernel_size, m.padding))
    rows, cols = _taps(i, k, s, p), _taps(j, k, s, p)
    inputs = _window(io.input[c:c + 1], rows, cols)
    if m.divisor_override:
        n = m.divisor_override
    elif m.count_include_pad:
        n = k * k
    else:  # only the pixels inside the map count
        n = sum(0 <= r < io.input.shape[1] and 0 <= q < io.input.shape[2] for r in rows for q in cols)
    weights = np.full_like(inputs, 1.0 / n)
    return Pixel(io.layer, "avg", c, i, j, (c,), rows, cols, inputs, weights, "sum", float((inputs * weights).sum()),
                 0.0, io.relu, hooked, stride=s)


def linear_taps(out_index: int, in_size: int, scale: float) -> tuple[tuple[int, int], tuple[float, float]]:
    """The two input pixels and weights of bilinear interpolation along one axis, align_corners=False.

    PyTorch's rule (`area_pixel_compute_source_index`): output pixel i sits at source coordinate
    scale * (i + 0.5) - 0.5, clamped at 0, with scale = 1 / scale_factor when a scale factor is given (as
    cnnviz's `Interpolate` gives it). At x0.5 that is 2i + 0.5: half-way between pixels 2i and 2i + 1."""
    src = max(scale * (out_index + 0.5) - 0.5, 0.0)
    i0 = min(int(src), in_size - 1)
    i1 = i0 + 1 if i0 < in_size - 1 else i0  # the last pixel is its own right neighbour
    frac = src - i0
    return (i0, i1), (1.0 - frac, frac)


def nearest_tap(out_index: int, in_size: int, scale: float) -> int:
    """The one input pixel of nearest interpolation: floor(i * scale), PyTorch's "nearest" (not "nearest-exact")."""
    return min(int(math.floor(out_index * scale)), in_size - 1)


def _interpolate(m: Interpolate, io, c, i, j, hooked) -> Pixel:
    scale = 1.0 / m.scale_factor
    _, h, w = io.input.shape
    if m.mode == "nearest":
        rows, cols = (nearest_tap(i, h, scale),), (nearest_tap(j, w, scale),)
        weights = np.ones((1, 1, 1))
    elif m.mode == "bilinear":
        (rows, wy), (cols, wx) = linear_taps(i, h, scale), linear_taps(j, w, scale)
        weights = np.outer(wy, wx)[None]  # (1, 2, 2): the four weights, summing to 1
    else:
        raise ValueError(f"no hand rule for {m.mode} interpolation")
    inputs = _window(io.input[c:c + 1], rows, cols)
    return Pixel(io.layer, m.mode, c, i, j, (c,), tuple(rows), tuple(cols), inputs, weights, "sum",
                 float((inputs * weights).sum()), 0.0, io.relu, hooked, stride=round(scale))


def _every_other(m: EveryOther, io, c, i, j, hooked) -> Pixel:
    rows, cols = (2 * i,), (2 * j,)
    inputs = _window(io.input[c:c + 1], rows, cols)
    return Pixel(io.layer, "every other", c, i, j, (c,), rows, cols, inputs, np.ones((1, 1, 1)), "sum",
                 float(inputs.sum()), 0.0, io.relu, hooked, stride=2)


def _reflect(index: int, size: int, mode: str) -> int:
    """Where F.pad's "reflect" (the edge pixel not repeated) or "replicate" sends an index outside 0..size-1."""
    if mode == "replicate" or size == 1:
        return min(max(index, 0), size - 1)
    return -index if index < 0 else 2 * (size - 1) - index if index >= size else index


def _blurmax(m: BlurMaxPool, io, c, i, j, hooked) -> Pixel:
    """The dense 2x2 max M (stride 1, an (H-1, W-1) map), padded by one reflected pixel, then the 3x3 blur at
    stride 2: output (i, j) weighs M at rows 2i-1..2i+1 and columns 2j-1..2j+1 (reflected at the border)."""
    _, h, w = io.input.shape
    mh, mw = h - 1, w - 1
    mode = "reflect" if min(mh, mw) > 1 else "replicate"  # BlurMaxPool's own choice for a 1-pixel map
    rows = tuple(_reflect(2 * i - 1 + t, mh, mode) for t in range(3))
    cols = tuple(_reflect(2 * j - 1 + t, mw, mode) for t in range(3))
    parts = tuple(_max_pixel(io, c, r, q, (r, r + 1), (q, q + 1), _window(io.input[c:c + 1], (r, r + 1), (q, q + 1)),
                             math.nan, 1) for r in rows for q in cols)
    inputs = np.array([p.total for p in parts]).reshape(1, 3, 3)  # the nine maxima
    weights = m.kernel[0].detach().double().cpu().numpy()  # (1, 3, 3): [1,2,1] x [1,2,1] / 16
    return Pixel(io.layer, "blurmax", c, i, j, (c,), rows, cols, inputs, weights, "sum",
                 float((inputs * weights).sum()), 0.0, io.relu, hooked, parts, stride=2)


_RULES = ((nn.Conv2d, _conv), (nn.MaxPool2d, _max), (nn.AvgPool2d, _avg), (Interpolate, _interpolate),
          (EveryOther, _every_other), (BlurMaxPool, _blurmax))


# ---- the computation in words and symbols -------------------------------------------------------------

def _n(x: float) -> str:
    return "-\\infty" if x == -math.inf else f"{x:.4f}"


def equation_latex(p: Pixel) -> str:
    """The pixel's computation with its numbers, line by line, ending in the value (for st.latex)."""
    values = [_n(v) for v in p.inputs.ravel()]
    if p.rule == "conv":
        lines = [rf"S = \sum_{{c,u,v}} x_{{c,u,v}}\, w_{{c,u,v}} = {_n(p.total)}"
                 rf"\quad\text{{({p.inputs.size} products)}}",
                 rf"z = S + b = {_n(p.total)} + ({_n(p.bias)}) = {_n(p.total + p.bias)}"]
    elif p.rule == "max":
        lines = [rf"\max({', '.join(values)}) = {_n(p.total)}"]
    elif p.rule == "blurmax":
        terms = [rf"\tfrac{{{16 * w:.0f}}}{{16}} \cdot {_n(m.total)}" for w, m in zip(p.weights.ravel(), p.parts)]
        rows = [" + ".join(terms[k:k + 3]) for k in (0, 3, 6)]  # one line per row of the 3x3 blur
        lines = [r"M_{r,c} = \max(\text{the 2x2 block at row } r \text{, column } c)",
                 rf"{rows[0]}", rf"\quad + {rows[1]}", rf"\quad + {rows[2]} = {_n(p.total)}"]
    elif p.rule in ("nearest", "every other"):
        lines = [rf"x_{{{p.rows[0]},{p.cols[0]}}} = {_n(p.total)}"]
    else:  # avg, bilinear: a weighted sum of the window
        terms = " + ".join(rf"{w:.4g} \cdot {x}" for w, x in zip(p.weights.ravel(), values))
        lines = [rf"{terms} = {_n(p.total)}"]
    if p.relu:
        lines.append(rf"\mathrm{{ReLU}}({_n(p.total + p.bias)}) = \max(0, {_n(p.total + p.bias)}) = {_n(p.value)}")
    return r"\begin{aligned}" + r"\\ ".join(f"&{line}" for line in lines) + r"\end{aligned}"


RULES = {"conv": "the window times the kernel, summed, plus the bias",
         "max": "the largest value of the window (its winner, starred)",
         "avg": "the mean of the window",
         "bilinear": "four pixels weighted by bilinear interpolation (align_corners=False: the output pixel sits "
                     "half-way between them, so each weighs 1/4 away from the border)",
         "nearest": "one pixel, floor(2i) (nearest interpolation keeps the top-left pixel of each block)",
         "every other": "one pixel, x[2i, 2j] (what a stride-2 conv keeps of its stride-1 output)",
         "blurmax": "a 3x3 blur ([1,2,1]x[1,2,1]/16) of nine dense 2x2 maxima (each starred)"}


def pixel_sentence(p: Pixel, size: tuple[int, int]) -> str:
    """Where the pixel's window sits and what its rule does, in one sentence."""
    h, w = size
    reads = p.reads(size)
    rr, cc = [r for r, _ in reads], [c for _, c in reads]
    channels = (f"all {len(p.in_channels)} input channel(s)" if p.rule == "conv"
                else f"input channel {p.in_channels[0]} only")
    span = f"rows {min(rr)}..{max(rr)} and columns {min(cc)}..{max(cc)}" if reads else "only padding"
    padded = (" (the rest of the window lies in the zero padding)" if p.rule == "conv" and
              len(reads) < len(p.rows) * len(p.cols) else "")
    return (f"Output pixel (channel {p.channel}, row {p.row}, column {p.col}) of {p.layer} reads {span} of "
            f"{channels}{padded}; neighbouring output pixels are {p.stride} input pixel(s) apart. Its rule: "
            f"{RULES[p.rule]}.")


def panels(p: Pixel, in_channel: int) -> list[dict]:
    """The grids to show beside the equation, each a dict of title, (kh, kw) values, signed colours, the marked
    cell and the input rows and columns the cells come from: the window of input channel `in_channel`, the kernel
    (or the rule's weights) and their products; max pooling shows its window with the winner marked."""
    k = p.in_channels.index(in_channel) if in_channel in p.in_channels else 0
    name, at = f"input channel {p.in_channels[k]}", {"rows": p.rows, "cols": p.cols}
    if p.combine == "max":
        i, j = np.unravel_index(int(np.argmax(p.inputs[k])), p.inputs[k].shape)
        return [dict(title=f"the window ({name}), winner boxed", values=p.inputs[k], signed=True,
                     mark=(int(i), int(j)), **at)]
    if p.rule == "blurmax":  # its cells are the maxima M, at the top-left corner of their 2x2 block
        return [dict(title="M: the nine dense 2x2 maxima", values=p.inputs[0], signed=True, **at),
                dict(title="the blur's weights", values=p.weights[0], signed=False, **at),
                dict(title="M times the weights", values=p.products[0], signed=True, **at)]
    what = "kernel w" if p.rule == "conv" else "the rule's weights"
    return [dict(title=f"window x ({name})", values=p.inputs[k], signed=True, **at),
            dict(title=f"{what} ({name})" if p.rule == "conv" else what, values=p.weights[k],
                 signed=p.rule == "conv", **at),
            dict(title="x times w", values=p.products[k], signed=True, **at)]


def channel_sums(p: Pixel) -> list[dict]:
    """A conv's sum split by input channel: what each input channel adds to S."""
    return [{"input channel": c, "sum of its products": float(p.products[k].sum())} for k, c in enumerate(p.in_channels)]
