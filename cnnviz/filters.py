"""First-layer filters: what fixed (OpenCV) and learned filters make of an image, and how close each
learned filter is to a Sobel / Scharr / Laplacian kernel, once or epoch by epoch.

Checkpoints keep the first conv's weights after every epoch in `filter_snapshots`
(epochs+1, O, I, k, k), index 0 = the initialisation; one matching rule serves a single set of filters
(`closest_engineered`, the E=1 case) and a whole history (`matches_per_epoch`).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .engineered import ENGINEERED_KINDS, KIND_LABELS, engineered_kernels, opencv_features
from .features import feature_maps
from .models import build_model, first_conv
from .shipped import shipped_runs

# The network whose filters a reader sees first: lenet_fc, whose 3x3 first layer has the largest share of edge
# detectors of the shipped nets on both datasets (tests/test_filters.py measures every one), else the
# lecture's downsampling net (max pooling), the learned-conv baseline, LeNet-5; each the shipped seed-0 run.
DEFAULT_ARCHS = ("lenet_fc", "downsample_compare", "learned_conv", "lenet5")


# ---- the same image through fixed and learned filters ------------------------------------------

def image_float(x_uint8: torch.Tensor) -> np.ndarray:
    """(C, H, W) uint8 -> (H, W) or (H, W, 3) float32 in [0, 1]: the lecture's cv2 input."""
    a = np.asarray(x_uint8, dtype=np.float32) / 255.0
    return a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)


def engineered_maps(x_uint8: torch.Tensor, kinds=ENGINEERED_KINDS) -> tuple[list[str], np.ndarray]:
    """OpenCV's Sobel (3 and 5) / Scharr / Laplacian maps of one image: (names, (K, H, W) float32)."""
    feats = opencv_features(image_float(x_uint8), kinds)
    return list(feats), np.stack(list(feats.values()))


def first_conv_name(model: nn.Module) -> str | None:
    found = first_conv(model)
    return found[0] if found else None


@lru_cache(maxsize=64)
def arch_has_first_conv(arch: str, in_shape: tuple[int, int, int] = (1, 28, 28)) -> bool:
    """Whether `arch` has a learned conv layer at all (the MLP and the engineered net do not)."""
    return first_conv(build_model(arch, in_shape)) is not None


def with_first_conv(rows: dict[str, dict], in_shape: tuple[int, int, int]) -> dict[str, dict]:
    """The runs (id -> runs-table row) whose net has a learned first conv layer; an architecture this version
    no longer knows is left out."""
    out = {}
    for run_id, row in rows.items():
        try:
            if arch_has_first_conv(row["arch"], tuple(in_shape)):
                out[run_id] = row
        except ValueError:
            continue
    return out


def default_run(run_ids, dataset: str) -> str | None:
    """Which of `run_ids` to show first: the shipped seed-0 run of the first of DEFAULT_ARCHS that is there
    (downsample_compare with max pooling), else the first id, else None."""
    for arch in DEFAULT_ARCHS:
        for run in shipped_runs():
            c = run.config
            if c.arch == arch and c.dataset == dataset and c.seed == 0 and run.filename in run_ids:
                if arch != "downsample_compare" or c.downsample == "max":
                    return run.filename
    return next(iter(run_ids), None)


def first_conv_weights(model: nn.Module) -> tuple[str, torch.Tensor]:
    """(name, weight (O, I, k, k)) of the first learned conv layer."""
    found = first_conv(model)
    if found is None:
        raise ValueError("this model has no learned conv layer")
    return found[0], found[1].weight.detach()


def learned_maps(model: nn.Module, x: torch.Tensor) -> tuple[str, np.ndarray]:
    """The first conv layer's output (before its ReLU) for one normalised image (1, C, H, W)."""
    name = first_conv_name(model)
    if name is None:
        raise ValueError("this model has no learned conv layer")
    return name, feature_maps(model, x, [name])[name][0].numpy()


def front_end_maps(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """The `engineered` net's fixed channels (gray, d/dx, d/dy, magnitude, Laplacian), (5, H, W)."""
    return feature_maps(model, x, ["front"])["front"][0].numpy()


# ---- edge and blob detectors, whatever their orientation ------------------------------------------
# Comparing a filter with Sobel x and Sobel y one at a time misses every edge in between: an edge detector at
# 45 degrees scores ~0.7 against both. The span of the two derivative kernels holds the edge detectors of
# every orientation (a*Dx + b*Dy is the derivative along (a, b)), so the share of a filter's energy inside it
# says how much of an edge detector it is, orientation-free; the Laplacian plays that part for blobs.
EDGE_SHARE = 0.5  # a filter is "an edge detector" when over half of its (zero-mean) energy lies in that span
RANDOM_FILTERS = 4096  # random filters of the same size: the share chance alone gives


@lru_cache(maxsize=8)
def derivative_basis(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(d/dx, d/dy, Laplacian) as k x k correlation kernels (OpenCV's Sobel-type derivative kernels of that
    size; the Laplacian is d2/dx2 + d2/dy2 with its mean removed). d/dx and d/dy are orthogonal."""
    kx, ky = cv2.getDerivKernels(1, 0, k)
    dx = (ky @ kx.T).astype(np.float64)  # rows = y (down), columns = x
    lx, ly = cv2.getDerivKernels(2, 0, k)
    lap = (ly @ lx.T) + (lx @ ly.T)
    return dx, dx.T.copy(), lap - lap.mean()


@dataclass(frozen=True)
class FilterShapes:
    """Per filter (O,): the share of its zero-mean energy that is an edge detector (in the span of d/dx and
    d/dy) and that is a blob detector (along the Laplacian), and the orientation of the edge it detects, in
    degrees counter-clockwise from horizontal (0 = a horizontal edge, 90 = a vertical one, as Sobel x)."""
    edge: np.ndarray
    blob: np.ndarray
    angle: np.ndarray
    k: int

    def __len__(self) -> int:
        return len(self.edge)

    @property
    def edge_detectors(self) -> int:
        return int((self.edge > EDGE_SHARE).sum())

    def describe(self, i: int) -> str:
        """One filter in the lecture's words: "an edge detector at 30°", "a blob detector" or neither."""
        if self.edge[i] > EDGE_SHARE:
            return f"an edge detector at {self.angle[i]:.0f}°"
        if self.blob[i] > EDGE_SHARE:
            return "a blob (Laplacian) detector"
        return "neither an edge nor a blob detector"


def filter_shapes(weights) -> FilterShapes:
    """`FilterShapes` of filters (O, I, k, k) (averaged over input channels, a colour filter's luminance
    response) or (O, k, k). A filter's mean is a brightness response, in neither span: it is removed."""
    w = weights.detach().float().cpu().numpy() if isinstance(weights, torch.Tensor) else np.asarray(weights, float)
    w = w.mean(axis=1) if w.ndim == 4 else w  # (O, k, k)
    k = w.shape[-1]
    dx, dy, lap = derivative_basis(k)
    f = w.reshape(len(w), -1).astype(np.float64)
    f = f - f.mean(axis=1, keepdims=True)  # (O, k*k)
    energy = np.maximum((f ** 2).sum(axis=1), 1e-30)
    a, b = f @ dx.ravel() / (dx ** 2).sum(), f @ dy.ravel() / (dy ** 2).sum()  # the derivative it takes: a d/dx + b d/dy
    edge = (a ** 2 * (dx ** 2).sum() + b ** 2 * (dy ** 2).sum()) / energy
    blob = (f @ lap.ravel()) ** 2 / (lap ** 2).sum() / energy
    # The gradient (a, b) has y pointing down; with y up it is (a, -b), and the edge runs across it (+90°).
    angle = (np.degrees(np.arctan2(-b, a)) + 90.0) % 180.0
    dead = (f ** 2).sum(axis=1) == 0
    return FilterShapes(np.where(dead, 0.0, edge), np.where(dead, 0.0, blob), angle, k)


@lru_cache(maxsize=8)
def random_shapes(k: int, n: int = RANDOM_FILTERS, seed: int = 0) -> FilterShapes:
    """The same measures on `n` random k x k filters (i.i.d. normal weights, as any i.i.d. initialisation
    looks once its mean is removed): what a filter scores by chance. Its mean edge share is 2 / (k*k - 1)."""
    return filter_shapes(np.random.default_rng(seed).standard_normal((n, k, k)))


def shape_labels(shapes: FilterShapes) -> list[str]:
    """One two-line title per filter: its number and what it is, e.g. "3: edge 30°<br>share 0.91"."""
    out = []
    for i in range(len(shapes)):
        what = (f"edge {shapes.angle[i]:.0f}°" if shapes.edge[i] > EDGE_SHARE else
                "blob" if shapes.blob[i] > EDGE_SHARE else "—")
        out.append(f"{i}: {what}<br>edge {shapes.edge[i]:.2f}")
    return out


def edge_sentence(trained: FilterShapes, what: str = "filters") -> str:
    """The verdict, beside chance: how many `what` are edge detectors, against random filters of that size."""
    rnd = random_shapes(trained.k)
    n, hits = len(trained), trained.edge_detectors
    chance = 100 * rnd.edge_detectors / len(rnd)
    best = int(np.argmax(trained.edge))
    return (f"{hits} of {n} {what} are edge detectors (over {100 * EDGE_SHARE:.0f} % of their energy in the span of the "
            f"two derivative kernels), against {chance:.0f} % of random {trained.k}x{trained.k} filters. Median "
            f"edge share {np.median(trained.edge):.2f}, against {np.median(rnd.edge):.2f} by chance. The most "
            f"edge-like, filter {best}, is {trained.describe(best)} (share {trained.edge[best]:.2f}).")


def training_update(snapshots: torch.Tensor, epoch: int | None = None) -> torch.Tensor:
    """What training added to the first layer by `epoch` (default: the last): W_epoch - W_0, (O, I, k, k).
    The initial noise stays in the trained filters (training moves them little), so the change itself is
    where the learned structure shows."""
    return snapshots[-1 if epoch is None else epoch] - snapshots[0]


def relative_change(snapshots: torch.Tensor) -> float:
    """‖W_T − W_0‖ / ‖W_0‖ of the first layer: how far training moved it from its initialisation."""
    return float((snapshots[-1] - snapshots[0]).norm() / snapshots[0].norm().clamp_min(1e-12))


def edge_share_per_epoch(snapshots: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(epochs+1,) the median edge share of the filters and of what training had added, per epoch."""
    filt = np.array([np.median(filter_shapes(w).edge) for w in snapshots])
    added = np.array([np.median(filter_shapes(snapshots[e] - snapshots[0]).edge) if e else np.nan
                      for e in range(len(snapshots))])
    return filt, added


# ---- learned filters against engineered kernels -----------------------------------------------

def matches_per_epoch(snapshots: torch.Tensor) -> list[list[dict]]:
    """For every epoch's filters (E, O, I, k, k), the engineered kernel of size k most like each one.

    Filters are averaged over input channels (a colour filter's luminance response). Similarity is the
    cosine, all (E, O, kernels) at once; a filter equal to minus a Sobel kernel is the same edge detector
    with the opposite sign, so the best match is chosen by |cosine| and the sign is kept in `similarity`.
    """
    w = snapshots.detach().float().cpu().numpy().mean(axis=2)  # (E, O, k, k)
    kernels = engineered_kernels(w.shape[-1])
    names = list(kernels)
    bank = np.stack([kernels[n] for n in names]).reshape(len(names), -1)  # (K, k*k)
    f = w.reshape(*w.shape[:2], -1)
    # Every engineered kernel sums to 0, so the filter's mean (a brightness response) is removed.
    f = f - f.mean(axis=-1, keepdims=True)  # (E, O, k*k)
    norms = np.linalg.norm(f, axis=-1, keepdims=True) * np.linalg.norm(bank, axis=-1)  # (E, O, K)
    cos = np.where(norms > 0, (f @ bank.T) / np.where(norms > 0, norms, 1), 0.0)  # a dead filter: 0
    best = np.abs(cos).argmax(axis=-1)  # (E, O): the first kernel of the largest |cos|
    return [[{"filter": o, "kernel": names[best[e, o]], "similarity": float(cos[e, o, best[e, o]]),
              "all": dict(zip(names, map(float, cos[e, o])))} for o in range(cos.shape[1])]
            for e in range(cos.shape[0])]


def closest_engineered(weights: torch.Tensor) -> list[dict]:
    """`matches_per_epoch` for one set of filters (O, I, k, k): one match per filter."""
    return matches_per_epoch(weights[None])[0]


def mean_filters(weights: torch.Tensor) -> np.ndarray:
    """(O, I, k, k) -> (O, k, k): each filter averaged over its input channels, as closest_engineered sees it."""
    return weights.detach().float().cpu().numpy().mean(axis=1)


def kernel_family(kernel: str) -> str:
    return "Laplacian" if kernel == "laplacian" else ("Scharr" if kernel.startswith("scharr") else "Sobel")


def short_label(kernel: str) -> str:
    """A kernel's display name without the size of the 3x3 ones: "Sobel x", "Sobel x (5)"."""
    return KIND_LABELS.get(kernel, kernel).replace(" (3)", "")


def filter_labels(matches: list[dict]) -> list[str]:
    """One two-line title per learned filter: its number, closest kernel and signed cosine."""
    return [f"{m['filter']}: {short_label(m['kernel'])}<br>{m['similarity']:+.2f}" for m in matches]


def match_table(matches: list[dict], short: bool = False) -> list[dict]:
    """closest_engineered's matches as display rows (one per filter); `short` names kernels by `short_label`."""
    name = short_label if short else str
    return [{"filter": m["filter"], "closest kernel": name(m["kernel"]), "family": kernel_family(m["kernel"]),
             "cosine": m["similarity"], "|cosine|": abs(m["similarity"])} for m in matches]


def similarity_sentence(matches: list[dict], threshold: float = 0.8) -> str:
    """E.g. "7 of 32 filters are within |cos| > 0.8 of an engineered kernel (5 Sobel, 2 Scharr)"."""
    close = [m for m in matches if abs(m["similarity"]) > threshold]
    n = len(matches)
    if not n:
        return "There are no filters to compare."
    best = max(matches, key=lambda m: abs(m["similarity"]))
    tail = (f"; the closest is filter {best['filter']}, {best['kernel']} at cos {best['similarity']:+.2f}")
    if not close:
        return (f"None of the {n} filters is within |cos| > {threshold:g} of a Sobel/Scharr/Laplacian "
                f"kernel{tail}.")
    families = {}
    for m in close:
        fam = kernel_family(m["kernel"])
        families[fam] = families.get(fam, 0) + 1
    split = ", ".join(f"{c} {f}" for f, c in sorted(families.items(), key=lambda kv: -kv[1]))
    verb = "is" if len(close) == 1 else "are"
    return (f"{len(close)} of {n} filters {verb} within |cos| > {threshold:g} of a Sobel/Scharr/Laplacian "
            f"kernel ({split}){tail}.")


# ---- watching the filters learn ------------------------------------------------------------

def snapshots_of(meta: dict) -> torch.Tensor | None:
    """The checkpoint's first-conv weights per epoch, float32 (epochs+1, O, I, k, k), or None."""
    snaps = meta.get("filter_snapshots")
    return snaps.float() if isinstance(snaps, torch.Tensor) and snaps.dim() == 5 else None


def first_conv_input(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What the first conv layer receives for `x`: `x` itself, or the output of the layers before it
    (vgg16 resizes a 28x28 image to 32x32 first)."""
    name = first_conv_name(model)
    names = [n for n, _ in model.named_children()]
    if name is None or name not in names:
        raise ValueError("the first conv layer is not a top-level layer of this model")
    i = names.index(name)
    return x if i == 0 else feature_maps(model, x, [names[i - 1]])[names[i - 1]]


@torch.inference_mode()
def snapshot_maps(model: nn.Module, weights: torch.Tensor, x: torch.Tensor,
                  bias: torch.Tensor | None = None) -> np.ndarray:
    """The first conv layer's maps for a normalised image (1, C, H, W) if its weights were `weights`.

    `weights` (O, I, k, k) is one epoch of `filter_snapshots`; the layer's own stride / padding /
    dilation are used, so with the final weights and the final bias this is exactly the layer's output.
    Snapshots keep weights only: without `bias` each map differs from the layer's by a constant, which
    a min-max scaled picture does not show.
    """
    conv = first_conv(model)[1]
    y = F.conv2d(first_conv_input(model, x).float(), weights.float(), None if bias is None else bias.float(),
                 stride=conv.stride, padding=conv.padding, dilation=conv.dilation)
    return y[0].numpy()  # (O, H', W')


def mean_best_similarity(snapshots: torch.Tensor) -> np.ndarray:
    """(epochs+1,) the mean over filters of the best |cos| to an engineered kernel, per epoch."""
    return np.array([np.mean([abs(m["similarity"]) for m in ms]) for ms in matches_per_epoch(snapshots)])


def evolution(meta: dict, threshold: float = 0.8):
    """From a checkpoint's metadata, per epoch: the filters' matches, the mean best |cos| and how many filters
    are within |cos| > threshold; None when it kept no filter snapshots."""
    snaps = snapshots_of(meta)
    if snaps is None:
        return None
    return matches_per_epoch(snaps), mean_best_similarity(snaps), count_close(snaps, threshold)


def chance_sentence(mean_best: np.ndarray, n_close: np.ndarray, n_filters: int, k: int, threshold: float) -> str:
    """How the trained filters compare with the layer's random initial ones (epoch 0): the chance level."""
    return (f"Chance level: the same comparison on this layer's random initial filters (epoch 0) gives "
            f"{n_close[0]} of {n_filters} within |cos| > {threshold:g} and a mean best |cos| of "
            f"{mean_best[0]:.3f}; after epoch {len(mean_best) - 1}: {n_close[-1]} and "
            f"{mean_best[-1]:.3f}. With only {k * k} weights per filter, a random filter is often fairly "
            f"close to one of {len(engineered_kernels(k))} kernels.")


def count_close(snapshots: torch.Tensor, threshold: float = 0.8) -> np.ndarray:
    """(epochs+1,) how many filters are within |cos| > threshold of an engineered kernel, per epoch."""
    return np.array([sum(abs(m["similarity"]) > threshold for m in ms) for ms in matches_per_epoch(snapshots)])
