"""Background training jobs for any UI: a FIFO queue under a cap, one thread per job, cancel flags.

Why a worker thread: Streamlit stops and reruns the page script on every click, so a training loop in
the script dies with the next click. A job runs in a daemon thread owned by a registry that outlives
script runs (one per process: `get_registry()`, or `st.cache_resource` in a page). The worker never
calls a UI; it writes plain Python state behind the job's lock, and a UI polls `Job.snapshot()`.

Why cancel flags: a thread cannot be killed from outside (and a closed tab does not end it), so each
job carries a `threading.Event` that the training loop checks after every batch via `should_stop`.
A stopped run still writes its checkpoint, marked incomplete, with the epochs it finished.

Why threads and not processes: `load_dataset` keeps one copy of a dataset per process (47-184 MB)
that every job shares, and torch releases the GIL inside its kernels, so a thread trains at full speed.

Why a cap of 1 on CPU: Streamlit Community Cloud gives one process 1-2 cores and about 1 GB of memory
for ALL its viewers. Two trainings would split the cores (each twice as slow) and together risk the
memory limit (LeNet-5 ~360 MB, VGG16 ~850 MB), so further jobs wait in line. With GPUs: one job per GPU.

Why limits at submit time (a UI's registry sets them; the CLI's has none): one process serves a whole
class, so a job over the memory or compute budget (`cnnviz.budget`), or a student's third unfinished job,
is refused with one line before it is queued, and the runs folder is kept under its size
(`cnnviz.runs_quota`) before each job starts.

Why owners: a job belongs to whoever submitted it. `owner` is a tag (`owner_tag(secret)`: a hash, so a
snapshot shown to others never carries the secret itself); `cancel(id, owner=tag)` refuses any other tag.

Nothing is persisted but checkpoints: the registry lives in memory and dies with the process; the
checkpoint on disk is the durable result of a job.
"""
from __future__ import annotations

import hashlib
import os
import secrets
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import torch

from . import budget, runs_quota
from .checkpoints import load_checkpoint, read_record
from .config import RunConfig
from .data import DataUnavailable
from .runs import run_training
from .storage import unique_path
from .train import Progress

STATES = ("queued", "running", "completed", "stopped", "failed", "cancelled")
FINISHED = frozenset({"completed", "stopped", "failed", "cancelled"})
# Errors a user causes (a bad config, a missing dataset, a taken name): the message alone is the reason.
_USER_ERRORS = (DataUnavailable, ValueError, FileExistsError)  # CheckpointError is a ValueError


class JobRefused(ValueError):
    """A job not queued (over a budget, or too many of one owner's); the message is one line for the user."""


class NotYourJob(PermissionError):
    """Only the job's owner (or someone acting without an owner: the CLI, a teacher) may stop it."""


def owner_tag(secret: str) -> str:
    """The tag a job records for the owner holding `secret`: equal secrets, equal tags; the tag does not
    reveal the secret (it is shown in snapshots that other sessions may read)."""
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class JobProgress:
    """Where a running job is: epoch and batch (1-based), `fraction` of all batches done (0..1), and
    the running loss/accuracy of the current epoch (None before the first report)."""
    epoch: int = 0
    epochs: int = 0
    batch: int = 0
    batches: int = 0
    fraction: float = 0.0
    loss: float | None = None
    acc: float | None = None


@dataclass(frozen=True)
class JobSnapshot:
    """An immutable copy of a job's state at one moment: safe to keep, draw and compare in a UI."""
    id: str
    name: str
    owner: str | None
    config: RunConfig
    state: str  # one of STATES
    reason: str  # "" while queued/running; "completed", "stopped after 2 of 10 epochs", or the error
    created: float  # time.time() stamps
    started: float | None
    finished: float | None
    progress: JobProgress
    history: tuple[dict, ...]  # one row per finished epoch (train.py's keys), copies
    checkpoint: Path | None  # set once written (also for stopped and failed-mid-run jobs)
    error: str  # the traceback or train's error text when failed, else ""
    cancel_requested: bool = False
    note: str = ""  # one line for the user about what starting it did (runs removed to make room)

    @property
    def done(self) -> bool:
        return self.state in FINISHED

    @property
    def elapsed(self) -> float:
        """Seconds since the job started (0 while queued), up to when it finished."""
        if self.started is None:
            return 0.0
        return (self.finished or time.time()) - self.started

    @property
    def seconds_left(self) -> float | None:
        """An estimate of the training still to come, from this run's own pace so far (elapsed / fraction done);
        None before 2 % of its batches are done, when the pace is mostly start-up."""
        fraction = self.progress.fraction
        if self.done or self.started is None or fraction < 0.02:
            return None
        return self.elapsed * (1 - fraction) / fraction


class Job:
    """One training run submitted to a `JobRegistry`.

    `id`, `config`, `name`, `owner` and `created` never change. Everything else is written by the
    worker thread behind the job's lock: read it with `snapshot()` (or wait for it with `wait_for`).
    """

    def __init__(self, id: str, config: RunConfig, name: str, owner: str | None, resume_from: Path | None = None):
        self.id, self.config, self.name, self.owner = id, config, name, owner
        self.resume_from = resume_from  # the checkpoint this job continues (into a new file), if any
        self.created = time.time()
        self._cond = threading.Condition()  # its lock guards the fields below; notified on each change
        self._cancel = threading.Event()
        self._state = "queued"
        self._reason = ""
        self._started: float | None = None
        self._finished: float | None = None
        self._progress = JobProgress(epochs=config.epochs)
        self._history: list[dict] = []
        self._checkpoint: Path | None = None
        self._error = ""
        self._note = ""
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"Job({self.id!r}, {self.name!r}, {self.state!r})"

    @property
    def state(self) -> str:
        with self._cond:
            return self._state

    @property
    def done(self) -> bool:
        return self.state in FINISHED

    def snapshot(self) -> JobSnapshot:
        with self._cond:
            return self._snapshot()

    def wait_for(self, predicate: Callable[[JobSnapshot], bool], timeout: float | None = None) -> JobSnapshot:
        """Block until `predicate(snapshot)` holds or `timeout` passes; returns the latest snapshot.

        Woken by every change of the job (progress, epoch, state), so there is no polling.
        """
        with self._cond:
            self._cond.wait_for(lambda: predicate(self._snapshot()), timeout)
            return self._snapshot()

    def wait(self, timeout: float | None = None) -> JobSnapshot:
        """Block until the job has finished (or `timeout` passes); check `.done` on the result."""
        return self.wait_for(lambda s: s.done, timeout)

    # ---- written by the registry and the worker (the lock is taken here) ----------------------

    def _snapshot(self) -> JobSnapshot:
        return JobSnapshot(self.id, self.name, self.owner, self.config, self._state, self._reason,
                           self.created, self._started, self._finished, self._progress,
                           tuple(dict(row) for row in self._history), self._checkpoint, self._error,
                           self._cancel.is_set(), self._note)

    def _set(self, **fields) -> None:
        with self._cond:
            for k, v in fields.items():
                setattr(self, f"_{k}", v)
            self._cond.notify_all()

    def _request_cancel(self) -> None:
        with self._cond:
            self._cancel.set()
            self._cond.notify_all()

    def _on_progress(self, p: Progress) -> None:
        with self._cond:
            self._progress = JobProgress(p.epoch, p.epochs, p.batch, p.batches, p.fraction, p.loss, p.acc)
            if p.kind == "epoch" and p.row is not None:
                self._history.append(dict(p.row))
            self._cond.notify_all()


def _gpu_count() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def default_max_jobs() -> int:
    """`CNNVIZ_MAX_JOBS` if set, else one job per CUDA GPU, else 1 (see the module docstring)."""
    env = os.environ.get("CNNVIZ_MAX_JOBS", "").strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            raise ValueError(f"CNNVIZ_MAX_JOBS must be a whole number, not {env!r}") from None
        if n < 1:
            raise ValueError(f"CNNVIZ_MAX_JOBS must be at least 1, not {n}")
        return n
    return max(1, _gpu_count())


class JobRegistry:
    """Runs submitted `RunConfig`s in background threads, at most `max_concurrent` at a time.

    Jobs beyond the cap wait in a FIFO queue; a worker that finishes starts the next one. One lock
    guards the queue and the set of running jobs (the registry's lock is always taken before a job's).
    Checkpoints go to `folder` under the job's name, made unique so two jobs never share a file.

    Limits (None: none): `memory_mb` and `max_tmacs` per job (`cnnviz.budget`), `max_per_owner` unfinished
    jobs per owner tag, `runs_max_mb` for the folder (the oldest runs there make room for a new one).
    """

    def __init__(self, max_concurrent: int | None = None, folder: str | Path = "runs", *,
                 memory_mb: int | None = None, max_tmacs: float | None = None,
                 max_per_owner: int | None = None, runs_max_mb: int | None = None):
        self.max_concurrent = default_max_jobs() if max_concurrent is None else max_concurrent
        if self.max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self.folder = Path(folder)
        self.memory_mb, self.max_tmacs = memory_mb, max_tmacs
        self.max_per_owner, self.runs_max_mb = max_per_owner, runs_max_mb
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}  # every job ever submitted, in submission order
        self._queue: deque[Job] = deque()
        self._running: dict[str, Job] = {}
        self._paths: dict[str, Path] = {}  # checkpoint path reserved by each running job
        self._gpus: dict[str, int] = {}  # GPU index given to each running job (several GPUs only)
        self._closed = False

    # ---- public API -----------------------------------------------------------------------------

    def submit(self, cfg: RunConfig, name: str | None = None, owner: str | None = None,
               resume_from: str | Path | None = None) -> Job:
        """Queue a run and return at once; it starts now if fewer than `max_concurrent` are running.
        `resume_from`: a checkpoint whose run this one continues up to `cfg.epochs` (`runs.continuation`),
        written to a new file.

        JobRefused (one line) when it is over this registry's limits. A config that cannot run for other
        reasons is not an error here: the job fails with the reason, as every other failure does.
        """
        self._check_budget(self._still_to_train(cfg, resume_from))
        with self._lock:
            if self._closed:
                raise RuntimeError("the job registry has been shut down")
            self._check_owner(owner)
            job_id = secrets.token_hex(4)
            while job_id in self._jobs:
                job_id = secrets.token_hex(4)
            job = Job(job_id, cfg, name or cfg.name, owner, Path(resume_from) if resume_from else None)
            self._jobs[job_id] = job
            self._queue.append(job)
            self._start_queued()
        return job

    def get(self, job_id: str) -> Job | None:
        """The job, or None when this process never had it (e.g. an id kept from before a restart)."""
        with self._lock:
            return self._jobs.get(job_id)

    def jobs(self, owner: str | None = None) -> list[Job]:
        """All jobs in submission order, or only those of `owner`."""
        with self._lock:
            return [j for j in self._jobs.values() if owner is None or j.owner == owner]

    def queue_position(self, job_id: str) -> int:
        """1 for the next job to start, 2 after it...; 0 when running or finished."""
        with self._lock:
            job = self._require(job_id)
            return self._queue.index(job) + 1 if job in self._queue else 0

    def cancel(self, job_id: str, owner: str | None = None) -> bool:
        """Cancel a job; False when it had already finished. With `owner`, NotYourJob unless it is the job's.

        A queued job is removed and marked "cancelled" without running. A running one is asked to
        stop: it ends at its next batch as "stopped" and still writes its checkpoint.
        """
        with self._lock:
            job = self._require(job_id)
            if owner is not None and owner != job.owner:
                raise NotYourJob("only the session that started this run can stop it")
            if job in self._queue:
                self._queue.remove(job)
                job._set(state="cancelled", reason="cancelled before it started", finished=time.time())
                return True
            if job_id in self._running:
                job._request_cancel()
                return True
            return False

    def wait(self, job_id: str, timeout: float | None = None) -> JobSnapshot:
        """Block until the job has finished or `timeout` passes; returns its snapshot (check `.done`)."""
        with self._lock:
            job = self._require(job_id)
        return job.wait(timeout)

    def shutdown(self, cancel_running: bool = True, timeout: float | None = None) -> bool:
        """Refuse new jobs, cancel the queued ones (and the running ones), wait for the workers.

        Returns True when every worker thread has ended within `timeout`.
        """
        with self._lock:
            self._closed = True
            while self._queue:
                self._queue.popleft()._set(state="cancelled", reason="the job registry shut down",
                                           finished=time.time())
            running = list(self._running.values())
            if cancel_running:
                for job in running:
                    job._request_cancel()
        deadline = None if timeout is None else time.monotonic() + timeout
        for job in running:
            job._thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(job._thread.is_alive() for job in running)

    # ---- internals ------------------------------------------------------------------------------

    @staticmethod
    def _still_to_train(cfg: RunConfig, resume_from: str | Path | None) -> RunConfig:
        """The part of `cfg` a job will really train: a continued run's epochs after those it has (its cost)."""
        if resume_from is None:
            return cfg
        try:
            done = read_record(resume_from).epochs
        except (ValueError, OSError):  # an unreadable file: the job fails with the reason, as others do
            return cfg
        return replace(cfg, epochs=max(1, cfg.epochs - done))

    def _check_budget(self, cfg: RunConfig) -> None:
        """Memory and compute of the run against this registry's limits, before anything is queued."""
        if self.memory_mb is None and self.max_tmacs is None and self.runs_max_mb is None:
            return
        try:
            cfg = cfg.resolved()
        except ValueError:
            return  # the job fails with this reason, like every bad config
        try:
            budget.check(cfg, memory_mb=self.memory_mb, max_tmacs=self.max_tmacs)
            if self.runs_max_mb is not None and budget.known(cfg):
                need = runs_quota.run_file_bytes(cfg)
                if need > self.runs_max_mb * runs_quota.MB:
                    raise JobRefused(f"the run's file (about {need / runs_quota.MB:,.0f} MB) is bigger than "
                                     f"the runs folder's {self.runs_max_mb:,} MB limit")
        except budget.OverBudget as e:
            raise JobRefused(str(e)) from None

    def _check_owner(self, owner: str | None) -> None:
        """At most `max_per_owner` unfinished jobs per owner; the caller holds the registry's lock."""
        if owner is None or self.max_per_owner is None:
            return
        unfinished = sum(j.owner == owner and not j.done for j in self._jobs.values())
        if unfinished >= self.max_per_owner:
            raise JobRefused(f"you already have {unfinished} run{'s' if unfinished != 1 else ''} waiting or "
                             f"running (at most {self.max_per_owner} at a time here): stop one or wait for it")

    def _make_room(self, job: Job) -> None:
        """Keep the runs folder under its limit before `job` starts; the job's note names what went."""
        if self.runs_max_mb is None or not budget.known(job.config):
            return
        try:
            cfg = job.config.resolved()
        except ValueError:
            return
        removed = runs_quota.make_room(self.folder, runs_quota.run_file_bytes(cfg), self.runs_max_mb,
                                       keep=self._paths.values())
        job._set(note=runs_quota.removal_note(removed, self.runs_max_mb))

    def _require(self, job_id: str) -> Job:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise KeyError(f"no job {job_id!r} in this registry") from None

    def _start_queued(self) -> None:
        """Start queued jobs while there is room; the caller holds the registry's lock."""
        while self._queue and len(self._running) < self.max_concurrent:
            job = self._queue.popleft()
            try:
                self._make_room(job)
            except runs_quota.RunsFolderFull as e:
                job._set(state="failed", reason=str(e), finished=time.time())
                continue
            self._running[job.id] = job
            self._paths[job.id] = self._reserve_path(job.name)
            cfg = self._place(job)
            job._set(state="running", started=time.time())
            job._thread = threading.Thread(target=self._work, args=(job, cfg, self._paths[job.id]),
                                           name=f"cnnviz-job-{job.id}", daemon=True)
            job._thread.start()

    def _reserve_path(self, name: str) -> Path:
        # Files that running jobs will write later are taken too: two jobs with the same name would
        # otherwise both pick `name.pt`, and the second to finish would lose its run to a FileExistsError.
        return unique_path(self.folder, name, taken=self._paths.values())

    def _place(self, job: Job) -> RunConfig:
        """With several GPUs, pin a job that asked for "auto"/"cuda" to a free one (else all share cuda:0)."""
        n = _gpu_count()
        if n < 2 or job.config.device not in ("auto", "cuda"):
            return job.config
        gpu = min(set(range(n)) - set(self._gpus.values()), default=0)
        self._gpus[job.id] = gpu
        return replace(job.config, device=f"cuda:{gpu}")

    def _work(self, job: Job, cfg: RunConfig, path: Path) -> None:
        """The worker thread: run, then record the outcome and hand the slot to the next job."""
        state, reason, error, checkpoint = "failed", "the worker ended unexpectedly", "", None
        try:
            if job._cancel.is_set():
                state, reason = "cancelled", "cancelled before it started"
            else:
                resume = load_checkpoint(job.resume_from, with_optimizer=True) if job.resume_from else None
                checkpoint, result = run_training(cfg, out=path, on_progress=job._on_progress,
                                                  should_stop=job._cancel.is_set, resume_from=resume,
                                                  command=f"cnnviz job {job.id} ({job.name})")
                done = len(result.history)
                if result.completed:
                    state, reason = "completed", "completed"
                elif result.reason == "stopped":
                    state, reason = "stopped", f"stopped after {done} of {cfg.epochs} epochs"
                else:  # train caught an exception (CUDA OOM, divergence...); the epochs done are saved
                    state, reason, error = "failed", result.reason, result.reason
        except Exception as e:  # noqa: BLE001 - a failed job must never take the registry down
            reason = str(e) if isinstance(e, _USER_ERRORS) else f"{type(e).__name__}: {e}"
            error = traceback.format_exc()
            if isinstance(e, torch.cuda.OutOfMemoryError):  # before train's loop: model or data to GPU
                torch.cuda.empty_cache()
                reason = "CUDA out of memory before training started: try a smaller model or batch size"
        finally:
            with self._lock:
                progress = job.snapshot().progress
                if state == "completed":
                    progress = replace(progress, fraction=1.0)
                job._set(state=state, reason=reason, error=error, checkpoint=checkpoint,
                         finished=time.time(), progress=progress)
                self._running.pop(job.id, None)
                self._paths.pop(job.id, None)
                self._gpus.pop(job.id, None)
                self._start_queued()


_REGISTRY: JobRegistry | None = None
_REGISTRY_LOCK = threading.Lock()


def get_registry() -> JobRegistry:
    """The process's registry (created on first use with the default cap and folder "runs")."""
    global _REGISTRY
    with _REGISTRY_LOCK:
        if _REGISTRY is None:
            _REGISTRY = JobRegistry()
        return _REGISTRY
