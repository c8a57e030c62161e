"""The limits of one process shared by a whole class, each a setting (an environment variable) with a default.

The defaults fit Streamlit Community Cloud's smallest app (about 0.7 GB and 1 core for every viewer):
the app itself holds some hundreds of MB (torch, the datasets, the shipped models), so one training job
gets about 1 GB, uploads together a few hundred MB, and the user runs folder 2 GB of disk. A value that
is not a whole number >= 1 falls back to the default: a typo in a setting must not take the app down.
"""
from __future__ import annotations

import os

# The largest upload, in MB of 10**6 bytes: the unit Streamlit's browser uploader counts in and prints beside
# every uploader ("100MB per file"), so cnnviz says the same number in the same unit. Its server counts
# `server.maxUploadSize` in 2**20 bytes, which lets a file of exactly this size (plus its multipart framing)
# through; cnnviz refuses anything larger itself, with one line (tests/test_reliability.py checks both).
MAX_UPLOAD_MB = 100
MB = 10**6


def _whole(variable: str, default: int) -> int:
    try:
        value = int(os.environ.get(variable, default))
    except ValueError:
        return default
    return value if value >= 1 else default


def upload_limit_mb() -> int:
    """`CNNVIZ_MAX_UPLOAD_MB`, at most MAX_UPLOAD_MB: the server refuses bigger files anyway."""
    return min(_whole("CNNVIZ_MAX_UPLOAD_MB", MAX_UPLOAD_MB), MAX_UPLOAD_MB)


def job_memory_mb() -> int:
    """`CNNVIZ_JOB_MEMORY_MB`: the most one training job may add to the process (default 1024)."""
    return _whole("CNNVIZ_JOB_MEMORY_MB", 1024)


def job_max_tmacs() -> int:
    """`CNNVIZ_JOB_MAX_TMACS`: the most forward multiply-adds (in 10**12) one job may run on a CPU.

    Default 200: the shipped plan's largest run, VGG16 x 10 epochs on CIFAR-10 (157 T, ~45 min on 2 cores),
    fits; VGG16 x 200 epochs (3,133 T, about 15 hours of the class's only CPU) does not."""
    return _whole("CNNVIZ_JOB_MAX_TMACS", 200)


def max_jobs_per_session() -> int:
    """`CNNVIZ_MAX_JOBS_PER_SESSION`: unfinished (queued or running) jobs one student may have (default 2)."""
    return _whole("CNNVIZ_MAX_JOBS_PER_SESSION", 2)


def runs_max_mb() -> int:
    """`CNNVIZ_RUNS_MAX_MB`: the size the user runs folder is kept under (default 2000)."""
    return _whole("CNNVIZ_RUNS_MAX_MB", 2000)


def upload_cache_mb() -> int:
    """`CNNVIZ_UPLOAD_CACHE_MB`: the memory all sessions' uploaded checkpoints may hold together (default 300)."""
    return _whole("CNNVIZ_UPLOAD_CACHE_MB", 300)
