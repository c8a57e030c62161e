"""Convolution arithmetic: how big a layer's output is, where its window sits, and what it sees.

The lecture's output-size formula S_o = floor((S_D - K + 2P) / S) + 1, the same number measured by a
real `nn.Conv2d`, the window behind each output cell, and receptive fields by the closed form
r_out = r_in + (k - 1) * j_in, j_out = j_in * s, with j the distance in input pixels between
neighbouring outputs, and start_out = start_in - p * j_in the input coordinate of the first pixel unit 0
sees (negative: it reaches into the padding). A layer's (kernel, stride[, padding]) steps come from its
conv parameters, from the downsampling registry for downsampling layers, or from the layer's own
`rf_steps`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from .downsample import downsample_of
from .models import build_model, device_of, get_arch


def conv_output_size(size: int, kernel: int, padding: int = 0, stride: int = 1, dilation: int = 1) -> int:
    """The lecture's formula S_o = floor((S_D - K + 2P) / S) + 1 (dilation generalises K)."""
    k = dilation * (kernel - 1) + 1
    return math.floor((size - k + 2 * padding) / stride) + 1


# The lecture's output-size formula as the pages typeset it (st.latex).
OUTPUT_SIZE_LATEX = r"S_o = \left\lfloor \frac{S_D - K + 2P}{S} \right\rfloor + 1"


def output_size_latex(size: int, kernel: int, padding: int, stride: int) -> str:
    """The formula filled in with these numbers, step by step, ending in `conv_output_size`'s value."""
    top = size - kernel + 2 * padding
    return (rf"S_o = \left\lfloor \frac{{{size} - {kernel} + 2 \times {padding}}}{{{stride}}} \right\rfloor + 1"
            rf" = \left\lfloor \frac{{{top}}}{{{stride}}} \right\rfloor + 1"
            rf" = {conv_output_size(size, kernel, padding, stride)}")


@torch.no_grad()
def measure_conv_output(size: int, kernel: int, padding: int = 0, stride: int = 1) -> int:
    """S_o measured: run a real `nn.Conv2d` on a (1, 1, size, size) tensor and read the output's size.

    Raises ValueError with one sentence when the numbers are impossible (no output pixel).
    """
    for name, v, lo in (("input size S_D", size, 1), ("kernel K", kernel, 1), ("padding P", padding, 0),
                        ("stride S", stride, 1)):
        if int(v) != v or v < lo:
            raise ValueError(f"{name} must be a whole number >= {lo}, not {v}")
    if size + 2 * padding < kernel:
        raise ValueError(f"the {kernel}x{kernel} kernel does not fit in the padded input "
                         f"({size} + 2x{padding} = {size + 2 * padding} pixels), so there is no output pixel")
    conv = nn.Conv2d(1, 1, kernel, stride=stride, padding=padding, bias=False)
    return int(conv(torch.zeros(1, 1, size, size)).shape[-1])


@dataclass(frozen=True)
class Window:
    """Where the kernel sits for one output cell, in padded-input coordinates (row, col of top left)."""
    out_row: int
    out_col: int
    row: int
    col: int
    kernel: int


def window_at(index: int, size: int, kernel: int, padding: int, stride: int) -> Window:
    """The kernel's window producing output cell `index` (row-major, 0-based, like m_1, m_2, ...)."""
    n = conv_output_size(size, kernel, padding, stride)
    if n < 1:
        raise ValueError("no output cell: the kernel does not fit in the padded input")
    if not 0 <= index < n * n:
        raise ValueError(f"output cell {index} is outside the {n}x{n} output")
    r, c = divmod(index, n)
    return Window(r, c, r * stride, c * stride, kernel)


def window_formula(module: nn.Module, size: int) -> str:
    """The output-size formula filled in with a windowed layer's numbers (convs, pooling), else ""."""
    try:
        k, s, p = (v if isinstance(v, int) else v[0] for v in (module.kernel_size, module.stride, module.padding))
    except AttributeError:  # no sliding window: interpolation, blur, ...
        return ""
    if not all(isinstance(v, int) for v in (k, s, p)):  # padding="same" has no number to show
        return ""
    return f"floor(({size} - {k} + 2*{p}) / {s}) + 1 = {conv_output_size(size, k, p, s)}"


def layer_steps(module: nn.Module, in_hw: int | None, out_hw: int | None) -> list[tuple[float, float, float]]:
    """(kernel, stride, padding) steps a layer applies along one axis; [] for layers that keep the geometry."""
    entry = downsample_of(module)
    if entry is not None:
        steps = list(entry.steps)
    elif isinstance(module, nn.Conv2d):
        k = module.dilation[0] * (module.kernel_size[0] - 1) + 1
        steps = [(k, module.stride[0], _conv_padding(module, k))]
    elif isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):  # a pooling layer built outside the registry
        k, s, p, d = (_first(v) for v in (module.kernel_size, module.stride, module.padding,
                                          getattr(module, "dilation", 1)))  # AvgPool2d has no dilation
        steps = [(d * (k - 1) + 1, s, p)]
    else:
        rf_steps = getattr(module, "rf_steps", None)  # layers that know their own geometry (Resize, front ends)
        steps = rf_steps(in_hw, out_hw) if rf_steps is not None and in_hw and out_hw else []
    return [(k, s, rest[0] if rest else 0) for k, s, *rest in steps]  # a registry step may omit its padding


def _first(v) -> int:
    return v if isinstance(v, int) else v[0]


def _conv_padding(conv: nn.Conv2d, k: int) -> int:
    """Rows of padding before the first row: a number, or what "same" (stride 1) and "valid" mean."""
    if isinstance(conv.padding, str):
        return (k - 1) // 2 if conv.padding == "same" else 0
    return conv.padding[0]


def receptive_fields(model: nn.Sequential, input_shape: tuple[int, int, int]) -> list[dict]:
    """Per top-level layer: receptive field `rf`, jump and `start` in input pixels (unit u of the layer sees
    input rows start + u * jump .. start + u * jump + rf - 1, columns alike); after Flatten, the whole input."""
    rows, r, j, start, full = [], 1.0, 1.0, 0.0, False
    x = torch.zeros(1, *input_shape, device=device_of(model))  # (1, C, H, W), through the layers one by one
    with torch.no_grad():
        for name, layer in model.named_children():
            in_hw = x.shape[-1] if x.dim() == 4 else None
            x = layer(x)
            out_hw = x.shape[-1] if x.dim() == 4 else None
            if isinstance(layer, (nn.Flatten, nn.Linear)) or x.dim() != 4:
                full = True
            if not full:
                for k, s, p in layer_steps(layer, in_hw, out_hw):
                    r, start, j = r + (k - 1) * j, start - p * j, j * s
            rows.append({"name": name, "rf": None if full else int(round(r)), "jump": None if full else j,
                         "start": None if full else start, "whole_input": full})
    return rows


def size_remarks(size: int, kernel: int, padding: int, stride: int) -> list[str]:
    """What the floor drops when the kernel does not fit evenly, and the 'same' padding of an odd kernel."""
    out, rest = [], (size - kernel + 2 * padding) % stride
    if rest:
        out.append(f"{size - kernel + 2 * padding} is not a multiple of {stride}: the floor drops the last "
                   f"{rest} row(s) and column(s) the kernel cannot reach.")
    if kernel % 2 == 1:
        out.append(f"With S=1, P=(K-1)/2={(kernel - 1) // 2} keeps the resolution (the lecture's 'same' padding).")
    return out


@dataclass(frozen=True)
class Field:
    """The input pixels one unit can see (its theoretical receptive field): rows top..bottom and columns
    left..right, inclusive. It may reach past the input's edge into the padding; `clipped` keeps what is inside."""
    top: int
    left: int
    bottom: int
    right: int

    def clipped(self, height: int, width: int) -> "Field":
        return Field(max(self.top, 0), max(self.left, 0), min(self.bottom, height - 1), min(self.right, width - 1))

    @property
    def size(self) -> tuple[int, int]:
        return self.bottom - self.top + 1, self.right - self.left + 1


def unit_field(rows: list[dict], layer: str, row: int, col: int) -> Field:
    """The theoretical receptive field of unit (row, col) of `layer`, from `receptive_fields`' rows: it
    starts at start + u * jump and is rf pixels long on each axis (square kernels and strides)."""
    found = next((r for r in rows if r["name"] == layer), None)
    if found is None or found["whole_input"]:
        raise ValueError(f"{layer} has no spatial map: after Flatten every unit sees the whole input")
    rf, jump, start = found["rf"], found["jump"], found["start"]
    top, left = int(round(start + row * jump)), int(round(start + col * jump))
    return Field(top, left, top + rf - 1, left + rf - 1)


def field_sizes(model: nn.Sequential, input_shape: tuple[int, int, int]) -> list[dict]:
    """Receptive field size after each layer that changes it (ReLUs and other same-geometry layers left out),
    up to the classifier: (order, layer, rf, jump) rows for the table and figure of every net and downsampler."""
    rows, last = [], None
    for order, r in enumerate(receptive_fields(model, input_shape)):
        if r["whole_input"]:
            break
        if (r["rf"], r["jump"]) != last:
            rows.append({"order": order, "layer": r["name"], "rf": r["rf"], "jump": r["jump"]})
        last = (r["rf"], r["jump"])
    return rows


def field_sizes_by_method(arch: str, input_shape: tuple[int, int, int],
                          methods: tuple[str, ...] | None = None) -> list[dict]:
    """`field_sizes` of `arch` built with each of `methods` (default: every downsampling it takes), one row per
    method and layer, `method` None for a net that never downsamples. Built on the meta device: shapes only, no
    weights allocated."""
    rows = []
    for method in (get_arch(arch).downsamples if methods is None else methods) or (None,):
        with torch.device("meta"):
            model = build_model(arch, input_shape, downsample=method)
            rows += [{"method": method, **r} for r in field_sizes(model, input_shape)]
    return rows
