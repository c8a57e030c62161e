"""Engineered vs learned features: the maths behind the "Engineered vs learned features" page.

Three questions, each answered from real tensors:
1. What do OpenCV's fixed filters and a trained net's first conv layer make of the same image?
2. How close is each learned first-layer filter to a Sobel / Scharr / Laplacian kernel, and how does
   that closeness change epoch by epoch (checkpoints keep the first conv's weights after every epoch
   in `filter_snapshots`, (epochs+1, O, I, k, k), index 0 = the initialisation)?
3. Which input representation wins the lecture's comparison "engineering features vs CNN features":
   raw pixels (MLP), fixed engineered channels, a learned 3x3 conv with the same head, or LeNet-5?
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .engineered import ENGINEERED_KINDS, EngineeredFrontEnd, engineered_kernels, opencv_features
from .features import closest_engineered, feature_maps  # noqa: F401 - closest_engineered re-exported
from .models import build_model, first_conv
from .record import RunRecord

# The lecture's comparison group, in the order its slides build it up.
BASELINE_ARCHS = ("mlp", "engineered", "engineered_scharr", "learned_conv", "lenet5")
BASELINE_NAMES = {"mlp": "MLP", "engineered": "Engineered front end",
                  "engineered_scharr": "Engineered front end (Scharr)", "learned_conv": "Learned 3x3 conv",
                  "lenet5": "LeNet-5"}
BASELINE_SEES = {"mlp": "raw pixels",
                 "engineered": "fixed engineered channels (gray, Sobel x/y, magnitude, Laplacian)",
                 "engineered_scharr": "fixed engineered channels (gray, Scharr x/y, magnitude, Laplacian)",
                 "learned_conv": "a learned 3x3 conv (5 channels)",
                 "lenet5": "two learned conv layers + pooling"}
# The front ends that feed the same head, ranked against each other in the winner sentence.
_FRONTS = ("mlp", "engineered", "engineered_scharr", "learned_conv")
# Short names for the winner sentence ("X beats Y by ...").
_REPRESENTATION = {"mlp": "raw pixels", "engineered": "the engineered front end",
                   "engineered_scharr": "the Scharr front end", "learned_conv": "the learned conv front end",
                   "lenet5": "LeNet-5"}
_IN_SENTENCE = {"mlp": "the MLP", "engineered": "the engineered net", "engineered_scharr": "the Scharr net",
                "learned_conv": "the learned-conv net", "lenet5": "LeNet-5"}
# Quoted from the lecture's slide (CIFAR-10, "case 2"): "Test Accuracy from MLP: ~53%".
LECTURE_MLP_CIFAR10_ACC = 0.53

DATASET_LABELS = {"fashion-mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}
FRONT_CHANNELS = EngineeredFrontEnd.CHANNELS  # gray, d/dx, d/dy, magnitude, laplacian
KIND_LABELS = {"sobel_x": "Sobel x (3)", "sobel_y": "Sobel y (3)", "sobel_mag": "Sobel magnitude (3)",
               "sobel5_x": "Sobel x (5)", "sobel5_y": "Sobel y (5)", "sobel5_mag": "Sobel magnitude (5)",
               "scharr_x": "Scharr x", "scharr_y": "Scharr y", "scharr_mag": "Scharr magnitude",
               "laplacian": "Laplacian"}


# ---- 1. the same image through fixed and learned filters ---------------------------------------

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


# ---- 2. learned filters against engineered kernels --------------------------------------------

def mean_filters(weights: torch.Tensor) -> np.ndarray:
    """(O, I, k, k) -> (O, k, k): each filter averaged over its input channels, as closest_engineered sees it."""
    return weights.detach().float().cpu().numpy().mean(axis=1)


def kernel_family(kernel: str) -> str:
    return "Laplacian" if kernel == "laplacian" else ("Scharr" if kernel.startswith("scharr") else "Sobel")


def match_table(matches: list[dict]) -> list[dict]:
    """closest_engineered's matches as display rows (one per filter)."""
    return [{"filter": m["filter"], "closest kernel": m["kernel"], "family": kernel_family(m["kernel"]),
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


# ---- 3. watching the filters learn ------------------------------------------------------------

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


def matches_per_epoch(snapshots: torch.Tensor) -> list[list[dict]]:
    """closest_engineered for every epoch's filters, vectorised: (epochs+1) x O x kernels cosines at once.

    Same rule as `features.closest_engineered` (channel-averaged, mean removed, best by |cos|, sign
    kept); a test checks the two agree.
    """
    w = snapshots.detach().float().cpu().numpy().mean(axis=2)  # (E, O, k, k)
    kernels = engineered_kernels(w.shape[-1])
    names = list(kernels)
    bank = np.stack([kernels[n] for n in names]).reshape(len(names), -1)  # (K, k*k)
    f = w.reshape(*w.shape[:2], -1)
    f = f - f.mean(axis=-1, keepdims=True)  # (E, O, k*k)
    norms = np.linalg.norm(f, axis=-1, keepdims=True) * np.linalg.norm(bank, axis=-1)  # (E, O, K)
    cos = np.where(norms > 0, (f @ bank.T) / np.where(norms > 0, norms, 1), 0.0)
    best = np.abs(cos).argmax(axis=-1)  # first maximum, like max() over the dict
    return [[{"filter": o, "kernel": names[best[e, o]], "similarity": float(cos[e, o, best[e, o]]),
              "all": dict(zip(names, map(float, cos[e, o])))} for o in range(cos.shape[1])]
            for e in range(cos.shape[0])]


def mean_best_similarity(snapshots: torch.Tensor) -> np.ndarray:
    """(epochs+1,) the mean over filters of the best |cos| to an engineered kernel, per epoch."""
    return np.array([np.mean([abs(m["similarity"]) for m in ms]) for ms in matches_per_epoch(snapshots)])


def count_close(snapshots: torch.Tensor, threshold: float = 0.8) -> np.ndarray:
    """(epochs+1,) how many filters are within |cos| > threshold of an engineered kernel, per epoch."""
    return np.array([sum(abs(m["similarity"]) > threshold for m in ms) for ms in matches_per_epoch(snapshots)])


# ---- 4. the lecture's comparison: engineered features vs CNN features -------------------------

def comparable(records: list[RunRecord]) -> tuple[list[RunRecord], list[str]]:
    """The runs the comparison can rank (a finished epoch, trainable parameters recorded), and one
    sentence for each it cannot."""
    kept, problems = [], []
    for r in records:
        if not r.history:
            problems.append(f"the {r.arch} run has no finished epoch")
        elif r.trainable_params is None:
            problems.append(f"the {r.arch} run does not record its trainable parameters")
        else:
            kept.append(r)
    return kept, problems


def format_count(n: int) -> str:
    """61706 -> "62k", 1_707_274 -> "1.7M", 850 -> "850"."""
    if n >= 1_000_000:
        return f"{n / 1e6:.1f}M"
    if n >= 10_000:
        return f"{n / 1e3:.0f}k"
    if n >= 1_000:
        return f"{n / 1e3:.1f}k"
    return str(n)


def _and(items: list[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else "".join(items)


def _points(a: float, b: float) -> str:
    return f"{abs(a - b) * 100:.1f} points"


def winner_sentence(results: list[RunRecord], dataset_label: str) -> str:
    """One sentence, computed from the numbers, saying which input representation wins and by how much.

    First the ways of feeding the same kind of head (raw pixels, fixed Sobel or Scharr channels, a
    learned conv) are ranked; then the best run overall is named (or, when it is that winning front
    end, confirmed) with its trainable parameters against the MLP's, and LeNet-5's result is added
    when LeNet-5 is not the best. Differences under 0.05 points (invisible at one decimal) are ties.
    """
    by = {r.arch: r for r in results}
    name = lambda a: _IN_SENTENCE.get(a, a)  # noqa: E731
    if not by:
        return f"No run of the comparison group has been trained on {dataset_label} yet."
    best = max(by.values(), key=lambda r: r.final_test_acc)
    if len(by) == 1:
        return (f"On {dataset_label}, only {name(best.arch)} has been trained so far: {best.final_test_acc:.1%} "
                f"with {format_count(best.trainable_params)} trainable parameters.")
    clauses = []
    fronts = sorted((by[a] for a in _FRONTS if a in by), key=lambda r: -r.final_test_acc)
    if len(fronts) >= 2:
        top, rest = fronts[0], fronts[1:]
        wins = [f"{_REPRESENTATION[r.arch]} by {_points(top.final_test_acc, r.final_test_acc)}"
                for r in rest if top.final_test_acc - r.final_test_acc >= 0.0005]
        ties = [_REPRESENTATION[r.arch] for r in rest if top.final_test_acc - r.final_test_acc < 0.0005]
        plural = top.arch == "mlp"  # "raw pixels beat ...", "raw pixels tie with ..."
        clause = f"{_REPRESENTATION[top.arch]} ({top.final_test_acc:.1%})"
        if wins:
            clause += (" beat " if plural else " beats ") + _and(wins)
        if ties:
            clause += (" and" if wins else "") + (" tie with " if plural else " ties with ") + _and(ties)
        clauses.append(clause)
    mlp, lenet = by.get("mlp"), by.get("lenet5")
    if len(fronts) >= 2 and best is fronts[0]:  # already named: no second sentence about the same run
        overall = f"it is the best of all {len(by)}, with {format_count(best.trainable_params)} trainable parameters"
    else:
        overall = (f"{name(best.arch)} is best at {best.final_test_acc:.1%} with "
                   f"{format_count(best.trainable_params)} trainable parameters")
    if mlp is not None and best.arch != "mlp":
        rel = "fewer than" if best.trainable_params < mlp.trainable_params else "more than"
        overall += f", {rel} the MLP's {format_count(mlp.trainable_params)}"
    if lenet is not None and best.arch != "lenet5":
        overall += f" (LeNet-5: {lenet.final_test_acc:.1%} with {format_count(lenet.trainable_params)})"
    clauses.append(overall)
    return f"On {dataset_label}, " + "; ".join(clauses) + "."
