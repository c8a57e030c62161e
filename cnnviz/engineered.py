"""Engineered features: OpenCV's Sobel / Scharr / Laplacian, and the same filters as a fixed torch layer.

`opencv_features` is the lecture's code (cv2 on a float32 image). `EngineeredFrontEnd` computes the
same channels inside a model, batched, so an "engineered features + head" network trains like any
other; a test proves both agree. OpenCV's default border is BORDER_REFLECT_101, which is what
`F.pad(mode="reflect")` does, and `cv2.filter2D`-style filtering is correlation, as is `F.conv2d`.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# RGB -> gray weights of cv2.COLOR_RGB2GRAY (ITU-R BT.601).
GRAY_WEIGHTS = (0.299, 0.587, 0.114)

# What the fixed front end computes, channel by channel (the learned conv baseline has as many).
FRONT_CHANNELS = ("gray", "d/dx", "d/dy", "magnitude", "laplacian")
ENGINEERED_KINDS = ("sobel_x", "sobel_y", "sobel_mag", "sobel5_x", "sobel5_y", "sobel5_mag",
                    "scharr_x", "scharr_y", "scharr_mag", "laplacian")

KIND_LABELS = {"sobel_x": "Sobel x (3)", "sobel_y": "Sobel y (3)", "sobel_mag": "Sobel magnitude (3)",
               "sobel5_x": "Sobel x (5)", "sobel5_y": "Sobel y (5)", "sobel5_mag": "Sobel magnitude (5)",
               "scharr_x": "Scharr x", "scharr_y": "Scharr y", "scharr_mag": "Scharr magnitude",
               "laplacian": "Laplacian"}


def to_gray(image: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, 3) RGB float32 -> (H, W) float32, with OpenCV's weights."""
    image = np.ascontiguousarray(image, dtype=np.float32)
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def opencv_features(image: np.ndarray, kinds=ENGINEERED_KINDS) -> dict[str, np.ndarray]:
    """The lecture's engineered feature maps of one image, as float32 arrays of the image's size."""
    g = to_gray(image)
    out = {}
    for kind in kinds:
        if kind.startswith("sobel"):
            k = 5 if kind.startswith("sobel5") else 3
            gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=k)
            gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=k)
        elif kind.startswith("scharr"):
            gx = cv2.Scharr(g, cv2.CV_32F, 1, 0)
            gy = cv2.Scharr(g, cv2.CV_32F, 0, 1)
        elif kind == "laplacian":
            out[kind] = cv2.Laplacian(g, cv2.CV_32F)
            continue
        else:
            raise ValueError(f"unknown engineered feature {kind!r}")
        part = kind.rsplit("_", 1)[1]
        out[kind] = {"x": gx, "y": gy, "mag": np.hypot(gx, gy).astype(np.float32)}[part]
    return out


def engineered_kernels(size: int = 3) -> dict[str, np.ndarray]:
    """The fixed kernels (as correlation weights) that OpenCV applies, padded to `size` x `size`."""
    kernels = {}
    for name, (dx, dy, k) in {"sobel_x": (1, 0, 3), "sobel_y": (0, 1, 3), "sobel5_x": (1, 0, 5),
                              "sobel5_y": (0, 1, 5)}.items():
        kx, ky = cv2.getDerivKernels(dx, dy, k)
        kernels[name] = (ky @ kx.T).astype(np.float32)
    for name, (dx, dy) in {"scharr_x": (1, 0), "scharr_y": (0, 1)}.items():
        kx, ky = cv2.getDerivKernels(dx, dy, cv2.FILTER_SCHARR)
        kernels[name] = (ky @ kx.T).astype(np.float32)
    kernels["laplacian"] = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float32)  # ksize=1
    out = {}
    for name, k in kernels.items():
        if k.shape[0] > size:
            continue
        pad = (size - k.shape[0]) // 2
        out[name] = np.pad(k, pad)
    return out


class EngineeredFrontEnd(nn.Module):
    """Fixed (non-trainable) channels `FRONT_CHANNELS`: gray, d/dx, d/dy, gradient magnitude, Laplacian.

    The kernels are parameters with `requires_grad=False`: the summary lists them as non-trainable
    and the training loop never hands them to the optimizer.
    (B, C, H, W) -> (B, 5, H, W).
    """

    def __init__(self, in_channels: int, edge: str = "sobel"):
        super().__init__()
        if edge not in ("sobel", "scharr"):
            raise ValueError(f"edge must be 'sobel' or 'scharr', not {edge!r}")
        self.in_channels, self.edge = in_channels, edge
        k = engineered_kernels(3)
        bank = np.stack([k[f"{edge}_x"], k[f"{edge}_y"], k["laplacian"]])[:, None]  # (3, 1, 3, 3)
        self.kernels = nn.Parameter(torch.tensor(bank), requires_grad=False)  # tensor, not from_numpy: on the device being built on
        gray = torch.tensor(GRAY_WEIGHTS if in_channels == 3 else [1.0 / in_channels] * in_channels)
        self.register_buffer("gray_weights", gray.view(1, -1, 1, 1), persistent=False)

    def forward(self, x):
        g = (x * self.gray_weights.to(x)).sum(1, keepdim=True)  # (B, 1, H, W); .to(x): its dtype and device
        d = F.conv2d(F.pad(g, (1, 1, 1, 1), mode="reflect"), self.kernels.to(x))  # (B, 3, H, W)
        gx, gy, lap = d[:, 0:1], d[:, 1:2], d[:, 2:3]
        return torch.cat([g, gx, gy, torch.hypot(gx, gy), lap], dim=1)

    def multiply_adds(self, out) -> int:
        """The three 3x3 derivative kernels over the gray image (the gray mix and the magnitude are not counted)."""
        return out.shape[-2] * out.shape[-1] * self.kernels.shape[0] * 9

    def rf_steps(self, in_hw: int, out_hw: int) -> list[tuple[float, float, float]]:
        """Geometry for receptive fields: one 3x3 window, stride 1, over the input padded by 1 (reflected)."""
        return [(3, 1, 1)]

    def extra_repr(self):
        return f"in_channels={self.in_channels}, edge={self.edge!r}, trainable=False"
