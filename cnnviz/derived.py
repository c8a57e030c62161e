"""Results derived from shipped checkpoints and a real test set, computed once and stored beside the manifest.

A page that shows, say, the confusion matrix of a shipped run or the shift probe of the shipped downsampling
nets would recompute it from the weights and 10,000 test images on every new server (the probe alone took
13.7 s of an 18.4 s page open on a 2-core machine). `scripts/train_all.py` computes each planned result once
and writes `checkpoints/derived.json`; a page reads it in milliseconds.

A stored result is used only when it is the result of the same computation on the same inputs: its key is
the kind, its parameters, the SHA-256 of every checkpoint file it reads and the digest of the test set
(images and labels). A user whose CIFAR-10 came from torchvision's download instead of the JPEG copy, or
who retrained a shipped file, gets a live computation, never a stale number. `tests/test_derived.py`
recomputes every stored result and fails if one differs.
"""
from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from .paths import shipped_dir
from .storage import atomic_write

FORMAT = 1
FILE_NAME = "derived.json"


@dataclass(frozen=True)
class Kind:
    """One kind of derived result: how to compute it from (checkpoint files, dataset, parameters), as JSON."""

    name: str
    compute: Callable[..., dict]  # (files: list[Path], data: Dataset, **params) -> JSON-able dict
    about: str


KINDS: dict[str, Kind] = {}


def kind(name: str, about: str):
    """Register a derived-result kind (a duplicate name is an error, like the model registry's)."""
    def register(fn):
        if name in KINDS:
            raise ValueError(f"derived result kind {name!r} is registered twice")
        KINDS[name] = Kind(name, fn, about)
        return fn
    return register


# ---- identity of the inputs ---------------------------------------------------------------------------

@lru_cache(maxsize=512)
def _file_sha256(path: str, mtime: float, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_sha256(path: str | Path) -> str:
    """The file's SHA-256, hashed once per (path, mtime, size) in this process (63 MB of checkpoints: ~0.1 s)."""
    st = Path(path).stat()
    return _file_sha256(str(path), st.st_mtime, st.st_size)


def test_set_digest(data) -> str:
    """SHA-256 of a dataset's test images and labels, once per Dataset object (CIFAR-10's 30 MB: ~40 ms)."""
    cached = data.extra.get("test_sha256")
    if cached is None:
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(data.test_x.numpy()).tobytes())
        h.update(np.ascontiguousarray(data.test_y.numpy()).tobytes())
        cached = data.extra["test_sha256"] = h.hexdigest()
    return cached


def key(kind_name: str, files: list[Path], data, params: dict) -> str:
    """What the result depends on, as one string: kind, parameters, file digests and the test set's digest."""
    return json.dumps({"kind": kind_name, "params": params, "test_set": test_set_digest(data),
                       "files": {Path(f).name: file_sha256(f) for f in files}}, sort_keys=True)


# ---- the store ----------------------------------------------------------------------------------------

def store_path(folder: Path | None = None) -> Path:
    return Path(folder or shipped_dir()) / FILE_NAME


@lru_cache(maxsize=8)
def _read_store(path: str, mtime: float) -> dict:
    try:
        obj = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return obj.get("results", {}) if isinstance(obj, dict) and obj.get("format") == FORMAT else {}


def stored_results(folder: Path | None = None) -> dict[str, dict]:
    """key -> {"kind", "params", "value"} of the store (empty when it is missing or unreadable)."""
    path = store_path(folder)
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return {}
    return _read_store(str(path), mtime)


def computed_on() -> str:
    """The CPU and torch that computed a store: recomputation there must be exact (`tests/test_derived.py`)."""
    import torch

    from .device import cpu_name

    return f"{cpu_name()} | torch {torch.__version__}"


def store_computed_on(folder: Path | None = None) -> str | None:
    try:
        return json.loads(store_path(folder).read_text()).get("computed_on")
    except (OSError, ValueError, AttributeError):
        return None


def lookup(kind_name: str, files: list[Path], data, params: dict, folder: Path | None = None) -> dict | None:
    """The stored value of exactly this computation, or None."""
    entry = stored_results(folder).get(key(kind_name, files, data, params))
    return entry["value"] if entry else None


def get(kind_name: str, files: list[Path], data, params: dict, folder: Path | None = None) -> tuple[dict, bool]:
    """(value, whether it was stored): the stored result when its inputs are these, else computed now."""
    value = lookup(kind_name, files, data, params, folder)
    if value is not None:
        return value, True
    return KINDS[kind_name].compute([Path(f) for f in files], data, **params), False


def write_store(entries: list[tuple[str, list[Path], dict]], load_data, folder: Path | None = None) -> Path:
    """Compute every (kind, files, params) entry and write the store; `load_data(dataset_name)` gives the data."""
    from .checkpoints import read_meta

    results = {}
    for kind_name, files, params in entries:
        data = load_data(read_meta(files[0])["dataset"]["name"])
        value = KINDS[kind_name].compute([Path(f) for f in files], data, **params)
        results[key(kind_name, files, data, params)] = {"kind": kind_name, "params": params,
                                                         "files": [Path(f).name for f in files], "value": value}
    text = json.dumps({"format": FORMAT, "about": __doc__.splitlines()[0], "computed_on": computed_on(),
                       "results": results}, indent=0, sort_keys=True)
    path = store_path(folder)
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text), overwrite=True)


# ---- the kinds ------------------------------------------------------------------------------------------

def encode_classes(pred: np.ndarray) -> str:
    """Predicted classes (< 256 of them) as base64 of one byte each: 10,000 predictions in 13 KB of JSON."""
    return base64.b64encode(np.asarray(pred, dtype=np.uint8).tobytes()).decode("ascii")


def decode_classes(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=np.uint8).astype(np.int64)


@kind("predictions", "the predicted class of every test image (confusion matrix, per-class accuracy, errors)")
def _predictions(files: list[Path], data) -> dict:
    from .checkpoints import load_checkpoint
    from .train import evaluate

    _, acc, pred = evaluate(load_checkpoint(files[0]).model, data, "test", "cpu", return_predictions=True)
    return {"pred": encode_classes(pred.numpy()), "accuracy": acc}


@kind("shift_probe", "prediction agreement and map similarity of several nets under shifts of the input")
def _shift_probe(files: list[Path], data, methods: list[str], n: int, k: int, fill: str) -> dict:
    from .checkpoints import load_checkpoint
    from . import shift

    models = {m: load_checkpoint(f).model for m, f in zip(methods, files)}
    df = shift.shift_probe_runs(models, shift.probe_images(data.test_x, n), data.normalize,
                                shifts=range(k + 1), fill=shift.fill_value(fill))
    return {"rows": [{k: v.item() if isinstance(v, np.generic) else v for k, v in row.items()}
                     for row in df.to_dict("records")]}  # numpy scalars as Python's: exact in JSON


# ---- what scripts/train_all.py stores ------------------------------------------------------------------

def shift_probe_entry(dataset: str, folder: Path | None = None) -> tuple[str, list[Path], dict] | None:
    """The shift probe at its defaults over the seed-0 shipped downsampling nets of `dataset` that exist."""
    from . import shift, shipped
    from .downsample import list_downsamples

    folder = Path(folder or shipped_dir())
    by_method = {r.config.downsample: folder / r.filename for r in shipped.runs_of_group("downsampling", dataset)
                 if r.config.seed == 0 and (folder / r.filename).exists()}
    methods = [m for m in list_downsamples() if m in by_method]
    if not methods:
        return None
    return ("shift_probe", [by_method[m] for m in methods],
            {"methods": methods, "n": shift.PROBE_IMAGES, "k": shift.PROBE_MAX_SHIFT,
             "fill": shift.fill_name(shift.default_fill(dataset))})


def planned_entries(folder: Path | None = None) -> list[tuple[str, list[Path], dict]]:
    """Every shipped file's predictions, and each dataset's shift probe at its defaults."""
    from . import shipped
    from .data import DATASETS

    folder = Path(folder or shipped_dir())
    entries = [("predictions", [folder / r.filename], {}) for r in shipped.shipped_runs()
               if (folder / r.filename).exists()]
    probes = [shift_probe_entry(d, folder) for d in DATASETS]
    return entries + [e for e in probes if e is not None]
