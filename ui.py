"""Streamlit glue shared by the pages: cached loaders, pickers and error display.

The cache sits at this boundary (the library never imports streamlit): datasets and models are held
once per process with `st.cache_resource` and shared read-only by every session; small results use
`st.cache_data`.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import streamlit as st

from cnnviz import analysis, checkpoints, data, jobs
from cnnviz.checkpoints import CheckpointError

ROOT = Path(__file__).resolve().parent
SHIPPED = ROOT / "checkpoints"
USER_RUNS = Path(os.environ.get("CNNVIZ_RUNS", ROOT / "runs"))


def _upload_limit_mb(default: int = 100) -> int:
    """`CNNVIZ_MAX_UPLOAD_MB`, or the default when unset or not a whole number >= 1 (a typo must not
    take the app down; st.file_uploader refuses a limit below 1)."""
    try:
        mb = int(os.environ.get("CNNVIZ_MAX_UPLOAD_MB", default))
    except ValueError:
        return default
    return mb if mb >= 1 else default


MAX_UPLOAD_MB = _upload_limit_mb()  # matches server.maxUploadSize in .streamlit/config.toml


@st.cache_resource(show_spinner=False)
def registry() -> "jobs.JobRegistry":
    # One registry per Streamlit process (this cache), writing to the user runs folder.
    # (jobs.get_registry() takes no folder: it is the CLI's process-wide registry in ./runs.)
    return jobs.JobRegistry(folder=USER_RUNS)


@st.cache_resource(show_spinner="Loading the dataset (decoded once, then shared)...")
def _dataset(name: str) -> data.Dataset:
    return data.load_dataset(name)


def dataset(name: str) -> data.Dataset:
    """The dataset, or a clear error on the page that says how to get it (and the page stops)."""
    try:
        return _dataset(name)
    except data.DataUnavailable as e:
        st.error(str(e))
        st.stop()


@st.cache_resource(show_spinner=False, max_entries=64)
def _checkpoint(path: str, mtime: float, size: int) -> checkpoints.Checkpoint:
    return checkpoints.load_checkpoint(path)


def checkpoint(path: str | Path) -> checkpoints.Checkpoint:
    """A checkpoint's model, loaded once per process (keyed by path and mtime), read-only."""
    p = Path(path)
    stat = p.stat()
    return _checkpoint(str(p), stat.st_mtime, stat.st_size)


@st.cache_resource(show_spinner=False, max_entries=16)
def _uploaded(digest: str, _raw: bytes) -> checkpoints.Checkpoint:  # keyed by the digest only
    return checkpoints.load_checkpoint(_raw, max_bytes=MAX_UPLOAD_MB * 2**20)


def uploaded_checkpoint(raw: bytes) -> checkpoints.Checkpoint:
    limit = MAX_UPLOAD_MB * 2**20
    if len(raw) > limit:  # refused before it is hashed or read
        raise CheckpointError(f"file is {len(raw) / 2**20:.1f} MB, over the {MAX_UPLOAD_MB} MB limit")
    return _uploaded(hashlib.sha256(raw).hexdigest(), raw)


@st.cache_resource(show_spinner="Evaluating on the test set...", max_entries=64)
def _predictions(path: str, mtime: float) -> analysis.Predictions:
    ck = checkpoint(path)
    return analysis.predict(ck.model, _dataset(ck.meta["dataset"]["name"]))


def predictions(path: str | Path) -> analysis.Predictions:
    p = Path(path)
    return _predictions(str(p), p.stat().st_mtime)


@st.cache_data(ttl=5, show_spinner=False)
def runs_table(include_user: bool = True):
    """All readable checkpoints: the shipped ones, then the user's (re-read every few seconds)."""
    import pandas as pd

    frames = [checkpoints.list_checkpoints(SHIPPED).assign(origin="shipped")]
    if include_user and USER_RUNS.is_dir():
        frames.append(checkpoints.list_checkpoints(USER_RUNS).assign(origin="yours"))
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def header(title: str, intro: str) -> None:
    """The page's title and one-line intro; first, make sure the page runs inside the app's navigation."""
    _leave_legacy_pages_mode()
    st.title(title)
    st.caption(intro)


def _leave_legacy_pages_mode() -> None:
    """Rerun this page through streamlit_app.py's st.navigation if Streamlit ran the file on its own.

    A fresh server sees the pages/ folder and runs its FIRST request in the legacy multipage mode, before
    any st.navigation call could turn that mode off: a deep link (/train_compare) then runs this file
    bare (no wide layout, a sidebar of file names). Turning the mode off and rerunning the same page (its
    hash is its URL path, the same in both modes) sends the run through the app's navigation.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


def show_error(e: Exception) -> None:
    """A user-caused failure as one line (CheckpointError, ImageError, ValueError...)."""
    st.error(str(e) if isinstance(e, (CheckpointError, ValueError)) else f"{type(e).__name__}: {e}")


# ---- the background job a page watches (survives reruns, page switches and reloads) ------------

def remember_job(param: str, state_key: str, job_id: str | None) -> None:
    """Keep the watched job id in the session and the URL (a page switch drops the URL's parameters)."""
    if job_id:
        st.session_state[state_key] = job_id
        st.query_params[param] = job_id
    else:
        st.session_state.pop(state_key, None)
        st.query_params.pop(param, None)


def attached_job(param: str, state_key: str, where_runs_are: str):
    """The job this session watches, from the URL (a reload, a shared link) or the session, or None.

    A job id this process does not know (the app restarted) is forgotten with a notice.
    """
    job_id = st.query_params.get(param) or st.session_state.get(state_key)
    if not job_id:
        return None
    job = registry().get(job_id)
    if job is None:
        st.info(f"Training job `{job_id}` is not on this server (the app restarted, or the link comes from "
                f"another server). Finished runs stay on disk as checkpoints: {where_runs_are}")
        remember_job(param, state_key, None)
        return None
    remember_job(param, state_key, job_id)
    return job
