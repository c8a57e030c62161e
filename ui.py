"""Streamlit glue shared by the pages: cached loaders, pickers and error display.

The cache sits at this boundary (the library never imports streamlit): datasets and models are held
once per process with `st.cache_resource` and shared read-only by every session; small results use
`st.cache_data`.
"""
from __future__ import annotations

import hashlib
import os
import runpy
from urllib.parse import urlencode
from pathlib import Path

import streamlit as st

from cnnviz import analysis, checkpoints, data, jobs, paths
from cnnviz.checkpoints import CheckpointError
from cnnviz.record import RunRecord

ROOT = Path(__file__).resolve().parent
SHIPPED = paths.shipped_dir()
USER_RUNS = paths.runs_dir()


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


@st.cache_data(show_spinner=False, max_entries=2048)
def _run_row(path: str, mtime: float, size: int) -> dict | None:
    """One runs-table row (`RunRecord.row`), read once per (file, mtime, size); None for an unreadable
    file, which is left out of the table (a load shows why) and not read again until it changes."""
    try:
        return checkpoints.read_record(path).row()
    except CheckpointError:
        return None


def runs_table(include_user: bool = True):
    """All readable checkpoints: the shipped ones, then the user's. Only the folders are listed on each
    call; a file's metadata is read again only when the file changed."""
    import pandas as pd

    rows = []
    folders = [(SHIPPED, "shipped")] + ([(USER_RUNS, "yours")] if include_user else [])
    for folder, origin in folders:
        for p in sorted(Path(folder).glob("*.pt")):
            try:
                stat = p.stat()
            except OSError:  # removed between listing and stat
                continue
            row = _run_row(str(p), stat.st_mtime, stat.st_size)
            if row is not None:
                rows.append({**row, "origin": origin})
    return pd.DataFrame(rows)


def header(title: str, intro: str) -> None:
    """The page's title and one-line intro; first, make sure the page runs inside the app's navigation."""
    _leave_legacy_pages_mode()
    st.title(title)
    st.caption(intro)


def _leave_legacy_pages_mode() -> None:
    """Run this page inside streamlit_app.py's st.navigation if Streamlit ran the file on its own.

    With a pages/ folder beside it, Streamlit runs a session's first script run in its legacy multipage
    mode until some st.navigation call turns that mode off: a deep link (/train_compare) to a fresh server
    then runs this file bare (no wide layout, a sidebar of file names), and AppTest does so on every
    run. Here the mode is turned off and the main script runs in its place, in this same script run (so
    a click that started it is not lost): its st.navigation finds this page by its URL path (the same in
    both modes) and runs it properly; then the bare run stops.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        runpy.run_path(str(ROOT / "streamlit_app.py"), run_name="__main__")
        st.stop()


def start_from_url(key: str, options, default, notices: list[str], *, param: str | None = None, fmt=str) -> None:
    """Seed widget `key` before it is drawn: from the URL parameter `param` (default: `key`), else `default`.

    A link is read once per parameter and session; a value there that is not among `options` falls back to
    `default` with a line in `notices`. Afterwards the URL holds what this session wrote itself, so a value
    that no longer fits (another net takes other downsamplings) falls back quietly. `options` may be a
    range of whole numbers.
    """
    param = param or key
    read = st.session_state.setdefault("_url_params_read", set())
    if key in st.session_state:
        if st.session_state[key] not in options:
            st.session_state[key] = default
        return
    raw = st.query_params.get(param)
    match = _option_named(options, raw) if raw is not None else None
    if raw is not None and match is None and param not in read:
        allowed = (f"a whole number from {options.start} to {options.stop - 1}" if isinstance(options, range)
                   else "a choice here")
        notices.append(f"`{param}={raw}` in the link is not {allowed}; showing {fmt(default)} instead.")
    read.add(param)
    st.session_state[key] = default if match is None else match


def _option_named(options, raw: str):
    """The option whose text is `raw`, or None."""
    if isinstance(options, range):
        return int(raw) if raw.lstrip("-").isdigit() and int(raw) in options else None
    return next((o for o in options if str(o) == raw), None)


def percent_columns(df, columns: dict[str, str]):
    """(copy of `df` with these 0-1 columns in percent, their column configs) for st.dataframe.

    `columns` maps a column to its header. Streamlit's own "percent" format drops trailing zeros
    (54% beside 59.55%), which reads as a rounded figure; here every value keeps two decimals."""
    shown = df.assign(**{c: df[c] * 100 for c in columns})
    return shown, {c: st.column_config.NumberColumn(label, format="%.2f %%") for c, label in columns.items()}


def share_link() -> None:
    """The exact view as a link, in the sidebar (st.code has a copy button). Call it last on a page:
    every choice the page made has been written to st.query_params by then."""
    query = urlencode(st.query_params.to_dict())
    base = st.context.url or ""  # None when no browser is attached (AppTest)
    st.sidebar.markdown("**Link to this view**")
    st.sidebar.code(f"{base}?{query}" if query else base or "(no choices on this page)", language=None,
                    wrap_lines=True)
    st.sidebar.caption("Every choice on this page is in the link: paste it into slides and students land "
                       "on this same view.")


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
