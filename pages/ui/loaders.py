"""Datasets, checkpoints, metadata and test-set predictions, cached at this boundary.

The library never imports streamlit: datasets and models are held once per process with
`st.cache_resource` and shared read-only by every session; small results use `st.cache_data`.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import streamlit as st

from cnnviz import analysis, checkpoints, data
from cnnviz.checkpoints import CheckpointError
from cnnviz.record import RunRecord


def _upload_limit_mb(default: int = 100) -> int:
    """`CNNVIZ_MAX_UPLOAD_MB`, or the default when unset or not a whole number >= 1 (a typo must not
    take the app down; st.file_uploader refuses a limit below 1)."""
    try:
        mb = int(os.environ.get("CNNVIZ_MAX_UPLOAD_MB", default))
    except ValueError:
        return default
    return mb if mb >= 1 else default


MAX_UPLOAD_MB = _upload_limit_mb()  # matches server.maxUploadSize in .streamlit/config.toml


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


@st.cache_resource(show_spinner=False, max_entries=16)
def _uploaded(digest: str, _raw: bytes) -> checkpoints.Checkpoint:  # keyed by the digest only
    return checkpoints.load_checkpoint(_raw, max_bytes=MAX_UPLOAD_MB * 2**20, registered_dataset=True)


def digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def uploaded_checkpoint(raw: bytes) -> checkpoints.Checkpoint:
    limit = MAX_UPLOAD_MB * 2**20
    if len(raw) > limit:  # refused before it is hashed or read
        raise CheckpointError(f"file is {len(raw) / 2**20:.1f} MB, over the {MAX_UPLOAD_MB} MB limit")
    return _uploaded(digest(raw), raw)


@st.cache_resource(show_spinner="Evaluating on the test set...", max_entries=64)
def _predictions(path: str, mtime: float) -> analysis.Predictions:
    ck = checkpoint(path)
    return analysis.predict(ck.model, cached_dataset(ck.record.dataset_name))


def predictions(path: str | Path) -> analysis.Predictions:
    p = Path(path)
    return _predictions(str(p), p.stat().st_mtime)


@st.cache_resource(show_spinner="Evaluating the uploaded model on the test set...", max_entries=8)
def _uploaded_predictions(digest: str, _model, _data) -> analysis.Predictions:
    return analysis.predict(_model, _data)


def uploaded_predictions(upload_digest: str, model, data_) -> analysis.Predictions:
    """Test-set predictions of an uploaded checkpoint, cached by the file's digest."""
    return _uploaded_predictions(upload_digest, model, data_)
