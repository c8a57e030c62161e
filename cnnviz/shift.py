"""Is it shift-invariant? Shifted inputs, the downsampled feature maps they give, and their spectra.

A 2x2 downsampler (any of them: pooling, interpolation, stride) keeps every other pixel of *some*
function of its input, so it commutes with shifts by multiples of 2 only: a 2-pixel input shift gives
exactly the 1-pixel-shifted downsampled map (away from the borders), while a 1-pixel shift has no
exact counterpart on the coarse grid. How far each method is from that ideal on odd shifts is its
aliasing; Zhang (2019) blurs before subsampling (`blurmax`) to reduce it.

Conventions, used everywhere below:
- shifts are horizontal and to the right (`dx >= 0`); a left shift is the mirror image;
- vacated columns are filled with a constant (0 = black, Fashion-MNIST's background) or with a copy
  of the image's first column (`fill="edge"`, for photos whose border is not black);
- the reference for a shift `dx` is the unshifted image's downsampled map moved by `dx / 2` pixels:
  exact for even `dx`, linearly interpolated between the two neighbouring whole-pixel shifts for odd
  `dx` (what a band-limited map shifted by half a pixel would approximately be);
- maps are compared on an interior crop that neither the filled columns, the conv's padding, the
  reference's undefined columns nor blurmax's reflected border can reach, so even shifts score exactly
  1 by construction and any shortfall on odd shifts is the method's, not the border's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from .downsample import downsample_of, get_downsample
from .features import activation_after, feature_maps
from .models import build_model

FILLS = ("zero", "edge")  # the page's names for fill=0 and fill="edge"
PROBE_IMAGES = 500  # the probe's default sample of test images (agreement in steps of 0.2 points)
PROBE_MAX_SHIFT = 4  # pixels: two steps of the 2x2 grid, so both an odd and an even shift of it


def default_fill(dataset: str) -> int | str:
    """0 for Fashion-MNIST (its background is exactly 0), the image's own edge column otherwise."""
    return 0 if dataset == "fashion-mnist" else "edge"


def fill_name(fill: int | str) -> str:
    """The page's name ("zero", "edge") of a fill value."""
    return "zero" if fill == 0 else "edge"


def fill_value(name: str) -> int | str:
    """The fill value of one of `FILLS`."""
    return 0 if name == "zero" else "edge"


# ---- shifting --------------------------------------------------------------------------------

def shift_images(x: torch.Tensor, dx: int, fill: int | str = 0) -> torch.Tensor:
    """Shift a batch (B, C, H, W) right by `dx` >= 0 pixels; the `dx` vacated columns get `fill`.

    `fill` is a constant (0..255 for uint8 images) or "edge" (repeat the first column).
    """
    if dx < 0:
        raise ValueError("shifts are to the right (dx >= 0); mirror the image for a left shift")
    if dx == 0:
        return x.clone()
    w = x.shape[-1]
    out = torch.empty_like(x)
    k = min(dx, w)
    out[..., k:] = x[..., : w - k]
    if fill == "edge":
        out[..., :k] = x[..., :1]
    else:
        out[..., :k] = fill
    return out


def shift_map(f: torch.Tensor, s: float) -> torch.Tensor:
    """Shift maps (..., H, W) right by `s` >= 0 pixels, `s` possibly fractional (linear interpolation).

    Vacated columns are NaN: they have no reference value and must be cropped before comparing.
    """
    lo = math.floor(s)
    a = s - lo

    def whole(n):
        out = torch.full_like(f, float("nan"))
        if n < f.shape[-1]:
            out[..., n:] = f[..., : f.shape[-1] - n]
        return out

    return whole(lo) if a == 0 else (1 - a) * whole(lo) + a * whole(lo + 1)


def interior(width: int, max_shift: int, padding: int = 0) -> slice:
    """Columns of a 2x-downsampled map of `width` that every shift up to `max_shift` leaves exact.

    Left: the filled input columns, the conv's zero padding and the reference's empty columns reach
    ceil((max_shift + padding) / 2) coarse columns, and blurmax's reflected border one more. Right:
    blurmax's reflected border (and the conv's padding).
    """
    left = math.ceil((max_shift + padding) / 2) + 1
    right = math.ceil(padding / 2) + 1
    if left >= width - right:
        raise ValueError(f"a {width}-column map has no interior left after a {max_shift}-pixel shift")
    return slice(left, width - right)


def cosine_per_image(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of each image's flattened map (B, ...) -> (B,); two all-zero maps count as 1."""
    a, b = a.flatten(1).double(), b.flatten(1).double()
    dot, na, nb = (a * b).sum(1), a.norm(dim=1), b.norm(dim=1)
    cos = dot / (na * nb).clamp_min(1e-300)
    return torch.where((na == 0) & (nb == 0), torch.ones_like(cos), cos)


# ---- the probe -------------------------------------------------------------------------------

def downsampled_layer(model: nn.Sequential) -> str:
    """The layer whose output is the first downsampled map: `pool1`, or for a strided conv its ReLU."""
    for n, m in model.named_children():
        if downsample_of(m) is not None:  # a layer built from the downsampling registry
            return n
    for n, m in model.named_children():
        if isinstance(m, nn.Conv2d) and m.stride != (1, 1):
            return activation_after(model, n)
    raise ValueError("the model has no downsampling layer and no strided conv")


def _first_conv_padding(model: nn.Sequential) -> int:
    for m in model.children():
        if isinstance(m, nn.Conv2d):
            return int(m.padding[1]) if isinstance(m.padding, tuple) else 0
    return 0


@torch.inference_mode()
def _logits_and_map(model: nn.Sequential, x: torch.Tensor, layer: str, batch: int = 256):
    last = [n for n, _ in model.named_children()][-1]
    logits, maps = [], []
    for i in range(0, len(x), batch):
        out = feature_maps(model, x[i:i + batch], [layer, last])
        logits.append(out[last])
        maps.append(out[layer])
    return torch.cat(logits), torch.cat(maps)  # (N, K), (N, C, h, w)


@torch.inference_mode()
def shift_probe(model: nn.Sequential, x_uint8: torch.Tensor, normalize: Callable[[torch.Tensor], torch.Tensor],
                shifts=(0, 1, 2, 3, 4), fill: int | str = 0, layer: str | None = None) -> list[dict]:
    """For each shift: the fraction of images whose predicted class is unchanged (`agreement`) and
    the mean cosine similarity of the downsampled map to the unshifted one moved by shift/2
    (`similarity`, on the interior crop shared by all `shifts`).

    `x_uint8`: (N, C, H, W) test images; `normalize`: the dataset's uint8 -> model input transform.
    """
    shifts = sorted(int(s) for s in shifts)
    layer = layer or downsampled_layer(model)
    logits0, map0 = _logits_and_map(model, normalize(x_uint8), layer)
    pred0 = logits0.argmax(1)
    cols = interior(map0.shape[-1], max(shifts), _first_conv_padding(model))
    # The reference only needs the columns the crop keeps plus the ones it shifts in from the left.
    map0 = map0[..., : cols.stop]
    rows = []
    for dx in shifts:
        if dx == 0:  # the unshifted image itself: no second forward pass
            logits, fmap = logits0, map0
        else:
            logits, fmap = _logits_and_map(model, normalize(shift_images(x_uint8, dx, fill)), layer)
        ref = shift_map(map0, dx / 2)
        sim = cosine_per_image(fmap[..., cols], ref[..., cols])
        rows.append({"shift": dx, "agreement": (logits.argmax(1) == pred0).double().mean().item(),
                     "similarity": sim.mean().item(), "similarity_min": sim.min().item(),
                     "n": len(x_uint8), "layer": layer, "columns": f"{cols.start}..{cols.stop - 1}"})
    return rows


def shift_probe_runs(models: dict[str, nn.Sequential], x_uint8: torch.Tensor, normalize, shifts=(0, 1, 2, 3, 4),
                     fill: int | str = 0):
    """`shift_probe` for several models (method -> model) as one DataFrame with a `method` column."""
    import pandas as pd

    rows = []
    for method, model in models.items():
        rows += [{"method": method, **r} for r in shift_probe(model, x_uint8, normalize, shifts, fill)]
    return pd.DataFrame(rows)


def probe_images(test_x: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """`n` test images drawn without replacement by a fixed seed (the same images for every model)."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(test_x), generator=g)[: min(n, len(test_x))]
    return test_x[idx.sort().values]


@dataclass
class Verdict:
    sentence: str
    best: str | None  # the most shift-invariant method at the largest shift
    margin_points: float | None  # its agreement minus max pooling's, in percentage points


def _short(method: str) -> str:
    """How a sentence names the method ("max pooling"); an unregistered name as it is."""
    try:
        return get_downsample(method).short
    except ValueError:
        return str(method)


def shift_verdict(df, labels: dict[str, str] | None = None) -> Verdict:
    """One sentence from the probe's numbers: who keeps the most predictions at the largest shift,
    by how many points over plain max pooling, and whose maps stay closest on odd shifts.

    Methods within 1e-9 of the best agreement are reported as a tie (agreement is a count of images,
    so equal counts are common for small N).
    """
    labels = labels or {}
    name = lambda m: labels.get(m) or _short(m)  # noqa: E731
    k = int(df["shift"].max())
    at_k = df[df["shift"] == k].set_index("method")["agreement"]
    if at_k.empty or k == 0:
        return Verdict("Choose a largest shift of at least 1 pixel to compare the methods.", None, None)
    top = float(at_k.max())
    tied = [str(m) for m in at_k.index if at_k[m] >= top - 1e-9]
    best = next((m for m in tied if m != "max"), tied[0])
    n = f" of the {int(df['n'].iloc[0])} images" if "n" in df.columns else " of the images"
    who = name(tied[0]) if len(tied) == 1 else ", ".join(map(name, tied[:-1])) + " and " + name(tied[-1])
    text = (f"At a {k}-pixel shift, {who} {'keeps' if len(tied) == 1 else 'tie for'} the most predictions "
            f"unchanged ({100 * top:.1f}%{n})")
    margin = None
    if "max" in at_k.index:
        margin = 100 * (top - at_k["max"])
        if "max" in tied:
            text += "; no method beats max pooling at this shift"
        else:
            text += f", {margin:.1f} percentage points more than max pooling ({100 * at_k['max']:.1f}%)"
    else:
        text += " (no max pooling run to compare with)"
    odd = df[df["shift"] % 2 == 1]
    if not odd.empty:
        sims = odd.groupby("method")["similarity"].mean()
        closest = str(sims.idxmax())
        text += (f". On odd shifts, where no 2x2 downsampler can be exactly equivariant, {name(closest)}'s maps "
                 f"stay closest to the shifted reference (mean cosine {sims[closest]:.3f}")
        text += f" vs {sims['max']:.3f} for max pooling)." if "max" in sims.index and closest != "max" else ")."
    else:
        text += "."
    return Verdict(text, best, margin)


# ---- spectra: aliasing made visible ----------------------------------------------------------

def spectrum(fmap: torch.Tensor) -> np.ndarray:
    """log(1 + |FFT|) of one map (H, W), zero frequency in the centre (fftshift), mean removed so the
    constant part does not swamp the picture."""
    f = fmap.detach().double()
    mag = torch.fft.fftshift(torch.fft.fft2(f - f.mean())).abs()
    return torch.log1p(mag).numpy()


def high_frequency_fraction(fmap: torch.Tensor, cutoff: float = 0.25) -> float:
    """Share of a map's (mean-removed) energy at |frequency| > `cutoff` cycles/pixel along x or y.

    With `cutoff=0.25` this is what a 2x subsampling cannot represent: plain subsampling folds it
    back onto low frequencies (aliasing); a low-pass filter before subsampling removes it instead.
    """
    f = fmap.detach().double()
    power = torch.fft.fft2(f - f.mean()).abs() ** 2
    fy = torch.fft.fftfreq(f.shape[-2], dtype=torch.float64).abs()[:, None]
    fx = torch.fft.fftfreq(f.shape[-1], dtype=torch.float64).abs()[None, :]
    total = power.sum().item()
    return (power * ((fy > cutoff) | (fx > cutoff))).sum().item() / total if total > 0 else 0.0


# ---- models for the comparison ---------------------------------------------------------------

def untrained_model(in_shape=(1, 28, 28), num_classes: int = 10, downsample: str = "max",
                    seed: int = 0) -> nn.Sequential:
    """An untrained `downsample_compare` initialised with `torch.manual_seed(seed)` (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model("downsample_compare", tuple(in_shape), num_classes, downsample)
    return model.eval()


def dense_for_comparison(model: nn.Sequential, layer: str) -> tuple[nn.Sequential, bool]:
    """The model with `layer` run at stride 1, so its map is the one every method downsamples.

    A net trained with `stride` has a stride-2 conv; at stride 1 the same weights give the dense map,
    and its `stride` downsampling (every other pixel) is exactly what the trained net computes. The
    shared model is never modified: a changed copy is returned, with True.
    """
    import copy

    conv = dict(model.named_children())[layer]
    if not isinstance(conv, nn.Conv2d) or conv.stride == (1, 1):
        return model, False
    dense = copy.deepcopy(model)
    dict(dense.named_children())[layer].stride = (1, 1)
    return dense.eval(), True


def to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()



def conv2d_layers(model: nn.Module) -> list[str]:
    """Names of the learned `nn.Conv2d` children (the layers `features.compare_downsampling` accepts)."""
    return [n for n, m in model.named_children() if isinstance(m, nn.Conv2d)]


def probe_curve(df, method: str, metric: str) -> list[dict]:
    """One method's `metric` per shift from `shift_probe_runs`' table, as history rows ({"epoch": shift, metric})
    so a figure of curves per epoch draws it with shifts on the x axis."""
    rows = df.loc[df.method == method, ["shift", metric]].itertuples(index=False)
    return [{"epoch": int(s), metric: float(v)} for s, v in rows]


def probe_history(df, method: str) -> list[dict]:
    """One method's agreement and similarity per shift, as history rows ({"epoch": shift, ...}), like
    `probe_curve` for both metrics at once."""
    rows = df.loc[df.method == method, ["shift", "agreement", "similarity"]].itertuples(index=False)
    return [{"epoch": int(s), "agreement": float(a), "similarity": float(v)} for s, a, v in rows]


def identical_pairs(df, pairs) -> list[tuple[str, str]]:
    """The pairs of methods (both probed) whose agreement and similarity are the same at every shift."""
    cols = ["agreement", "similarity"]
    return [(a, b) for a, b in pairs if {a, b} <= set(df.method)
            and np.allclose(df[df.method == a][cols], df[df.method == b][cols])]


def identical_sentence(df, pairs) -> str | None:
    """Which probed pairs give the same numbers (so one line hides the other), or None."""
    same = identical_pairs(df, pairs)
    if not same:
        return None
    return ("Lines that seem missing lie under their twin: "
            + "; ".join(f"{get_downsample(a).short} and {get_downsample(b).short} give the same numbers"
                        for a, b in same) + " (see section 3).")


def probe_table(df, methods: list[str], label) -> "object":
    """Methods (in `methods` order, named by `label(method)`) by "agreement @ 0px", ..., "similarity @ kpx"."""
    table = df.pivot(index="method", columns="shift", values=["agreement", "similarity"])
    table = table.loc[[m for m in methods if m in table.index]]
    table.index = [label(m) for m in table.index]
    table.columns = [f"{metric} @ {s}px" for metric, s in table.columns]
    return table
