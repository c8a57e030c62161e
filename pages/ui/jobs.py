"""The background training a page watches: the process's job registry and the panel that follows one job.

Training runs in a worker of the registry, never in the page's script (every click reruns the script, and
the job must outlive that). A page keeps only the job's id, in the session and in the URL (a reload or a
shared link re-attaches), and polls the job's snapshot from a fragment.
"""
from __future__ import annotations

import secrets

import streamlit as st

from cnnviz import jobs

from . import catalog
from .widgets import pct


@st.cache_resource(show_spinner=False)
def registry() -> "jobs.JobRegistry":
    # One registry per Streamlit process (this cache), writing to the user runs folder.
    # (jobs.get_registry() takes no folder: it is the CLI's process-wide registry in ./runs.)
    return jobs.JobRegistry(folder=catalog.USER_RUNS)


def owner(key: str) -> str:
    """This session's owner tag for the jobs it submits (kept under `key` in the session)."""
    return st.session_state.setdefault(key, secrets.token_hex(4))


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


def follow(job, *, key: str, title, curves, finished=None) -> None:
    """The panel of one job: its queue place or progress while it runs (polled every second), then its outcome.

    `title(snap)` is the job's heading, `curves(snap)` draws its history (called once it has an epoch),
    `finished(snap)` adds what a page offers after the end (downloads, links). `key` prefixes widget keys.
    """
    if job.done:
        _outcome(job.snapshot(), title, curves, finished)
    else:
        _live(job.id, key, title, curves)


def _outcome(snap, title, curves, finished) -> None:
    h = list(snap.history)
    st.markdown(title(snap))
    if snap.state == "completed":
        st.success(f"Finished {len(h)} epoch{'s' if len(h) != 1 else ''}: final test accuracy "
                   f"{pct(h[-1]['test_acc'])}.")
    elif snap.state == "stopped":
        st.warning(f"{snap.reason.capitalize()}; the checkpoint keeps what it learned (marked incomplete).")
    elif snap.state == "cancelled":
        st.info(f"{snap.reason.capitalize()}.")
    else:
        st.error(f"Training failed: {(snap.reason.strip().splitlines() or ['unknown error'])[0]}")
    if h:
        curves(snap)
    if finished is not None:
        finished(snap)


@st.fragment(run_every=1.0)
def _live(job_id: str, key: str, title, curves) -> None:
    reg = registry()
    snap = reg.get(job_id).snapshot()
    if snap.done:
        st.rerun()  # the whole page redraws the finished run (a new checkpoint joins its menus); polling stops
    st.markdown(title(snap))
    p = snap.progress
    if snap.state == "queued":
        ahead = reg.queue_position(job_id) - 1 + sum(j.state == "running" for j in reg.jobs())
        st.info(f"waiting: {ahead} job{'s' if ahead != 1 else ''} ahead (this server trains "
                f"{reg.max_concurrent} at a time, first come first served).")
    else:
        text = (f"epoch {p.epoch}/{p.epochs}, batch {p.batch}/{p.batches}" if p.epoch
                else "starting: loading the data and building the model")
        st.progress(min(1.0, p.fraction), text=text)
        c1, c2, c3 = st.columns(3)
        c1.metric("Running train loss (this epoch)", "—" if p.loss is None else f"{p.loss:.4f}")
        c2.metric("Running train accuracy (this epoch)", pct(p.acc))
        c3.metric("Elapsed", f"{snap.elapsed:.0f} s")
        if snap.history:
            curves(snap)
    queued = snap.state == "queued"
    help_text = ("Takes the run out of the queue; nothing was trained yet." if queued else
                 "Ends the run after the current batch and keeps what it learned: the checkpoint is saved "
                 "with the epochs finished so far, marked incomplete.")
    if not snap.cancel_requested and st.button("Cancel" if queued else "Stop", key=f"{key}stop", help=help_text):
        reg.cancel(job_id)
    if snap.cancel_requested or reg.get(job_id).snapshot().cancel_requested:
        st.caption("Stopping after the current batch...")


def server_load(owner: str, *, key: str, show) -> None:
    """How busy the server is; with two or more jobs of this session, a table of them and `show(job_id)` to watch one."""
    reg = registry()
    busy = [j for j in reg.jobs() if not j.done]
    st.caption(f"On this server now: {sum(j.state == 'running' for j in busy)} running, "
               f"{sum(j.state == 'queued' for j in busy)} waiting.")
    mine = reg.jobs(owner=owner)
    if len(mine) < 2:
        return
    with st.expander(f"Your runs in this session ({len(mine)})"):
        snaps = [j.snapshot() for j in mine]
        st.dataframe([{"id": s.id, "name": s.name, "state": s.state, "reason": s.reason, "epochs": len(s.history),
                       "final test acc": s.history[-1]["test_acc"] if s.history else None,
                       "checkpoint": str(s.checkpoint or "")} for s in snaps], hide_index=True, key=f"{key}jobs")
        names = {s.id: f"{s.name} ({s.id}, {s.state})" for s in snaps}
        pick = st.selectbox("Show this run above", list(names), index=len(snaps) - 1, key=f"{key}watch",
                            format_func=names.get)
        if st.button("Show it", key=f"{key}watch_go"):
            show(pick)
            st.rerun()
