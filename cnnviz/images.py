"""Turning an uploaded file into a model input safely: any image a user may send, or a clear refusal.

Checks happen before decoding (byte size, then the header's pixel count), so a 10000x10000 image or a
decompression bomb is refused without allocating it; everything else is converted to the dataset's
channels and size, and each conversion is reported so the page can say what it did.
"""
from __future__ import annotations

import io

import numpy as np
import torch

MAX_UPLOAD_MB = 20  # MB of 10**6 bytes: the unit the uploader prints beside itself ("20MB per file")
MAX_UPLOAD_BYTES = MAX_UPLOAD_MB * 10**6
MAX_PIXELS = 25_000_000  # 5000x5000: larger images are refused before decoding


class ImageError(ValueError):
    """The upload cannot be used as an image; the message is one sentence for the user."""


def load_image(data: bytes, channels: int, size: tuple[int, int],
               max_bytes: int = MAX_UPLOAD_BYTES, max_pixels: int = MAX_PIXELS) -> tuple[torch.Tensor, list[str]]:
    """bytes -> uint8 tensor (channels, H, W) resized to `size`, and notes on each conversion made."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ImageError("the file is empty")
    if len(data) > max_bytes:
        raise ImageError(f"the file is {len(data) / 10**6:.1f} MB, over the {max_bytes / 10**6:.0f} MB limit")
    try:
        im = Image.open(io.BytesIO(data))
        w, h = im.size  # header only: nothing decoded yet
    except Image.DecompressionBombError:  # PIL's own refusal of a header over twice its pixel limit
        raise ImageError(f"the image is far over {max_pixels / 1e6:.0f} megapixels; it is refused unread") from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise ImageError("not an image PIL can read (use PNG or JPEG)") from None
    if w * h > max_pixels:
        raise ImageError(f"the image is {w}x{h} pixels; images over {max_pixels / 1e6:.0f} megapixels are refused")
    notes = []
    try:
        im.load()
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            a = np.asarray(im, dtype=np.float64)
            im = Image.fromarray((a / max(a.max(), 1) * 255).astype(np.uint8), "L")
            notes.append("16-bit image scaled to 8 bits")
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            bg = Image.new("RGBA", im.size, (255, 255, 255, 255) if channels == 3 else (0, 0, 0, 255))
            base = "L" if im.mode == "LA" else "RGB"  # flattened, the image keeps its own colour model
            im = Image.alpha_composite(bg, im.convert("RGBA")).convert(base)
            notes.append("transparency flattened onto " + ("white" if channels == 3 else "black"))
        target = "L" if channels == 1 else "RGB"
        if im.mode != target:
            kind = {"L": "grayscale", "RGB": "RGB", "RGBA": "RGB", "CMYK": "CMYK"}.get(im.mode, f"mode {im.mode}")
            notes.append(f"{kind} converted to {'grayscale' if target == 'L' else 'RGB'}")
            im = im.convert(target)
        if im.size != (size[1], size[0]):
            notes.append(f"resized from {im.size[0]}x{im.size[1]} to {size[1]}x{size[0]}")
            im = im.resize((size[1], size[0]), Image.BILINEAR)
        a = np.asarray(im, dtype=np.uint8)
    except ImageError:
        raise
    except Exception:  # noqa: BLE001 - truncated data, bad palettes, ...: all "cannot use this image"
        raise ImageError("the image data is damaged or in an unsupported format") from None
    a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
    return torch.from_numpy(np.array(a, copy=True)), notes


def gallery_images(data, indices) -> list[np.ndarray]:
    """Test images at `indices` as uint8 arrays ready for `st.image`: (H, W) gray or (H, W, 3) colour."""
    x = data.test_x[np.asarray(indices, dtype=np.int64)].numpy()  # (N, C, H, W) uint8
    return [img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0) for img in x]
