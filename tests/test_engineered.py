"""The engineered front end computes OpenCV's Sobel / Scharr / Laplacian, on real images."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from cnnviz.engineered import (ENGINEERED_KINDS, EngineeredFrontEnd, engineered_kernels,
                               opencv_features)

N_IMAGES = 4


def _assert_close_relative(actual: np.ndarray, expected: np.ndarray, rel: float = 1e-4):
    """Equal within `rel` of the map's largest magnitude (plain relative error blows up near 0)."""
    scale = max(float(np.abs(expected).max()), 1e-6)
    err = float(np.abs(actual - expected).max())
    assert err <= rel * scale, f"max error {err:.3g} > {rel} x {scale:.3g}"


def _images(data, n=N_IMAGES) -> torch.Tensor:
    """The first `n` test images, normalised as the models see them: float32 (n, C, H, W)."""
    return data.normalize(data.test_x[:n])


@pytest.mark.data
@pytest.mark.parametrize("edge", ["sobel", "scharr"])
@pytest.mark.parametrize("dataset", ["fashion_mnist", "cifar10"])
def test_front_end_channels_equal_opencv_on_real_images(dataset, edge, request):
    data = request.getfixturevalue(dataset)
    x = _images(data)
    front = EngineeredFrontEnd(x.shape[1], edge=edge)
    with torch.no_grad():
        out = front(x).numpy()  # (n, 5, H, W)
    assert out.shape == (N_IMAGES, 5) + tuple(x.shape[-2:])
    kinds = [f"{edge}_x", f"{edge}_y", f"{edge}_mag", "laplacian"]
    for i in range(N_IMAGES):
        image = x[i].permute(1, 2, 0).numpy()  # (H, W, C), what the lecture hands to cv2
        image = image[..., 0] if image.shape[-1] == 1 else image
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        cv = opencv_features(image, kinds)
        _assert_close_relative(out[i, 0], gray)
        for channel, kind in enumerate(kinds, start=1):
            _assert_close_relative(out[i, channel], cv[kind])


@pytest.mark.data
def test_opencv_features_are_cv2_calls_on_the_gray_image(cifar10):
    image = _images(cifar10, 1)[0].permute(1, 2, 0).numpy()
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    feats = opencv_features(image)
    assert set(feats) == set(ENGINEERED_KINDS)
    np.testing.assert_array_equal(feats["sobel_x"], cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3))
    np.testing.assert_array_equal(feats["sobel5_y"], cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=5))
    np.testing.assert_array_equal(feats["scharr_y"], cv2.Scharr(gray, cv2.CV_32F, 0, 1))
    np.testing.assert_array_equal(feats["laplacian"], cv2.Laplacian(gray, cv2.CV_32F))
    gx, gy = cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1)
    _assert_close_relative(feats["sobel_mag"], np.sqrt(gx ** 2 + gy ** 2))


@pytest.mark.data
@pytest.mark.parametrize("size", [3, 5])
def test_engineered_kernels_reproduce_opencv_through_filter2d(size, fashion_mnist):
    gray = _images(fashion_mnist, 1)[0, 0].numpy()
    reference = {
        "sobel_x": cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3),
        "sobel_y": cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3),
        "sobel5_x": cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=5),
        "sobel5_y": cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=5),
        "scharr_x": cv2.Scharr(gray, cv2.CV_32F, 1, 0),
        "scharr_y": cv2.Scharr(gray, cv2.CV_32F, 0, 1),
        "laplacian": cv2.Laplacian(gray, cv2.CV_32F),
    }
    kernels = engineered_kernels(size)
    expected_names = set(reference) if size == 5 else {k for k in reference if not k.startswith("sobel5")}
    assert set(kernels) == expected_names
    for name, k in kernels.items():
        assert k.shape == (size, size)
        # filter2D is correlation with the same default border (reflect-101) as the cv2 calls.
        _assert_close_relative(cv2.filter2D(gray, cv2.CV_32F, k), reference[name])


def test_sobel_and_laplacian_kernels_are_the_textbook_ones():
    k = engineered_kernels(3)
    np.testing.assert_array_equal(k["sobel_x"], [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    np.testing.assert_array_equal(k["sobel_y"], [[-1, -2, -1], [0, 0, 0], [1, 2, 1]])
    np.testing.assert_array_equal(k["scharr_x"], [[-3, 0, 3], [-10, 0, 10], [-3, 0, 3]])
    np.testing.assert_array_equal(k["laplacian"], [[0, 1, 0], [1, -4, 1], [0, 1, 0]])


def test_front_end_refuses_an_unknown_edge_filter():
    with pytest.raises(ValueError, match="sobel"):
        EngineeredFrontEnd(1, edge="canny")
