"""One file per run: weights + everything needed to rebuild and judge the model, loaded safely.

Files are written with `torch.save` and read with `torch.load(weights_only=True)`, which only
rebuilds tensors and plain containers: a pickle that would run code is refused, not executed. The
model is rebuilt from the recorded architecture name and options, never unpickled.
"""
from __future__ import annotations

import datetime as _dt
import io
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch
import torch.nn as nn

from . import __version__
from .data import DATASETS
from .models import build_model, count_params, get_arch
from .paths import shipped_dir
from .record import RunRecord
from .storage import atomic_write

FORMAT = "cnnviz-checkpoint"
FORMAT_VERSION = 2  # the newest this cnnviz reads: 2 adds int8 weights with per-channel scales
PLAIN_FORMAT_VERSION = 1  # what a file without int8 weights is written as, so older cnnviz still reads it
INT8_MIN_VALUES = 250_000  # compact files store weights this large as int8 (`compact_state`)
DEFAULT_MAX_BYTES = 100 * 10**6


class CheckpointError(ValueError):
    """A file that is not a usable cnnviz checkpoint; the message is one sentence for the user."""


@dataclass
class Checkpoint:
    meta: dict  # everything the file holds but the weights and the optimizer (filter_snapshots included)
    model: nn.Module  # rebuilt, float32, eval mode, on the CPU
    path: Path | None = None
    optimizer_state: dict | None = None  # only when loaded `with_optimizer` (to resume the run)

    @cached_property
    def record(self) -> RunRecord:
        return RunRecord.from_meta(self.meta, self.path)


def versions() -> dict:
    import torchvision

    return {"cnnviz": __version__, "torch": str(torch.__version__), "torchvision": str(torchvision.__version__),
            "python": sys.version.split()[0]}


def make_meta(*, arch: str, downsample: str | None, dataset: dict, in_shape, num_classes: int,
              train: dict, history: list[dict], complete: bool, reason: str, model: nn.Module,
              command: str = "") -> dict:
    return {"format": FORMAT, "format_version": PLAIN_FORMAT_VERSION, "arch": arch, "downsample": downsample,
            "in_shape": list(in_shape), "num_classes": num_classes, "dataset": dataset, "train": train,
            "history": history, "complete": complete, "reason": reason,
            "params": count_params(model), "trainable_params": count_params(model, trainable_only=True),
            "versions": versions(), "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "command": command}


def save_checkpoint(path: str | Path, meta: dict, model: nn.Module, *, half: bool = False,
                    snapshots: list[torch.Tensor] | None = None, optimizer_state: dict | None = None,
                    overwrite: bool = False) -> Path:
    """Write atomically (temp file + rename); an existing file is an error unless `overwrite`.

    `half` stores the weights compactly (see `compact_state`). `optimizer_state` (an optimizer's
    state_dict, tensors and plain containers, so the file still loads with `weights_only=True`) lets the
    run be resumed exactly; it is as large as the weights twice over for Adam, so compact files (the
    shipped ones) leave it out."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {**meta, "weights_dtype": "float32", "state_dict": state}
    if half:
        state, scales = compact_state(state)
        payload.update(state_dict=state, weights_dtype="float16+int8" if scales else "float16")
        if scales:  # a reader that does not know int8 weights must refuse the file, not misread it
            payload.update(weight_scales=scales, format_version=FORMAT_VERSION)
    if snapshots:
        payload["filter_snapshots"] = torch.stack(snapshots).half()  # (epochs+1, out, in, k, k)
    if optimizer_state is not None and not half:
        payload["optimizer_state"] = _on_cpu(optimizer_state)
    return atomic_write(path, lambda tmp: torch.save(payload, tmp), overwrite=overwrite)


def compact_state(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Float tensors as float16; each weight of at least INT8_MIN_VALUES values as int8 per output
    channel, `round(w / scale)` with `scale = max|w_row| / 127` kept in float32 (the scales, by name).

    int8 halves the large layers again: VGG16's 13 convs are 14.7M of its 14.8M values. Per output
    channel, the rounding error is at most scale / 2 = max|w_row| / 254 of each row's largest weight;
    the shipped test re-evaluates every file from this stored form against its record."""
    out, scales = {}, {}
    for k, v in state.items():
        if v.is_floating_point() and v.dim() >= 2 and v.numel() >= INT8_MIN_VALUES:
            rows = v.float().reshape(len(v), -1)
            scale = rows.abs().amax(1).clamp_min(1e-12) / 127  # (out,)
            out[k] = (rows / scale[:, None]).round().clamp(-127, 127).to(torch.int8).reshape(v.shape)
            scales[k] = scale
        else:
            out[k] = v.half() if v.is_floating_point() else v
    return out, scales


def _restore_floats(state: dict, scales) -> dict:
    """The stored weights as float32: int8 ones times their per-channel scales (`compact_state`)."""
    scales = scales if isinstance(scales, dict) else {}
    out = {}
    for k, v in state.items():
        scale = scales.get(k)
        if v.dtype == torch.int8 and isinstance(scale, torch.Tensor) and scale.numel() == len(v):
            out[k] = v.float() * scale.float().reshape(-1, *([1] * (v.dim() - 1)))
        else:
            out[k] = v.float() if v.is_floating_point() else v
    return out


def update_meta(path: str | Path, **changes) -> Path:
    """Rewrite a checkpoint's metadata fields (its weights untouched), atomically."""
    payload = torch.load(path, weights_only=True, map_location="cpu")
    return atomic_write(path, lambda tmp: torch.save({**payload, **changes}, tmp), overwrite=True)


def _on_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {k: _on_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_on_cpu(v) for v in obj)
    return obj


def _read(source, mmap: bool = False) -> dict:
    """The file's dict, unpickled with weights_only; `mmap` maps a file's tensors instead of reading them (for
    metadata: ~1 ms a file instead of reading its megabytes of weights)."""
    try:
        if isinstance(source, (bytes, bytearray)):
            obj = torch.load(io.BytesIO(source), weights_only=True, map_location="cpu")
        else:
            obj = _load_file(source, mmap)
    except (FileNotFoundError, IsADirectoryError):
        raise CheckpointError(f"no checkpoint file at {source}") from None
    except Exception as e:  # noqa: BLE001 - any failure here means "not a checkpoint we accept"
        text = str(e)
        # Only a forbidden global/callable means "code"; other unpickler errors (e.g. "Unsupported
        # operand" from random bytes) are just a corrupt file.
        if any(m in text for m in ("Unsupported global", "unsupported GLOBAL", "reduce for unrecognized",
                                   "Can only create new object")):
            raise CheckpointError("refused: the file contains Python objects that could run code "
                                  "(only plain cnnviz checkpoints are accepted)") from None
        raise CheckpointError("not a readable checkpoint (truncated, corrupt or another format)") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError("not a cnnviz checkpoint (no cnnviz format marker)")
    return obj


def _load_file(path, mmap: bool):
    if mmap:
        try:
            return torch.load(path, weights_only=True, map_location="cpu", mmap=True)
        except RuntimeError as e:
            if "mmap" not in str(e):  # only a file torch cannot map (not a zip archive) is read the plain way
                raise
    return torch.load(path, weights_only=True, map_location="cpu")


def load_checkpoint(source: str | Path | bytes, *, expect_dataset: str | None = None,
                    expect_arch: str | None = None, max_bytes: int | None = None,
                    with_optimizer: bool = False, registered_dataset: bool = False) -> Checkpoint:
    """Read, validate and rebuild a checkpoint from a path or bytes; raises CheckpointError. The
    optimizer state (resumable files only) is kept only `with_optimizer`. `registered_dataset` refuses a
    file whose dataset is not one of `data.DATASETS` (an uploaded file's dataset name is never used as a
    folder on the server)."""
    if max_bytes is not None:
        _check_size(source, max_bytes)
    obj = _read(source)
    _check_records(obj, expect_arch, expect_dataset)
    model = _rebuild(obj)
    _check_dataset(obj, registered_dataset)  # after the rebuild, which names malformed shapes itself
    # Tensors the format does not define (a file may carry any) are dropped: a cached model holds only its own.
    meta = {k: v for k, v in obj.items() if k not in ("state_dict", "optimizer_state", "weight_scales")
            and (k == "filter_snapshots" or not isinstance(v, torch.Tensor))}
    meta["has_optimizer_state"] = isinstance(obj.get("optimizer_state"), dict)
    optimizer = obj.get("optimizer_state") if with_optimizer else None
    return Checkpoint(meta, model, Path(source) if isinstance(source, (str, Path)) else None,
                      optimizer if isinstance(optimizer, dict) else None)


def _check_size(source, max_bytes: int) -> None:
    try:
        size = len(source) if isinstance(source, (bytes, bytearray)) else Path(source).stat().st_size
    except OSError:
        raise CheckpointError(f"no checkpoint file at {source}") from None
    if size > max_bytes:
        raise CheckpointError(f"file is {size / 10**6:.1f} MB, over the {max_bytes / 10**6:.0f} MB limit")  # MB of 10**6 bytes, as uploaders print


def _check_records(obj: dict, expect_arch: str | None, expect_dataset: str | None) -> None:
    """The format version, the architecture and dataset names, the weights and the history are usable."""
    version = obj.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(f"checkpoint has no valid format version ({str(version)[:20]!r})")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"checkpoint format version {version} is newer than this cnnviz "
                              f"understands ({FORMAT_VERSION}); update cnnviz")
    try:
        arch, ds = obj["arch"], obj["dataset"]["name"]
        if not isinstance(arch, str) or not isinstance(ds, str):
            raise TypeError
        get_arch(arch)
    except (KeyError, TypeError):
        raise CheckpointError("checkpoint is missing its architecture or dataset record") from None
    except ValueError as e:
        raise CheckpointError(str(e)) from None
    if expect_arch and arch != expect_arch:
        raise CheckpointError(f"this checkpoint is a {arch}, not a {expect_arch}")
    if expect_dataset and ds != expect_dataset:
        raise CheckpointError(f"this checkpoint was trained on {ds}, not {expect_dataset}")
    if not isinstance(obj.get("state_dict"), dict):
        raise CheckpointError("checkpoint has no weights")
    history = obj.get("history", [])
    if not isinstance(history, list) or not all(isinstance(row, dict) for row in history):
        raise CheckpointError("checkpoint's training history is malformed")


def _check_dataset(obj: dict, registered_only: bool) -> None:
    """A registered dataset's images and classes must be what the model was built for."""
    name = obj["dataset"]["name"]
    spec = DATASETS.get(name)
    if spec is None:
        if registered_only:
            shown = name if len(name) <= 40 else name[:40] + "…"
            raise CheckpointError(f"this checkpoint was trained on {shown!r}, not a dataset this app has "
                                  f"({', '.join(DATASETS)})")
        return
    in_shape, classes = obj.get("in_shape"), obj.get("num_classes")
    if not isinstance(in_shape, (list, tuple)) or not isinstance(classes, int):
        return  # rebuilding the model names the missing or malformed record
    if list(in_shape) != list(spec.shape) or classes != len(spec.classes):
        raise CheckpointError(f"the checkpoint says {name} ({'x'.join(map(str, spec.shape))} images, "
                              f"{len(spec.classes)} classes) but its model was built for "
                              f"{str(in_shape)[:40]} inputs and {str(classes)[:20]} classes")


def _rebuild(obj: dict) -> nn.Module:
    """The recorded architecture, built and given the file's weights (float32, eval mode, CPU)."""
    state = obj["state_dict"]
    args = (obj["arch"], tuple(obj.get("in_shape") or ()), obj.get("num_classes"), obj.get("downsample"))
    # A registered dataset's own shapes are safe to build at once (its nets are the registry's, at most
    # VGG16's 60 MB). Any other shapes first on the meta device (nothing allocated): a forged in_shape or
    # num_classes must not make the loader allocate gigabytes; the real model is built only once the file's
    # weights are at least as large, so its memory is bounded by the file's size. (Meta tensors run torch's
    # Python meta kernels, whose first use imports ~490 modules: 5 s on a loaded 2-core machine, so the
    # common case avoids them.)
    model = _build(args) if _registered_shapes(obj) else None
    if model is not None:
        shapes = model.state_dict()
    else:
        with torch.device("meta"):
            shapes = _build(args).state_dict()
    need = sum(v.numel() for v in shapes.values())
    # Values really stored: a tensor's storage, counted once (a 1-value storage expanded to a huge shape,
    # or many views of one storage, would otherwise claim a model far larger than the file).
    stored = {}
    for v in state.values():
        if isinstance(v, torch.Tensor) and v.layout == torch.strided:
            stored[v.untyped_storage().data_ptr()] = v.untyped_storage().nbytes() // v.element_size()
    have = sum(stored.values())
    if need > have:
        missing = [k for k in shapes if k not in state]
        raise CheckpointError("weights do not fit the architecture: " + (
            f"missing {', '.join(missing[:3])}" if missing else f"the model needs {need:,} values, the file holds {have:,}"))
    model = model if model is not None else _build(args)
    try:
        model.load_state_dict(_restore_floats(state, obj.get("weight_scales")))
    except (RuntimeError, AttributeError) as e:
        first = str(e).strip().splitlines()
        raise CheckpointError("weights do not fit the architecture: "
                              + (first[1].strip() if len(first) > 1 else first[0])[:200]) from None
    return model.eval()


def _registered_shapes(obj: dict) -> bool:
    """The record's input shape and class count are exactly those of the registered dataset it names."""
    spec = DATASETS.get(obj["dataset"]["name"])
    in_shape, classes = obj.get("in_shape"), obj.get("num_classes")
    return (spec is not None and isinstance(in_shape, (list, tuple)) and list(in_shape) == list(spec.shape)
            and type(classes) is int and classes == len(spec.classes))


def _build(args) -> nn.Module:
    try:
        return build_model(*args)
    except Exception as e:  # noqa: BLE001 - any failure to build means "cannot use this file"
        raise CheckpointError(f"cannot rebuild the model: {(str(e).strip().splitlines() or [''])[0][:200]}") from None


# ---- reading records, listing -----------------------------------------------------------------

def read_meta(path: str | Path) -> dict:
    """Metadata only (no model rebuilt, the weights mapped and never read); raises CheckpointError."""
    obj = _read(path, mmap=True)
    obj["has_optimizer_state"] = isinstance(obj.get("optimizer_state"), dict)  # before it is dropped
    for heavy in ("state_dict", "filter_snapshots", "optimizer_state", "weight_scales"):
        obj.pop(heavy, None)
    return obj


def read_record(path: str | Path) -> RunRecord:
    """The run record of a checkpoint file, without rebuilding its model; raises CheckpointError."""
    return RunRecord.from_meta(read_meta(path), path)


def list_checkpoints(*folders: str | Path):
    """A DataFrame with one row per readable checkpoint in `folders` (unreadable files are skipped)."""
    import pandas as pd

    rows = []
    for folder in folders or (shipped_dir(),):
        for p in sorted(Path(folder).glob("*.pt")):
            try:
                rows.append(read_record(p).row())
            except CheckpointError:
                continue
    return pd.DataFrame(rows)
