"""The background training a page watches: the process's job registry and the panel that follows one job.

Training runs in a worker of the registry, never in the page's script (every click reruns the script, and
the job must outlive that). A page keeps only the job's id, in the session and in the URL (a reload or a
shared link re-attaches), and polls the job's snapshot from a fragment.

Who may stop a job: its owner and a teacher, nobody else. The owner is a browser tab: a random secret
made when it first trains, kept in its session and in its URL as `owner_key` (Streamlit gives a reloaded
tab a new session, but the URL survives the reload; a cookie cannot be written from Python, since
`st.context.cookies` is read-only, and one written by JavaScript would reach the server only on the next
connection). `widgets.share_link` leaves `owner_key` out, so a shared link shows the job read-only. A
teacher types the key set as `teacher_key` in st.secrets or `CNNVIZ_TEACHER_KEY`.

Polling is as cheap as the job allows: a running job's panel reruns every second (progress, metrics,
Stop) and its curves are drawn by the page, redrawn only when an epoch has finished (the fragment then
reruns the page); a queued job's panel reruns every 5 seconds; a finished job is drawn once.
"""
from __future__ import annotations

import hmac
import os
import re
import secrets
from pathlib import Path

import streamlit as st

from cnnviz import jobs, limits, results

from . import catalog
from .widgets import OWNER_PARAM, link_value, pct

RUNNING_POLL_S = 1.0
QUEUED_POLL_S = 5.0
_SECRET = re.compile(r"[A-Za-z0-9_-]{16,64}")


@st.cache_resource(show_spinner=False)
def registry() -> "jobs.JobRegistry":
    # One registry per Streamlit process (this cache), writing to the user runs folder, under the limits of
    # a server shared by a class (cnnviz.limits). jobs.get_registry() is the CLI's: no limits, ./runs.
    return jobs.JobRegistry(folder=catalog.USER_RUNS, memory_mb=limits.job_memory_mb(),
                            max_tmacs=limits.job_max_tmacs(), max_per_owner=limits.max_jobs_per_session(),
                            runs_max_mb=limits.runs_max_mb())


def _owner_secret(create: bool) -> str | None:
    """This tab's owner secret: from its URL (a reload keeps it), else its session, else a new one (`create`)."""
    from_url = st.query_params.get(OWNER_PARAM)
    secret = from_url if from_url and _SECRET.fullmatch(from_url) else st.session_state.get("owner_secret")
    if secret is None and create:
        secret = secrets.token_urlsafe(16)
    if secret is not None:
        st.session_state["owner_secret"] = secret
    return secret


def keep_owner_in_url() -> None:
    """Write the tab's owner secret back into its URL (a page switch drops the URL's parameters)."""
    secret = _owner_secret(create=False)
    if secret is not None:
        st.query_params[OWNER_PARAM] = secret


def owner(create: bool = False) -> str | None:
    """This tab's owner tag for the jobs it submits (`create`: make the secret if it has none yet)."""
    secret = _owner_secret(create)
    if secret is None:
        return None
    st.query_params[OWNER_PARAM] = secret
    return jobs.owner_tag(secret)


def teacher_key() -> str | None:
    """The teacher's key: `teacher_key` in st.secrets, else `CNNVIZ_TEACHER_KEY`, else None (no teacher)."""
    key = st.secrets.get("teacher_key") if st.secrets.load_if_toml_exists() else None
    return str(key or os.environ.get("CNNVIZ_TEACHER_KEY") or "") or None


def is_teacher() -> bool:
    """Whether this session typed the teacher's key (compared in constant time)."""
    key, typed = teacher_key(), st.session_state.get("teacher_typed", "")
    return bool(key and typed and hmac.compare_digest(key.encode(), str(typed).encode()))


def teacher_login(where=st) -> None:
    """A password box for the teacher's key, shown only where a teacher key is configured."""
    if teacher_key() is None:
        return
    with where.expander("Teacher" + (" (signed in: you can stop any run)" if is_teacher() else "")):
        st.text_input("Teacher key", type="password", key="teacher_typed",
                      help="Set as teacher_key in the app's secrets or CNNVIZ_TEACHER_KEY on the server.")


def can_stop(snap) -> bool:
    """Whether this tab may stop the job: it started it (its owner tag) or a teacher signed in here."""
    tag = owner()
    return is_teacher() or (tag is not None and hmac.compare_digest(tag, snap.owner or ""))


def submit(cfg, **options) -> "jobs.Job":
    """Queue `cfg` as this tab's job (`options`: JobRegistry.submit's name, resume_from); JobRefused (one
    line) when it is over a limit."""
    return registry().submit(cfg, owner=owner(create=True), **options)


def remember_job(param: str, state_key: str, job_id: str | None) -> None:
    """Keep the watched job id in the session and the URL (a page switch drops the URL's parameters)."""
    if job_id:
        st.session_state[state_key] = job_id
        st.query_params[param] = job_id
    else:
        st.session_state.pop(state_key, None)
        st.query_params.pop(param, None)


def attached_job(param: str, state_key: str, where_runs_are: str, *, own_latest: bool = False):
    """The job this session watches, from the URL (a reload, a shared link) or the session, or None.

    `own_latest`: else the tab's own latest job (a reload on another page kept the owner's key, not the job
    id). A job id this process does not know (the app restarted) is forgotten with a notice.
    """
    job_id = st.query_params.get(param) or st.session_state.get(state_key) or (own_latest and _latest_own_job())
    if not job_id:
        return None
    job = registry().get(job_id)
    if job is None:
        st.info(f"Training job `{link_value(job_id)}` is not on this server (the app restarted, or the link comes from "
                f"another server). Finished runs stay on disk as checkpoints: {where_runs_are}")
        remember_job(param, state_key, None)
        return None
    remember_job(param, state_key, job_id)
    return job


def _latest_own_job() -> str | None:
    tag = owner()
    mine = registry().jobs(owner=tag) if tag else []
    return mine[-1].id if mine else None


def follow(job, *, key: str, title, curves, finished=None) -> None:
    """The panel of one job: its queue place or progress while it runs (polled), then its outcome.

    `title(snap)` is the job's heading, `curves(snap)` draws its history (called once it has an epoch),
    `finished(snap)` adds what a page offers after the end (downloads, links). `key` prefixes widget keys.
    """
    snap = job.snapshot()
    if snap.done:
        _outcome(snap, title, curves, finished)
    elif snap.state == "queued":
        _queued_panel(job.id, key, title)
    else:
        _running_panel(job.id, key, title, len(snap.history))
        if snap.history:
            curves(snap)  # outside the fragment: redrawn only when an epoch finished (see the module docstring)


def _outcome(snap, title, curves, finished) -> None:
    h = list(snap.history)
    st.markdown(title(snap))
    if snap.note:
        st.info(snap.note)
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


@st.fragment(run_every=QUEUED_POLL_S)
def _queued_panel(job_id: str, key: str, title) -> None:
    reg = registry()
    snap = reg.get(job_id).snapshot()
    if snap.state != "queued":
        st.rerun()  # started (or cancelled): the page draws it with the panel that fits, polled every second
    st.markdown(title(snap))
    ahead = reg.queue_position(job_id) - 1 + sum(j.state == "running" for j in reg.jobs())
    st.info(f"waiting: {ahead} job{'s' if ahead != 1 else ''} ahead (this server trains "
            f"{reg.max_concurrent} at a time, first come first served).")
    _stop_button(job_id, snap, key, "Cancel", "Takes the run out of the queue; nothing was trained yet.")


@st.fragment(run_every=RUNNING_POLL_S)
def _running_panel(job_id: str, key: str, title, epochs_drawn: int) -> None:
    snap = registry().get(job_id).snapshot()
    if snap.done or len(snap.history) != epochs_drawn:
        st.rerun()  # the page redraws the curves (and a finished run, whose checkpoint joins its menus)
    st.markdown(title(snap))
    if snap.note:
        st.info(snap.note)
    p = snap.progress
    text = (f"epoch {p.epoch}/{p.epochs}, batch {p.batch}/{p.batches}" if p.epoch
            else "starting: loading the data and building the model")
    st.progress(min(1.0, p.fraction), text=text)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Running train loss (this epoch)", "—" if p.loss is None else f"{p.loss:.4f}")
    c2.metric("Running train accuracy (this epoch)", pct(p.acc))
    c3.metric("Elapsed", f"{snap.elapsed:.0f} s")
    left = snap.seconds_left
    c4.metric("Time left (estimate)", "—" if left is None else results.duration_text(left),
              help="From this run's own pace so far: elapsed time divided by the share of batches done.")
    _stop_button(job_id, snap, key, "Stop", "Ends the run after the current batch and keeps what it learned: the "
                 "checkpoint is saved with the epochs finished so far, marked incomplete.")


def _stop_button(job_id: str, snap, key: str, label: str, help_text: str) -> None:
    """Stop/Cancel for the job's owner and a teacher; a line saying whose it is for everyone else."""
    if snap.cancel_requested or registry().get(job_id).snapshot().cancel_requested:
        st.caption("Stopping after the current batch...")
    elif not can_stop(snap):
        st.caption("Another session started this run: you can watch it here; only that session (or the "
                   "teacher) can stop it.")
    elif st.button(label, key=f"{key}stop", help=help_text):
        registry().cancel(job_id, owner=None if is_teacher() else owner())
        st.caption("Stopping after the current batch...")


def checkpoint_name(path) -> str:
    """A run's file as a user may see it: its name in the runs folder, never the server's path."""
    return Path(path).name if path else ""


def server_load(owner_tag: str | None, *, key: str, show) -> None:
    """How busy the server is; with two or more jobs of this tab, a table of them and `show(job_id)` to watch one."""
    reg = registry()
    busy = [j for j in reg.jobs() if not j.done]
    st.caption(f"On this server now: {sum(j.state == 'running' for j in busy)} running, "
               f"{sum(j.state == 'queued' for j in busy)} waiting.")
    mine = reg.jobs(owner=owner_tag) if owner_tag else []
    if len(mine) < 2:
        return
    with st.expander(f"Your runs ({len(mine)})"):
        snaps = [j.snapshot() for j in mine]
        st.dataframe([{"id": s.id, "name": s.name, "state": s.state, "reason": s.reason, "epochs": len(s.history),
                       "final test acc": s.history[-1]["test_acc"] if s.history else None,
                       "checkpoint": checkpoint_name(s.checkpoint)} for s in snaps], hide_index=True,
                     key=f"{key}jobs")
        names = {s.id: f"{s.name} ({s.id}, {s.state})" for s in snaps}
        pick = st.selectbox("Show this run above", list(names), index=len(snaps) - 1, key=f"{key}watch",
                            format_func=names.get)
        if st.button("Show it", key=f"{key}watch_go"):
            show(pick)
            st.rerun()
