"""Datasets, checkpoints, metadata and test-set predictions, cached at this boundary.

The library never imports streamlit: datasets and models are held once per process with
`st.cache_resource` and shared read-only by every session; small results use `st.cache_data`.
"""
from __future__ import annotations

import hashlib
import threading
import weakref
from pathlib import Path

import streamlit as st

from cnnviz import analysis, checkpoints, data, limits
from cnnviz.checkpoints import CheckpointError
from cnnviz.record import RunRecord

MAX_UPLOAD_MB = limits.upload_limit_mb()  # MB of 10**6 bytes, as the uploader prints it


@st.cache_resource(show_spinner="Loading the dataset (decoded once, then shared)...")
def cached_dataset(name: str) -> data.Dataset:
    """The dataset, loaded once per process; raises DataUnavailable (see `dataset` for the page's version)."""
    return data.load_dataset(name)


def dataset(name: str) -> data.Dataset:
    """The dataset, or a clear error on the page that says how to get it (and the page stops)."""
    try:
        return cached_dataset(name)
    except data.DataUnavailable as e:
        st.error(str(e))
        st.stop()


def dataset_or_error(name: str) -> data.Dataset | None:
    """The dataset, or None after an error line that says how to get it (the rest of the page still draws)."""
    try:
        return cached_dataset(name)
    except data.DataUnavailable as e:
        st.error(str(e))
        return None


@st.cache_data(show_spinner=False, max_entries=8)
def class_indices(name: str) -> list:
    """Per class, the test-set indices of its images, in test-set order."""
    import numpy as np

    labels = cached_dataset(name).test_y.numpy()
    return [np.flatnonzero(labels == c) for c in range(len(data.DATASETS[name].classes))]


@st.cache_resource(show_spinner=False, max_entries=64)
def _checkpoint(path: str, mtime: float, size: int) -> checkpoints.Checkpoint:
    return checkpoints.load_checkpoint(path)


def checkpoint(path: str | Path) -> checkpoints.Checkpoint:
    """A checkpoint's model, loaded once per process (keyed by path and mtime), read-only."""
    p = Path(path)
    stat = p.stat()
    return _checkpoint(str(p), stat.st_mtime, stat.st_size)


def checkpoint_or_error(path: str | Path) -> checkpoints.Checkpoint | None:
    """The checkpoint, or None after one error line that says why it cannot be read (the page goes on)."""
    try:
        return checkpoint(path)
    except (CheckpointError, OSError) as e:
        from .widgets import show_error  # widgets imports this module

        show_error(e)
        return None


@st.cache_data(show_spinner=False, max_entries=2048)
def _record(path: str, mtime: float, size: int) -> RunRecord:
    return checkpoints.read_record(path)


def record(path: str | Path) -> RunRecord:
    """A checkpoint's run record (no weights), read once per (file, mtime, size): a new or rewritten file
    is read again; raises CheckpointError or OSError."""
    p = Path(path)
    stat = p.stat()
    return _record(str(p), stat.st_mtime, stat.st_size)


def digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def held_bytes(ck: checkpoints.Checkpoint) -> int:
    """Memory an uploaded checkpoint holds: its model's tensors and the tensors kept in its record."""
    tensors = [*ck.model.state_dict().values(), *(v for v in ck.meta.values() if hasattr(v, "nbytes"))]
    return sum(t.nbytes for t in tensors)


class SharedUploads:
    """Uploaded checkpoints, one copy per file however many sessions upload it, under a byte cap for all.

    Why weak references: an upload is held by the sessions that show it (each keeps its own strong
    reference in `st.session_state`), not by this cache. When the last of them removes the file or ends
    (Streamlit drops a closed tab's session state after `server.disconnectedSessionTTL`), the checkpoint is
    freed with it. An LRU cache (`max_entries`, `ttl`) would instead keep files that nobody looks at and
    drop ones still shown (which their sessions keep in memory anyway: a second copy on the next load).
    Why a cap that refuses: memory held by open sessions cannot be taken back, so a new upload that would
    go over it is refused with one line, and loads run one at a time so their peaks never add up.
    """

    def __init__(self, limit_mb: int):
        self.limit_mb = limit_mb
        self._lock = threading.Lock()
        self._entries: weakref.WeakValueDictionary[str, checkpoints.Checkpoint] = weakref.WeakValueDictionary()

    def held(self) -> int:
        return sum(held_bytes(ck) for ck in list(self._entries.values()))

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str, raw: bytes) -> checkpoints.Checkpoint:
        with self._lock:
            ck = self._entries.get(key)
            if ck is not None:
                return ck
            ck = checkpoints.load_checkpoint(raw, max_bytes=MAX_UPLOAD_MB * limits.MB, registered_dataset=True)
            held, size = self.held(), held_bytes(ck)
            if held + size > self.limit_mb * 2**20:
                raise CheckpointError(f"the server already holds {held / 2**20:,.0f} MB of uploaded checkpoints "
                                      f"(at most {self.limit_mb:,} MB for everyone together) and this one needs "
                                      f"{size / 2**20:,.0f} MB; try again when fewer are open")
            self._entries[key] = ck
            return ck


@st.cache_resource(show_spinner=False)
def shared_uploads() -> SharedUploads:
    return SharedUploads(limits.upload_cache_mb())


def uploaded_checkpoint(raw: bytes) -> checkpoints.Checkpoint:
    """The checkpoint of an uploaded file, shared with other sessions holding the same file and held by this
    session until `keep_uploads` no longer lists it; CheckpointError (one line) when refused."""
    limit = MAX_UPLOAD_MB * limits.MB
    if len(raw) > limit:  # refused before it is hashed or read
        raise CheckpointError(f"file is {len(raw) / limits.MB:.1f} MB, over the {MAX_UPLOAD_MB} MB limit")
    key = digest(raw)
    ck = shared_uploads().get(key, raw)
    st.session_state.setdefault("_uploads_held", {})[key] = ck
    return ck


def keep_uploads(digests) -> None:
    """Let go of this session's uploads that are no longer in its uploader (they are freed once no session
    holds them)."""
    held = st.session_state.get("_uploads_held", {})
    for key in set(held) - set(digests):
        del held[key]


@st.cache_resource(show_spinner="Evaluating on the test set...", max_entries=64)
def _predictions(path: str, mtime: float) -> analysis.Predictions:
    return analysis.predictions_of(path, cached_dataset(record(path).dataset_name))  # stored ones if they fit


def predictions(path: str | Path) -> analysis.Predictions:
    p = Path(path)
    return _predictions(str(p), p.stat().st_mtime)


@st.cache_resource(show_spinner="Evaluating the uploaded model on the test set...", max_entries=8)
def _uploaded_predictions(digest: str, _model, _data) -> analysis.Predictions:
    return analysis.predict(_model, _data)


def uploaded_predictions(upload_digest: str, model, data_) -> analysis.Predictions:
    """Test-set predictions of an uploaded checkpoint, cached by the file's digest."""
    return _uploaded_predictions(upload_digest, model, data_)
