"""Hostile input and faults: every case a user (or a broken machine) can cause ends in one clear message
or a documented fallback, never a traceback, never lost work, never a file outside its folder.

The table of cases, with the test that proves each, is docs/reliability.md. Cases already proven by
another test file (tests/test_jobs.py) are referenced there, not repeated here.
"""
from __future__ import annotations

import gzip
import io
import os
import pickle
import resource
import struct
import subprocess
import sys
import threading
import time
import types
import zipfile
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent

import cnnviz.data as data_mod  # noqa: E402
import cnnviz.jobs as jobs_mod  # noqa: E402
import cnnviz.runs as runs_mod  # noqa: E402
from cnnviz import checkpoints  # noqa: E402
from cnnviz.checkpoints import CheckpointError, load_checkpoint, make_meta, save_checkpoint  # noqa: E402
from cnnviz.data import Dataset, DataUnavailable, available_sources, load_dataset  # noqa: E402
from cnnviz.images import ImageError, load_image  # noqa: E402
from cnnviz.jobs import JobRegistry  # noqa: E402
from cnnviz.models import build_model  # noqa: E402
from cnnviz.config import RunConfig  # noqa: E402
from cnnviz.runs import run_training  # noqa: E402
from cnnviz.storage import UnsafePath, safe_name, unique_path  # noqa: E402
from cnnviz.train import TrainResult  # noqa: E402

WAIT = 180  # seconds: the machine may be busy training other models
TINY = RunConfig("mlp", epochs=1, limit_train=2048, batch_size=512)  # 4 batches per epoch, ~1 s


def _one_line(msg: str, limit: int = 300) -> None:
    """A message for the user: one short line, no traceback, no Python internals."""
    assert msg and "\n" not in msg and len(msg) < limit, msg
    assert "Traceback" not in msg and "File \"" not in msg, msg


def _require_fashion_mnist():
    if available_sources().get("fashion-mnist") is None:
        msg = "Fashion-MNIST not found (apt-get install dataset-fashion-mnist)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


# ==== checkpoints ==================================================================================

def _meta(model, arch="mlp", dataset="fashion-mnist", in_shape=(1, 28, 28), **over):
    meta = make_meta(arch=arch, downsample=None, dataset={"name": dataset, "source": "test"},
                     in_shape=in_shape, num_classes=10, train={"seed": 0}, history=[], complete=True,
                     reason="completed", model=model)
    return {**meta, **over}


def _torch_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def mlp():
    torch.manual_seed(0)
    return build_model("mlp", (1, 28, 28), 10, None)


@pytest.fixture(scope="module")
def good(mlp, tmp_path_factory):
    """A real, valid checkpoint file (an untrained MLP for Fashion-MNIST) and its bytes."""
    path = save_checkpoint(tmp_path_factory.mktemp("ck") / "good.pt", _meta(mlp), mlp)
    return path, path.read_bytes()


def test_valid_checkpoint_loads_from_bytes_and_path(good):
    # The positive control: every refusal below is a refusal of the bad part, not of everything.
    path, raw = good
    for source in (raw, path, str(path)):
        ck = load_checkpoint(source, expect_arch="mlp", expect_dataset="fashion-mnist", max_bytes=len(raw))
        assert ck.meta["arch"] == "mlp" and not ck.model.training


class _RunsCode:
    """Unpickling this would call open(marker, "w"): creating the marker proves code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


# tests/test_checkpoints.py covers a torch.save file with open()/os.system payloads (path and bytes) and a
# protocol-2 pickle; these are the other pickle protocols an attacker could pick.
@pytest.mark.parametrize("container", ["pickle-0", "pickle-4", "pickle-5"])
@pytest.mark.parametrize("as_path", [False, True], ids=["bytes", "path"])
def test_pickle_that_would_run_code_is_refused_and_never_runs(container, as_path, mlp, tmp_path):
    marker = tmp_path / "marker"
    payload = {**_meta(mlp), "state_dict": mlp.state_dict(), "evil": _RunsCode(marker)}
    raw = pickle.dumps(payload, protocol=int(container.split("-")[1]))
    source = raw
    if as_path:
        source = tmp_path / "evil.pt"
        source.write_bytes(raw)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(source)
    assert not marker.exists(), "unpickling ran code"
    _one_line(str(e.value))


def _damaged(raw: bytes) -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    z = io.BytesIO()
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("data.txt", "a zip, but not a torch file")
    return {"truncated to half": raw[: len(raw) // 2], "first 100 bytes": raw[:100],
            "last 10 bytes cut": raw[:-10], "one byte": raw[:1],
            "random bytes": rng.integers(0, 256, 5000, dtype=np.uint8).tobytes(),
            "text": b"this is not a checkpoint\n" * 20, "empty": b"", "another zip": z.getvalue(),
            "a PNG": b"\x89PNG\r\n\x1a\n" + bytes(100)}


def test_damaged_or_foreign_files_are_refused_with_one_clear_message(good):
    # Half a file and random bytes: tests/test_checkpoints.py. These are the other ways a file is broken.
    for what, raw in _damaged(good[1]).items():
        if what in ("truncated to half", "random bytes"):
            continue
        with pytest.raises(CheckpointError) as e:
            load_checkpoint(raw)
        _one_line(str(e.value))
        assert str(e.value) == "not a readable checkpoint (truncated, corrupt or another format)", what


@pytest.mark.parametrize("obj, message", [
    (torch.zeros(3), "not a cnnviz checkpoint"),
    ([1, 2, 3], "not a cnnviz checkpoint"),
], ids=["a tensor", "a list"])  # a plain state_dict: tests/test_checkpoints.py
def test_other_torch_files_are_not_cnnviz_checkpoints(obj, message):
    with pytest.raises(CheckpointError, match=message) as e:
        load_checkpoint(_torch_bytes(obj))
    _one_line(str(e.value))


def test_weights_that_do_not_fit_are_refused_with_what_is_wrong(mlp):
    # tests/test_checkpoints.py: missing, extra and misshapen weights are refused. Here: the message
    # names what is wrong, and weights that are not tensors are refused too.
    sd = mlp.state_dict()
    first = next(iter(sd))
    cases = {
        "missing": ({k: v for k, v in sd.items() if k != first}, f"missing {first}"),
        "extra": ({**sd, "junk.weight": torch.zeros(2)}, "junk.weight"),
        "misshapen, smaller": ({**sd, first: torch.zeros(3)}, "the model needs 535,818 values"),
        "misshapen, larger": ({**sd, first: torch.zeros(sd[first].numel() + 1)}, "size mismatch"),
        "not tensors": ({k: 1 for k in sd}, "weights do not fit"),
        "not a dict": ([1, 2], "has no weights"),
    }
    for what, (state, needle) in cases.items():
        with pytest.raises(CheckpointError) as e:
            load_checkpoint(_torch_bytes({**_meta(mlp), "state_dict": state}))
        _one_line(str(e.value))
        assert needle in str(e.value), (what, str(e.value))


@pytest.mark.parametrize("version, message", [  # FORMAT_VERSION + 1: tests/test_checkpoints.py
    (99, "format version 99 is newer than this cnnviz understands"),
    (None, "no valid format version"),
    ("1", "no valid format version"),
    (1.5, "no valid format version"),
    (True, "no valid format version"),
    (0, "no valid format version"),
    (-1, "no valid format version"),
])
def test_newer_or_invalid_format_version_is_refused(mlp, version, message):
    with pytest.raises(CheckpointError, match=message) as e:
        load_checkpoint(_torch_bytes({**_meta(mlp), "format_version": version, "state_dict": mlp.state_dict()}))
    _one_line(str(e.value))


@pytest.mark.parametrize("over, message", [  # a missing or unknown arch: tests/test_checkpoints.py
    ({"arch": ["mlp"]}, "missing its architecture or dataset record"),
    ({"dataset": "fashion-mnist"}, "missing its architecture or dataset record"),
    ({"dataset": {"name": ["x"]}}, "missing its architecture or dataset record"),
    ({"downsample": "zzz"}, "cannot rebuild the model"),
    ({"in_shape": "abc"}, "cannot rebuild the model"),
    ({"num_classes": -1}, "cannot rebuild the model"),
    ({"num_classes": "ten"}, "cannot rebuild the model"),
    ({"history": "not a list"}, "training history is malformed"),
    ({"history": [1, 2]}, "training history is malformed"),
], ids=lambda v: str(v))
def test_broken_records_are_refused_with_one_clear_message(mlp, over, message):
    with pytest.raises(CheckpointError, match=message) as e:
        load_checkpoint(_torch_bytes({**_meta(mlp), **over, "state_dict": mlp.state_dict()}))
    _one_line(str(e.value))


def test_forged_shapes_cannot_make_the_loader_allocate_a_huge_model(mlp):
    # A small file claiming a 1000x1000 input: an MLP for it has a 512 x 1,000,000 first layer (2 GB).
    # The shapes are checked on the meta device first, so nothing of that size is ever allocated; nor
    # when the file's weights have those shapes as views of a 1-value storage (a 4 KB file).
    def expanded(shape):
        with torch.device("meta"):
            shapes = build_model("mlp", tuple(shape), 10, None).state_dict()
        return {k: torch.zeros(1).expand(*v.shape) for k, v in shapes.items()}

    files = [{**_meta(mlp), "in_shape": shape, "state_dict": mlp.state_dict()}
             for shape in ([1, 1000, 1000], [1, 100000, 100000], [3, 4000, 4000])]
    files.append({**_meta(mlp), "in_shape": [1, 1000, 1000], "state_dict": expanded([1, 1000, 1000])})
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    for obj in files:
        raw = _torch_bytes(obj)
        assert len(raw) < 3e6
        t0 = time.perf_counter()
        with pytest.raises(CheckpointError, match="weights do not fit the architecture: the model needs") as e:
            load_checkpoint(raw)
        _one_line(str(e.value))
        assert time.perf_counter() - t0 < 10
    grew_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert grew_mb < 200, f"peak memory grew by {grew_mb:.0f} MB while refusing forged shapes"


def test_checkpoints_over_the_size_limit_are_refused_before_reading(good, monkeypatch):
    path, raw = good

    def must_not_read(*a, **k):
        raise AssertionError("the file was read although it is over the limit")

    monkeypatch.setattr(checkpoints.torch, "load", must_not_read)
    for source in (raw, path):
        with pytest.raises(CheckpointError, match=r"over the 1 MB limit") as e:
            load_checkpoint(source, max_bytes=10**6)
        _one_line(str(e.value))


# ---- the Streamlit glue: pages.ui.loaders.uploaded_checkpoint and the upload limit -----------------

@pytest.fixture
def ui_module():
    """The app layer's loaders (uploads, the upload limit, datasets)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from pages.ui import loaders

    return loaders


def test_uploaded_checkpoint_loads_good_bytes_and_refuses_bad_ones(ui_module, good):
    assert ui_module.uploaded_checkpoint(good[1]).meta["arch"] == "mlp"
    for what, raw in _damaged(good[1]).items():
        with pytest.raises(CheckpointError):
            ui_module.uploaded_checkpoint(raw)


def test_uploads_over_the_limit_are_refused_before_hashing_or_reading(ui_module, monkeypatch):
    monkeypatch.setattr(ui_module, "MAX_UPLOAD_MB", 1)

    def must_not_touch(*a, **k):
        raise AssertionError("an over-limit upload was hashed or read")

    monkeypatch.setattr(ui_module.hashlib, "sha256", must_not_touch)
    monkeypatch.setattr(checkpoints.torch, "load", must_not_touch)
    with pytest.raises(CheckpointError, match=r"over the 1 MB limit") as e:
        ui_module.uploaded_checkpoint(b"\0" * (10**6 + 1))
    _one_line(str(e.value))


def test_upload_limit_defaults_to_100_mb_can_be_lowered_by_the_env_and_survives_garbage(ui_module, monkeypatch):
    from cnnviz import limits

    monkeypatch.delenv("CNNVIZ_MAX_UPLOAD_MB", raising=False)
    assert limits.upload_limit_mb() == limits.MAX_UPLOAD_MB == 100
    for value, mb in (("7", 7), ("250", 100), ("lots", 100), ("", 100), ("0", 100), ("-5", 100)):
        monkeypatch.setenv("CNNVIZ_MAX_UPLOAD_MB", value)  # above 100: the server would refuse the file anyway
        assert limits.upload_limit_mb() == mb, value  # a typo must not take the app down
    # The page's limit is that function's value at import (the environment of this test run).
    monkeypatch.undo()
    assert ui_module.MAX_UPLOAD_MB == limits.upload_limit_mb()


def test_streamlit_lets_every_file_up_to_cnnviz_limit_through_and_cnnviz_refuses_the_rest():
    """cnnviz's limit is MAX_UPLOAD_MB x 10**6 bytes, the unit Streamlit's browser uploader counts in and prints
    ("100MB per file"), so both say one number. Its server counts maxUploadSize in 2**20 bytes (its upload
    route, read below) and refuses a request whose body (the file plus ~200 bytes of multipart framing) is
    bigger: a file of exactly cnnviz's limit must fit."""
    import inspect
    import tomllib

    from streamlit.web.server.starlette import starlette_routes

    from cnnviz import limits

    setting = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["server"]["maxUploadSize"]
    assert setting == limits.MAX_UPLOAD_MB == 100
    cnnviz_bytes = limits.MAX_UPLOAD_MB * limits.MB
    assert 'get_option("server.maxUploadSize") * 1024 * 1024' in inspect.getsource(starlette_routes)
    assert setting * 2**20 >= cnnviz_bytes + 2**20  # the server: the file and its framing fit
    assert setting * 10**6 == cnnviz_bytes == 100_000_000  # the browser on Linux and macOS: the same number


# ---- the page: each bad upload is one st.error, no exception ----------------------------------------

def _bad_uploads(good_raw: bytes, mlp, tmp_path) -> dict[str, bytes]:
    sd = mlp.state_dict()
    return {
        "evil.pt": _torch_bytes({**_meta(mlp), "state_dict": sd, "evil": _RunsCode(tmp_path / "marker")}),
        "truncated.pt": good_raw[: len(good_raw) // 2],
        "random.pt": np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "empty.pt": b"",
        "missing-keys.pt": _torch_bytes({**_meta(mlp), "state_dict": dict(list(sd.items())[1:])}),
        "extra-keys.pt": _torch_bytes({**_meta(mlp), "state_dict": {**sd, "junk": torch.zeros(1)}}),
        "newer.pt": _torch_bytes({**_meta(mlp), "format_version": 2, "state_dict": sd}),
        "unknown-arch.pt": _torch_bytes({**_meta(mlp), "arch": "resnet", "state_dict": sd}),
        "forged-shape.pt": _torch_bytes({**_meta(mlp), "in_shape": [1, 1000, 1000], "state_dict": sd}),
        "tensor.pt": _torch_bytes(torch.zeros(4)),
        "history-garbage.pt": _torch_bytes({**_meta(mlp), "history": "not a list", "state_dict": sd}),
    }


def _app(default_timeout=300):
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=default_timeout)


def _require_page(name: str):
    if not (ROOT / "pages" / name).is_file():
        msg = f"pages/{name} does not exist yet"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.mark.slow
def test_train_compare_page_shows_one_error_per_bad_upload_and_no_exception(good, mlp, tmp_path, ui_module,
                                                                          monkeypatch):
    # tests/test_page_train_compare.py uploads a truncated and a hostile file together, and a good one;
    # here every kind of bad file, one at a time and all together, and one over the upload limit.

    _require_page("train_compare.py")
    monkeypatch.setattr(ui_module, "MAX_UPLOAD_MB", 1)  # so an over-limit file is small enough to build
    at = _app()
    at.switch_page("pages/train_compare.py")
    at.query_params["part"] = "Compare"  # the uploader is on the Compare tab
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    uploader = at.file_uploader(key="c_upload")
    # the widget's own limit is loaders.MAX_UPLOAD_MB, in the browser's own "MB" (10**6 bytes, see above)
    assert uploader.proto.max_upload_size_mb == 1
    baseline = len(at.error)
    bad = _bad_uploads(good[1], mlp, tmp_path)
    assert len(good[1]) > 2**20
    bad["too-big.pt"] = good[1]  # a valid checkpoint, but over the (lowered) 1 MB limit
    for name, raw in bad.items():
        at.file_uploader(key="c_upload").set_value((name, raw, "application/octet-stream")).run()
        assert not at.exception, (name, [e.value for e in at.exception])
        mine = [e.value for e in at.error if name in e.value]
        assert len(mine) == 1 and len(at.error) == baseline + 1, (name, [e.value for e in at.error])
        _one_line(mine[0])
    assert not (tmp_path / "marker").exists()
    # All of them at once: one line each.
    at.file_uploader(key="c_upload").set_value(
        [(n, r, "application/octet-stream") for n, r in bad.items()]).run()
    assert not at.exception
    assert len(at.error) == baseline + len(bad)


# ==== image uploads ================================================================================

def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _gray_png(width: int, height: int, rows: int | None = None) -> bytes:
    """A valid 8-bit grayscale PNG of any size, built row by row (never held decoded in memory).

    All-zero rows compress ~1000:1, so a 10000x10000 image is a ~100 KB file: a decompression bomb.
    `rows` < height writes only that many rows (a truncated image).
    """
    comp, row, parts = zlib.compressobj(9), b"\0" * (width + 1), []
    for _ in range(height if rows is None else rows):
        parts.append(comp.compress(row))
    parts.append(comp.flush())
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + _png_chunk(b"IDAT", b"".join(parts)) + _png_chunk(b"IEND", b""))


def _encode(im, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return _gray_png(10000, 10000)


def test_huge_image_is_refused_from_its_header_without_decoding(bomb, monkeypatch):
    import tracemalloc

    from PIL import Image

    assert len(bomb) < 1_000_000  # ~100 KB on disk for 100 megapixels
    decoded = []
    real_load = Image.Image.load
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(self.size) or real_load(self))
    tracemalloc.start()
    try:
        for channels, size in ((1, (28, 28)), (3, (32, 32))):
            with pytest.raises(ImageError, match="10000x10000 pixels") as e:
                load_image(bomb, channels, size)
            _one_line(str(e.value))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert decoded == [], "pixel data was decoded before the size check"
    assert peak < 50 * 2**20  # Python-side allocations (PIL's own buffers are checked in a subprocess below)


@pytest.mark.slow  # a fresh interpreter: its peak RSS is not hidden by what this process already loaded
def test_huge_image_and_decompression_bomb_keep_process_memory_small(bomb, tmp_path):
    (tmp_path / "bomb.png").write_bytes(bomb)
    whole = _gray_png(3000, 3000)
    (tmp_path / "truncated.png").write_bytes(whole[: len(whole) // 2])  # cut inside the pixel data
    script = (
        "import resource, sys\n"
        "from pathlib import Path\n"
        "from cnnviz.images import load_image, ImageError\n"
        "folder = Path(sys.argv[1])\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "for name in ('bomb.png', 'truncated.png'):\n"
        "    for ch, size in ((1, (28, 28)), (3, (32, 32))):\n"
        "        try:\n"
        "            load_image((folder / name).read_bytes(), ch, size)\n"
        "            print(name, 'ACCEPTED')\n"
        "        except ImageError as e:\n"
        "            print(name, 'REFUSED', e)\n"
        "print('GREW_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n")
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=ROOT, capture_output=True,
                         text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert sum("bomb.png REFUSED the image is 10000x10000" in x for x in lines) == 2, lines
    assert sum("truncated.png REFUSED the image data is damaged" in x for x in lines) == 2, lines
    grew_mb = int(lines[-1].split()[1]) / 1024
    assert grew_mb < 50, f"peak memory grew by {grew_mb:.0f} MB (decoding 10000x10000 would take 100+ MB)"


def _images() -> dict[str, bytes]:
    import cv2
    from PIL import Image

    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8))
    return {
        "16-bit gray PNG": _encode(Image.fromarray((np.arange(1200).reshape(40, 30) * 50).astype(np.uint16)), "PNG"),
        "16-bit RGB PNG": cv2.imencode(".png", (rng.random((20, 20, 3)) * 65535).astype(np.uint16))[1].tobytes(),
        "CMYK JPEG": _encode(Image.new("CMYK", (20, 20), (10, 20, 30, 40)), "JPEG"),
        "RGBA PNG": _encode(Image.new("RGBA", (20, 20), (255, 0, 0, 0)), "PNG"),
        "gray+alpha PNG": _encode(Image.new("LA", (20, 20), (100, 50)), "PNG"),
        "gray PNG": _encode(Image.new("L", (20, 20), 128), "PNG"),
        "RGB JPEG": _encode(rgb, "JPEG"),
        "palette PNG": _encode(rgb.convert("P"), "PNG"),
        "1-bit PNG": _encode(Image.new("1", (20, 20), 1), "PNG"),
        "float TIFF": _encode(Image.fromarray(rng.random((20, 20)).astype(np.float32)), "TIFF"),
        "GIF": _encode(rgb.convert("P"), "GIF"),
        "WebP": _encode(rgb, "WEBP"),
        "already 28x28 gray": _encode(Image.new("L", (28, 28), 7), "PNG"),
        # Well-formed, but its compressed data ends after 5 of 40 rows: PIL decodes the rest as black.
        "PNG with rows missing": _gray_png(30, 40, rows=5),
    }


@pytest.mark.parametrize("channels, size", [(1, (28, 28)), (3, (32, 32))], ids=["gray model", "RGB model"])
def test_every_image_kind_is_converted_to_the_models_input_with_a_note(channels, size):
    for what, raw in _images().items():
        x, notes = load_image(raw, channels, size)
        assert x.dtype == torch.uint8 and tuple(x.shape) == (channels, *size), what
        for note in notes:
            _one_line(note)
        assert not any(n.split(" converted to ")[0].lower() == n.split(" converted to ")[-1].lower()
                       for n in notes if " converted to " in n), (what, notes)  # no "RGB converted to RGB"
        if what != "already 28x28 gray" or channels == 3:
            assert notes, what  # every conversion is reported


def test_gray_for_rgb_and_rgb_for_gray_are_converted_and_said():
    imgs = _images()
    _, notes = load_image(imgs["gray PNG"], 3, (32, 32))
    assert "grayscale converted to RGB" in notes
    _, notes = load_image(imgs["RGB JPEG"], 1, (28, 28))
    assert "RGB converted to grayscale" in notes
    x, notes = load_image(imgs["RGBA PNG"], 3, (32, 32))
    assert "transparency flattened onto white" in notes
    assert x[0].float().mean() > 200 and x[1].float().mean() > 200  # fully transparent red -> white
    x, notes = load_image(imgs["16-bit gray PNG"], 1, (28, 28))
    assert "16-bit image scaled to 8 bits" in notes and x.max() >= 250  # the full 16-bit range is used
    _, notes = load_image(imgs["CMYK JPEG"], 3, (32, 32))
    assert "CMYK converted to RGB" in notes
    x, notes = load_image(imgs["already 28x28 gray"], 1, (28, 28))
    assert notes == [] and int(x.float().mean()) == 7


def test_files_that_are_not_usable_images_are_refused_with_one_line():
    from PIL import Image

    png = _encode(Image.new("L", (64, 64), 3), "PNG")
    jpg = _encode(Image.new("RGB", (64, 64), (1, 2, 3)), "JPEG")
    cases = {
        "not an image": (b"hello, I am a text file", "not an image"),
        "zero bytes": (b"", "the file is empty"),
        "SVG": (b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>', "not an image"),
        "truncated PNG": (png[:60], None),
        "truncated JPEG": (jpg[:200], None),
        "PNG with a bad CRC": (png[:30] + bytes([png[30] ^ 0xFF]) + png[31:], None),
        "over the byte limit": (b"\0" * 100, "over the 0 MB limit"),
    }
    for what, (raw, needle) in cases.items():
        kw = {"max_bytes": 50} if what == "over the byte limit" else {}
        with pytest.raises(ImageError) as e:
            load_image(raw, 1, (28, 28), **kw)
        _one_line(str(e.value))
        if needle:
            assert needle in str(e.value), (what, str(e.value))


# ---- the pages: each bad image is one st.error, each convertible one a "Converted" caption -----------

IMAGE_PAGES = {  # page -> its uploader's key (both pages use pages.ui.widgets.image_picker)
    "downsampling.py": "upload",
    "engineered.py": "e_upload",
}


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.parametrize("page", list(IMAGE_PAGES))
def test_image_pages_show_one_error_per_bad_image_and_a_note_per_conversion(page, bomb):
    from PIL import Image

    _require_page(page)
    _require_fashion_mnist()
    key = IMAGE_PAGES[page]
    at = _app()
    at.switch_page(f"pages/{page}")
    at.query_params["dataset"] = "fashion-mnist"  # a grayscale model: RGB, CMYK and alpha get converted
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    baseline = len(at.error)
    imgs = _images()
    bad = {"notes.png": b"I am a text file", "empty.png": b"", "bomb.png": bomb,
           "cut.png": _encode(Image.new("L", (64, 64), 3), "PNG")[:60]}
    for name, raw in bad.items():
        at.file_uploader(key=key).set_value((name, raw, "image/png")).run()
        assert not at.exception, (name, [e.value for e in at.exception])
        assert len(at.error) == baseline + 1, (name, [e.value for e in at.error])
        _one_line(at.error[-1].value)
    for name, kind in (("rgb.jpg", "RGB JPEG"), ("cmyk.jpg", "CMYK JPEG"), ("alpha.png", "RGBA PNG"),
                       ("deep.png", "16-bit gray PNG")):
        at.file_uploader(key=key).set_value((name, imgs[kind], "image/png")).run()
        assert not at.exception, (name, [e.value for e in at.exception])
        assert len(at.error) == baseline, (name, [e.value for e in at.error])
        assert any(c.value.startswith("Converted: ") for c in at.caption), (name, [c.value for c in at.caption])


# ==== names and paths ==============================================================================

HOSTILE_NAMES = ["../x", "/etc/passwd", "..\\..\\x", "a\x00b", "\x00", "\u202etxt.exe", "ｘ／．．／y", "..", ".",
                 "", "   ", "\n", "runs/../../etc", "C:\\Windows\\system32", "~/.ssh/id_rsa", "名前", "e\u0301",
                 "a" * 300, ".hidden", "%2e%2e%2f", "-rf", "x.pt", "a/b/c"]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=lambda n: repr(n)[:20])
def test_user_names_cannot_escape_the_runs_folder(name, tmp_path, mlp):
    import re

    folder = tmp_path / "runs"
    stem = safe_name(name)
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}", stem), stem
    path = unique_path(folder, name)
    assert path.parent == folder and path.suffix == ".pt"
    written = save_checkpoint(path, _meta(mlp), mlp)
    assert written.resolve().parent == folder.resolve()
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [path.name]


def test_unique_path_refuses_a_planted_symlink_out_of_the_folder(tmp_path):
    folder, outside = tmp_path / "runs", tmp_path / "outside"
    folder.mkdir()
    outside.mkdir()
    (folder / "x.pt").symlink_to(outside / "x.pt")  # dangling: "x.pt" looks free but points outside
    with pytest.raises(UnsafePath, match="escapes its folder"):
        unique_path(folder, "x")
    (outside / "x.pt").write_bytes(b"theirs")  # now it exists: the next free name is used instead
    assert unique_path(folder, "x") == folder / "x-2.pt"


def _tiny_dataset(n=64, seed=0) -> Dataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=g)
    y = torch.arange(n) % 10
    return Dataset("fashion-mnist", tuple(str(i) for i in range(10)), x, y, x[:32], y[:32], (0.5,), (0.5,),
                   "test:random")


def test_a_run_whose_name_is_taken_during_training_keeps_both_files(tmp_path):
    cfg = RunConfig("mlp", epochs=1, batch_size=32)
    theirs = tmp_path / f"{cfg.name}.pt"

    def another_process_takes_the_name():  # after a batch: before this run's first checkpoint is written
        if not theirs.exists():
            theirs.write_bytes(b"another run's weights")
        return False

    path, result = run_training(cfg, folder=tmp_path, data=_tiny_dataset(), should_stop=another_process_takes_the_name)
    assert result.completed and path == tmp_path / f"{cfg.name}-2.pt"
    assert theirs.read_bytes() == b"another run's weights"
    assert load_checkpoint(path).meta["complete"] is True


def test_a_run_told_to_write_a_taken_file_refuses_and_leaves_it(tmp_path):
    out = tmp_path / "named.pt"

    def another_process_takes_the_name():  # after a batch: before this run's first checkpoint is written
        if not out.exists():
            out.write_bytes(b"another run's weights")
        return False

    with pytest.raises(FileExistsError):
        run_training(RunConfig("mlp", epochs=1, batch_size=32), out=out, data=_tiny_dataset(),
                     should_stop=another_process_takes_the_name)
    assert out.read_bytes() == b"another run's weights"


def test_jobs_with_hostile_or_equal_names_get_distinct_files_inside_the_folder(tmp_path, monkeypatch):
    # Scheduling only (run_training replaced): tests/test_jobs.py trains real jobs with equal names.
    seen = []

    def fake_run_training(cfg, *, out, **kwargs):
        seen.append(out)
        out.write_bytes(b"a finished run")  # on disk, so later jobs must pick other names
        return out, TrainResult([], True, "completed")

    monkeypatch.setattr(jobs_mod, "run_training", fake_run_training)
    reg = JobRegistry(max_concurrent=1, folder=tmp_path)
    jobs = [reg.submit(TINY, name=n) for n in ("../../etc/x", "/etc/x", "x", "x", "..\\x")]
    assert all(reg.wait(j.id, 30).state == "completed" for j in jobs)
    assert [p.name for p in seen] == ["x.pt", "x-2.pt", "x-3.pt", "x-4.pt", "x-5.pt"]
    assert all(p.parent == tmp_path for p in seen)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == sorted(p.name for p in seen)
    assert reg.shutdown(timeout=30)


# ==== training faults ==============================================================================

def _faulty_build(faults: list):
    """build_model whose n-th built model raises `faults[n]` from its forward after its first epoch."""
    real = runs_mod.build_model

    def build(*args, **kwargs):
        model = real(*args, **kwargs)
        fault = faults.pop(0) if faults else None
        if fault is None:
            return model
        calls = [0]
        inner = model.forward

        def forward(self, x):
            if self.training:
                calls[0] += 1
                if calls[0] > 4:  # TINY has 4 batches per epoch: epoch 1 completes, epoch 2 fails
                    raise fault
            return inner(x)

        model.forward = types.MethodType(forward, model)
        return model

    return build


@pytest.mark.slow
@pytest.mark.data
def test_training_faults_end_cleanly_save_the_epochs_done_and_the_next_run_starts(tmp_path, monkeypatch):
    _require_fashion_mnist()
    faults = [RuntimeError("simulated failure in a training step"),
              torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"), None, None]
    monkeypatch.setattr(runs_mod, "build_model", _faulty_build(faults))
    reg = JobRegistry(max_concurrent=1, folder=tmp_path)
    try:
        three = replace(TINY, epochs=3)
        step_error = reg.submit(three, name="step-error")
        oom = reg.submit(three, name="oom")
        stopped = reg.submit(replace(TINY, epochs=100), name="stopped")
        after = reg.submit(TINY, name="after")

        s = reg.wait(step_error.id, WAIT)
        assert s.state == "failed" and s.reason == "RuntimeError: simulated failure in a training step"
        ck = load_checkpoint(s.checkpoint)
        assert ck.meta["complete"] is False and ck.meta["reason"] == s.reason and len(ck.record.history) == 1

        s = reg.wait(oom.id, WAIT)
        assert s.state == "failed" and "out of memory" in s.reason.lower()
        ck = load_checkpoint(s.checkpoint)
        assert ck.meta["complete"] is False and len(ck.record.history) == 1 == len(s.history)

        s = stopped.wait_for(lambda s: len(s.history) >= 1, WAIT)
        assert reg.cancel(stopped.id)
        s = reg.wait(stopped.id, WAIT)
        assert s.state == "stopped" and s.reason == f"stopped after {len(s.history)} of 100 epochs"
        assert load_checkpoint(s.checkpoint).meta["complete"] is False

        s = reg.wait(after.id, WAIT)  # the queue went on: the next run starts and finishes normally
        assert s.state == "completed" and load_checkpoint(s.checkpoint).meta["complete"] is True
        names = [j.snapshot().checkpoint.name for j in (step_error, oom, stopped, after)]
        assert names == ["step-error.pt", "oom.pt", "stopped.pt", "after.pt"]
    finally:
        assert reg.shutdown(timeout=WAIT)


# ---- the page: jobs live in the process, not in the session ------------------------------------------

@pytest.fixture
def page_registry(ui_module, tmp_path, monkeypatch):
    """A fresh process-wide registry (cap 1) writing to a temporary runs folder, for the page tests."""
    from pages.ui import catalog, jobs

    monkeypatch.setenv("CNNVIZ_MAX_JOBS", "1")
    monkeypatch.setattr(catalog, "USER_RUNS", tmp_path)
    jobs.registry.clear()
    reg = jobs.registry()
    assert reg.folder == tmp_path and reg.max_concurrent == 1
    yield reg
    reg.shutdown(timeout=WAIT)
    jobs.registry.clear()


def _gated_training(monkeypatch):
    """run_training waits at a gate (so a job is reliably "running"), then trains for real."""
    gate, entered = threading.Event(), threading.Event()
    real = jobs_mod.run_training

    def gated(cfg, **kwargs):
        entered.set()
        while not gate.wait(0.05):
            if kwargs["should_stop"]():
                break
        return real(cfg, **kwargs)

    monkeypatch.setattr(jobs_mod, "run_training", gated)
    return gate, entered


def _click_train_tiny(at):
    at.selectbox(key="t_arch").select("mlp").run()
    at.number_input(key="t_epochs").set_value(1)
    at.selectbox(key="t_subset").select(2048)
    at.button(key="t_train").click().run()
    assert not at.exception, [e.value for e in at.exception]


@pytest.mark.slow
@pytest.mark.data
def test_a_job_outlives_its_session_and_a_fresh_session_reads_it(page_registry, monkeypatch):
    _require_page("train_compare.py")
    _require_fashion_mnist()
    gate, entered = _gated_training(monkeypatch)
    first = _app()
    first.run()
    first.switch_page("pages/train_compare.py").run()
    _click_train_tiny(first)
    job_id = first.query_params.get("job") or first.session_state["train_job"]
    job_id = job_id[0] if isinstance(job_id, list) else job_id
    assert entered.wait(60) and page_registry.get(job_id).state == "running"
    del first  # the tab is closed: its session is gone, the job is not

    second = _app()  # a fresh session, e.g. the link reopened after a reload, on another page first
    second.query_params["job"] = job_id
    second.run()
    second.switch_page("pages/train_compare.py").run()
    assert not second.exception, [e.value for e in second.exception]
    assert page_registry.get(job_id).state == "running"
    assert any("running" in m.value for m in second.markdown), [m.value for m in second.markdown]

    gate.set()
    snap = page_registry.wait(job_id, WAIT)
    assert snap.state == "completed"
    second.run()
    assert not second.exception, [e.value for e in second.exception]
    assert any("Finished 1 epoch" in s.value for s in second.success), [s.value for s in second.success]
    assert snap.checkpoint.exists() and load_checkpoint(snap.checkpoint).meta["complete"] is True


@pytest.mark.slow
def test_jobs_over_the_cap_queue_with_a_visible_position(page_registry, monkeypatch):
    _require_page("train_compare.py")
    gate = threading.Event()

    def blocked(cfg, *, out, should_stop, **kwargs):  # no training: only the queue is under test
        while not gate.wait(0.05) and not should_stop():
            pass
        return out, TrainResult([], False, "stopped")

    monkeypatch.setattr(jobs_mod, "run_training", blocked)
    occupying = page_registry.submit(TINY, name="someone-else")  # another student's job holds the slot
    try:
        at = _app()
        at.run()
        at.switch_page("pages/train_compare.py").run()
        _click_train_tiny(at)
        mine = [j for j in page_registry.jobs() if j.id != occupying.id]
        assert len(mine) == 1 and mine[0].state == "queued" and page_registry.queue_position(mine[0].id) == 1
        assert any("waiting: 1 job ahead" in i.value for i in at.info), [i.value for i in at.info]
        assert any("1 running, 1 waiting" in c.value for c in at.caption), [c.value for c in at.caption]
    finally:
        gate.set()
        for j in page_registry.jobs():
            page_registry.cancel(j.id)


# ==== data faults ==================================================================================

def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def tiny_fashion_root(tmp_path, monkeypatch):
    """A data root holding a tiny Fashion-MNIST in torchvision's layout (and no other source)."""
    monkeypatch.setattr(data_mod, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian-package")
    monkeypatch.setattr(data_mod, "_MEMORY", {})
    raw = tmp_path / "root" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 20), ("t10k", 10)):
        _write_idx(raw / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(raw / f"{split}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    return tmp_path / "root"


def test_missing_dataset_offline_names_every_way_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(data_mod, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian-package")
    monkeypatch.setattr(data_mod, "_MEMORY", {})
    monkeypatch.delenv("CNNVIZ_CIFAR10_DIR", raising=False)
    offline = []
    monkeypatch.setattr(data_mod, "_download", lambda spec, root: offline.append(spec.name))  # None: offline
    for name, specific in (("fashion-mnist", ["FashionMNIST/raw", "apt-get install dataset-fashion-mnist",
                                              "fashion-mnist-img"]),
                           ("cifar10", ["cifar-10-batches-py", "cifar10-jpg", "tar xzf"])):
        with pytest.raises(DataUnavailable) as e:
            load_dataset(name, root=tmp_path)
        msg = str(e.value)
        _one_line(msg, limit=1000)  # one line, long because it names every way with its path
        assert name in msg and "go online" in msg and str(tmp_path) in msg
        for way in specific:
            assert way in msg, (name, way, msg)
    assert offline == ["fashion-mnist", "cifar10"]  # the download was tried, and failing it was not fatal


def test_missing_dataset_on_a_page_is_one_error_not_an_exception(ui_module, monkeypatch):
    from streamlit.testing.v1 import AppTest

    def page():
        from pages.ui import loaders

        loaders.dataset("no-such-dataset")
        import streamlit as st

        st.write("not reached")

    at = AppTest.from_function(page, default_timeout=120)
    at.run()
    assert not at.exception and len(at.error) == 1 and "unknown dataset 'no-such-dataset'" in at.error[0].value
    assert not any("not reached" in m.value for m in at.markdown)


# tests/test_data.py::test_a_corrupt_cache_file_is_rebuilt_from_the_source covers garbage bytes in an
# image folder's cache; these are the other ways a named dataset's cache can be broken.
@pytest.mark.parametrize("corruption", ["truncated", "wrong content", "code"])
def test_a_corrupt_dataset_cache_is_rebuilt_from_the_source(tiny_fashion_root, corruption, tmp_path):
    first = load_dataset("fashion-mnist", root=tiny_fashion_root, download=False)
    cache = data_mod._cache_path("fashion-mnist", tiny_fashion_root)
    assert cache.is_file() and first.source.startswith("torchvision:")
    good = cache.read_bytes()
    marker = tmp_path / "marker"
    cache.write_bytes({"truncated": good[: len(good) // 2],
                       "wrong content": _torch_bytes({"not": "a dataset"}),
                       "code": _torch_bytes({"x": _RunsCode(marker)})}[corruption])
    data_mod._MEMORY.clear()  # a new process: the cache file is read again
    again = load_dataset("fashion-mnist", root=tiny_fashion_root, download=False)
    assert torch.equal(again.train_x, first.train_x) and torch.equal(again.test_y, first.test_y)
    assert not marker.exists()
    rebuilt = torch.load(cache, weights_only=True)  # the cache was rewritten and is readable again
    assert torch.equal(rebuilt["train_x"], first.train_x)


def _image_folder(root: Path, broken: dict[str, bytes]) -> Path:
    from PIL import Image

    for split in ("train", "test"):
        for i, cls in enumerate(("cat", "dog")):
            d = root / split / cls
            d.mkdir(parents=True)
            for k in range(3):
                Image.new("RGB", (32, 32), (i * 100, k * 50, 7)).save(d / f"{k}.png")
    for name, raw in broken.items():
        (root / "train" / "cat" / name).write_bytes(raw)
    return root


def test_unreadable_files_in_an_image_folder_are_skipped_and_counted(tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.setattr(data_mod, "_MEMORY", {})
    broken = {"empty.jpg": b"", "text.png": b"not an image", "truncated.jpg": b"\xff\xd8\xff\xe0" + bytes(20),
              "truncated.png": _encode(Image.new("RGB", (32, 32), 5), "PNG")[:60]}
    folder = _image_folder(tmp_path / "pets", broken)
    (folder / "train" / "cat" / "notes.txt").write_text("not an image extension: ignored, not counted")
    ds = load_dataset(str(folder), root=tmp_path / "root", download=False)
    assert ds.skipped == len(broken) and ds.classes == ("cat", "dog")
    assert len(ds.train_y) == 6 and len(ds.test_y) == 6 and tuple(ds.train_x.shape[1:]) == (3, 32, 32)


def test_unreadable_files_in_the_cifar10_image_folder_are_skipped_and_counted(tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.setattr(data_mod, "_MEMORY", {})
    folder = tmp_path / "cifar10-jpg"
    classes = data_mod.DATASETS["cifar10"].classes
    for split in ("train", "test"):
        for cls in classes:
            (folder / split / cls).mkdir(parents=True)
            Image.new("RGB", (32, 32), (1, 2, 3)).save(folder / split / cls / "0.jpg")
    (folder / "train" / "cat" / "broken.jpg").write_bytes(b"\xff\xd8 broken")
    monkeypatch.setenv("CNNVIZ_CIFAR10_DIR", str(folder))
    ds = load_dataset("cifar10", root=tmp_path / "root", download=False)
    assert ds.skipped == 1 and len(ds.train_y) == 10 and ds.source == f"image-folder:{folder}"


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims width x height pixels, with one tiny IDAT: PIL reads the size from the header."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit gray
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_a_header_far_over_pils_own_limit_is_one_line_not_a_decompression_bomb_traceback():
    from PIL import Image

    data = _png_header(30000, 30000)  # 900 megapixels: Image.open itself raises DecompressionBombError
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(data))
    with pytest.raises(ImageError, match="refused unread") as e:
        load_image(data, 1, (28, 28))
    _one_line(str(e.value))


@pytest.mark.slow
@pytest.mark.parametrize("param, value", [
    ("k", "²"), ("k", "--5"), ("n", "9" * 5000), ("n", "٣"),  # pass str.isdigit, fail int() or are absurd
    ("layer", "x` [**Your session expired: log in again**](https://example.com) `"),  # markdown in the notice
    ("fill", "y" * 60_000),
])
def test_link_values_that_are_no_choice_fall_back_with_a_short_escaped_notice(param, value):
    from streamlit.testing.v1 import AppTest

    from pages.ui import nav

    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=180)
    at.switch_page(nav.lesson("downsampling").path)
    at.query_params[param] = value
    if param in ("k", "n", "fill"):  # the shift probe's controls, in its own tab
        at.query_params["part"] = "Is it shift-invariant?"
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    notice = next(i.value for i in at.info if f"`{param}=" in i.value)
    assert "in the link is not" in notice and len(notice) < 200
    echoed = notice.split("`")[1]  # the whole value sits in one code span: nothing of it renders as markdown
    assert notice.count("`") == 2 and echoed.startswith(f"{param}=") and "](" not in notice.replace(echoed, "")


def test_an_uploaded_checkpoint_names_only_a_registered_dataset_and_one_that_fits_its_weights(mlp, tmp_path):
    """An upload's dataset name is never a server folder; a dataset record that does not fit the weights
    is one line at load time, not a channel mismatch after the dataset was loaded for nothing."""
    folder = {**_meta(mlp), "dataset": {"name": str(tmp_path), "source": "test"}, "state_dict": mlp.state_dict()}
    with pytest.raises(CheckpointError, match="not a dataset this app has") as e:
        load_checkpoint(_torch_bytes(folder), registered_dataset=True)
    _one_line(str(e.value))
    assert load_checkpoint(_torch_bytes(folder)).record.dataset_name == str(tmp_path)  # the CLI's own folders
    wrong = {**_meta(mlp), "dataset": {"name": "cifar10", "source": "test"}, "state_dict": mlp.state_dict()}
    with pytest.raises(CheckpointError, match=r"says cifar10 \(3x32x32 images, 10 classes\) but its model") as e:
        load_checkpoint(_torch_bytes(wrong))
    _one_line(str(e.value))


def test_tensors_a_file_carries_beside_the_format_are_not_kept_in_memory(mlp):
    padded = {**_meta(mlp), "state_dict": mlp.state_dict(), "ballast": torch.zeros(4_000_000)}  # 16 MB
    ck = load_checkpoint(_torch_bytes(padded))
    assert "ballast" not in ck.meta and "state_dict" not in ck.meta
    assert not any(isinstance(v, torch.Tensor) for v in ck.meta.values())
