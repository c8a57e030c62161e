"""The user runs folder kept under a size limit: the oldest user runs make room for a new one.

Why: every student's run is a file on the one server's disk (a VGG16 run is 60-180 MB while it trains),
and nothing else ever removes them. Before a job starts, the oldest files of the runs folder are removed
until the folder plus the new run's file fits under the limit (`cnnviz.limits.runs_max_mb`), and the job
says which ones went. Never removed: a shipped checkpoint (even if the runs folder is pointed at them), a
file a running job writes (`keep`), anything that is not a `*.pt` file directly in the folder.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from .config import RunConfig
from .paths import shipped_dir

MB = 2**20


class RunsFolderFull(ValueError):
    """The new run's file would not fit even with every removable run gone; the message is one line."""


def run_file_bytes(cfg: RunConfig) -> int:
    """The largest the run's file gets: float32 weights and the optimizer's state while it is unfinished
    (train.py keeps both so a stopped run resumes exactly), plus a megabyte for the record and snapshots."""
    from .budget import OPTIMIZER_SLOTS, net_shape

    params = net_shape(cfg.arch, cfg.dataset, cfg.downsample).params
    return params * 4 * (1 + OPTIMIZER_SLOTS.get(cfg.optimizer, 2)) + MB


def folder_bytes(folder: str | Path) -> int:
    """Bytes of every file directly in `folder` (temporary files of a write in progress included)."""
    return sum(p.stat().st_size for p in _files(folder, "*"))


def _files(folder: str | Path, pattern: str) -> list[Path]:
    out = []
    for p in Path(folder).glob(pattern):
        try:
            if p.is_file() and not p.is_symlink():
                out.append(p)
        except OSError:
            continue
    return out


def _removable(folder: Path, keep: set[Path]) -> list[Path]:
    """The folder's runs, oldest first, without the shipped checkpoints and the files in `keep`."""
    shipped = shipped_dir().resolve()
    runs = [p for p in _files(folder, "*.pt")
            if p.resolve() not in keep and shipped not in (p.resolve(), *p.resolve().parents)]
    return sorted(runs, key=lambda p: (p.stat().st_mtime, p.name))


def make_room(folder: str | Path, need: int, limit_mb: int, keep: Iterable[Path] = ()) -> list[str]:
    """Remove the oldest runs until the folder plus `need` bytes fits under `limit_mb`; the names removed.

    Raises RunsFolderFull (nothing removed) when even removing every removable run would not be enough."""
    folder, limit = Path(folder), limit_mb * MB
    if not folder.is_dir():
        return []
    total = folder_bytes(folder)
    if total + need <= limit:
        return []
    candidates = _removable(folder, {Path(p).resolve() for p in keep})
    if total - sum(p.stat().st_size for p in candidates) + need > limit:
        raise RunsFolderFull(f"the run's file (about {need / MB:,.0f} MB) does not fit in the runs folder's "
                             f"{limit_mb:,} MB limit beside the runs that must stay; try again once a run finishes")
    removed = []
    for p in candidates:
        if total + need <= limit:
            break
        size = p.stat().st_size
        p.unlink(missing_ok=True)
        total -= size
        removed.append(p.name)
    return removed


def removal_note(removed: list[str], limit_mb: int) -> str:
    """One line for the user: which runs went to make room (at most five names, then a count)."""
    if not removed:
        return ""
    names = ", ".join(removed[:5]) + (f" and {len(removed) - 5} more" if len(removed) > 5 else "")
    return f"To keep the runs folder under {limit_mb:,} MB, the oldest runs were removed: {names}."
