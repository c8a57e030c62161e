"""A fully convolutional net on a canvas: the 1x1-convolution twin of an FC head, and maps of class scores.

`lenet_1x1` replaces `lenet_fc`'s FC layers by a conv over the whole map and a 1x1 conv: the same
parameters, and it accepts inputs larger than it was trained on. Four test images tiled into one
canvas give a map of class scores, one cell per window the size of a training image.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from .data import Dataset
from .models import build_model, class_score_map, count_params


def fc_vs_1x1_params(in_shape, downsample: str = "max") -> dict:
    """lenet_fc's fc1/fc2 and lenet_1x1's conv3/conv4, built live, with their parameter counts."""
    fc = build_model("lenet_fc", tuple(in_shape), downsample=downsample)
    conv = build_model("lenet_1x1", tuple(in_shape), downsample=downsample)
    fc1, fc2, conv3, conv4 = fc.fc1, fc.fc2, conv.conv3, conv.conv4
    return {"lenet_fc": count_params(fc), "lenet_1x1": count_params(conv),
            "fc1": (fc1.in_features, fc1.out_features, count_params(fc1)),
            "fc2": (fc2.in_features, fc2.out_features, count_params(fc2)),
            "conv3": (conv3.out_channels, conv3.in_channels, *conv3.kernel_size, count_params(conv3)),
            "conv4": (conv4.out_channels, conv4.in_channels, *conv4.kernel_size, count_params(conv4))}


def pick_images(labels: torch.Tensor, seed: int, classes: list[int] | None = None, n: int = 4) -> list[int]:
    """`n` test-set indices chosen by `seed`; with `classes`, slot i holds an image of classes[i % len]."""
    g = torch.Generator().manual_seed(int(seed))
    if not classes:
        return torch.randperm(len(labels), generator=g)[:n].tolist()
    picked = []
    for i in range(n):
        pool = (labels == classes[i % len(classes)]).nonzero().flatten()
        if len(pool) == 0:
            raise ValueError(f"no test image of class {classes[i % len(classes)]}")
        picked.append(int(pool[torch.randint(len(pool), (1,), generator=g)]))
    return picked


def make_canvas(images: torch.Tensor, grid: int = 2) -> torch.Tensor:
    """(grid*grid, C, H, W) images -> one (C, grid*H, grid*W) canvas, row by row (2x2: 28 -> 56)."""
    if images.dim() != 4 or images.shape[0] != grid * grid:
        raise ValueError(f"need {grid * grid} images of shape (C, H, W), got {tuple(images.shape)}")
    rows = [torch.cat(list(images[r * grid:(r + 1) * grid]), dim=-1) for r in range(grid)]
    return torch.cat(rows, dim=-2)


@dataclass
class Canvas:
    """Test images tiled into one larger input, with where they came from."""
    image: torch.Tensor  # (C, 2H, 2W) uint8
    indices: list[int]  # test-set index of each quadrant, row by row
    labels: list[str]  # true class name of each quadrant


def canvas_of_test_images(data: Dataset, seed: int, classes: list[str] | None = None) -> Canvas:
    """Four test images (chosen by `seed`, optionally one of each named class) tiled 2x2."""
    wanted = [data.classes.index(c) for c in classes] if classes else None
    indices = pick_images(data.test_y, seed, wanted)
    return Canvas(make_canvas(data.test_x[indices]), indices, [data.classes[int(data.test_y[i])] for i in indices])


def softmax(logits: np.ndarray, axis: int = 0) -> np.ndarray:
    z = logits - logits.max(axis=axis, keepdims=True)  # subtract the max: exp never overflows
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


@dataclass
class ScoreMaps:
    logits: np.ndarray  # (K, h, w)
    probs: np.ndarray  # (K, h, w), softmax over classes in each cell
    pred: np.ndarray  # (h, w) argmax class per cell
    step: int  # input pixels between neighbouring output cells
    window: int  # input size the net was trained on: one output cell <-> one window this big

    def cell_window(self, row: int, col: int) -> tuple[int, int, int, int]:
        """(top, left, bottom, right) exclusive, in canvas pixels, of the window output cell sees."""
        return row * self.step, col * self.step, row * self.step + self.window, col * self.step + self.window


@torch.no_grad()
def score_maps(model: nn.Sequential, canvas_uint8: torch.Tensor, data: Dataset, train_size: int) -> ScoreMaps:
    """Run a fully convolutional net on a canvas larger than its training input: a map of scores.

    The step between output cells is measured, not assumed: (canvas - train_size) / (cells - 1).
    """
    x = data.normalize(canvas_uint8[None])  # (1, C, H, W)
    logits = class_score_map(model, x)[0].float().numpy()  # (K, h, w)
    h = logits.shape[-1]
    step = (canvas_uint8.shape[-1] - train_size) // (h - 1) if h > 1 else 0
    probs = softmax(logits, axis=0)
    return ScoreMaps(logits, probs, probs.argmax(0), step, train_size)


@torch.no_grad()
def predict_images(model: nn.Module, data: Dataset, indices: list[int]) -> np.ndarray:
    """Class probabilities (N, K) of test images alone, at the size the net was trained on."""
    return softmax(model(data.normalize(data.test_x[indices])).float().numpy(), axis=1)


def fc_vs_1x1_latex(pair: dict) -> str:
    """fc1's and conv3's parameter counts written out, from `fc_vs_1x1_params`."""
    fc1_in, fc1_out, fc1_n = pair["fc1"]
    c_out, c_in, kh, kw, c3_n = pair["conv3"]
    return (rf"\text{{fc1}}: {fc1_in:,} \times {fc1_out} + {fc1_out} = {fc1_n:,}"
            rf"\qquad \text{{conv3}}: {c_out} \times {c_in} \times {kh} \times {kw} + {c_out} = {c3_n:,}")


def alone_vs_corner(sm: ScoreMaps, alone: np.ndarray, canvas: Canvas, classes: list[str]) -> dict[str, list]:
    """Table columns: each quadrant's image classified alone (`predict_images`) beside the canvas's corner cell
    that sees exactly that image, with the class and its probability."""
    h, w = sm.pred.shape
    corners = [(0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1)]
    size = sm.window
    return {"quadrant": ["top left", "top right", "bottom left", "bottom right"], "test index": canvas.indices,
            "true class": canvas.labels,
            f"alone ({size}x{size} -> 1x1)": [f"{classes[p.argmax()]} ({p.max():.2f})" for p in alone],
            "corner cell of the canvas": [f"{classes[sm.pred[r, c]]} ({sm.probs[:, r, c].max():.2f})"
                                          for r, c in corners]}
