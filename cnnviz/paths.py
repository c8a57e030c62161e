"""Where cnnviz keeps its files: the shipped checkpoints, the user's runs and the datasets.

Each folder is a setting (an environment variable) with a default, so the library works from any
working directory and outside a checkout. The defaults are the checkout's own folders when cnnviz runs
from one (`pip install -e .` or the repository itself), else folders under `~/.cache/cnnviz`.
"""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
_CHECKOUT = PACKAGE_DIR.parent
_IN_CHECKOUT = (_CHECKOUT / "checkpoints").is_dir() and (_CHECKOUT / "streamlit_app.py").is_file()
_HOME = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cnnviz"


def _setting(variable: str, folder: str) -> Path:
    value = os.environ.get(variable)
    if value:
        return Path(value).expanduser()
    return (_CHECKOUT if _IN_CHECKOUT else _HOME) / folder


def shipped_dir() -> Path:
    """`CNNVIZ_CHECKPOINTS`, else the checkout's `checkpoints/` (the runs this project trained)."""
    return _setting("CNNVIZ_CHECKPOINTS", "checkpoints")


def runs_dir() -> Path:
    """`CNNVIZ_RUNS`, else `runs/`: where the app's and the CLI's new runs are written."""
    return _setting("CNNVIZ_RUNS", "runs")


def data_dir() -> Path:
    """`CNNVIZ_DATA`, else `data/`: torchvision layouts, the CIFAR-10 image folder and the decoded cache."""
    return _setting("CNNVIZ_DATA", "data")


def checkout_dir() -> Path | None:
    """The repository root when cnnviz runs from a checkout (for commands that name its files), else None."""
    return _CHECKOUT if _IN_CHECKOUT else None
