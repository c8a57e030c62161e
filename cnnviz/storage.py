"""Files that several processes may write at once: atomic writes, names that never collide, digests.

Every file cnnviz writes (checkpoints, manifests, the decoded dataset cache, a grid's checkpoint that
came back from a Ray worker) is written to a temporary name beside its target and renamed into place,
so a reader never sees half a file and a killed writer leaves no partial one.
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Callable, Iterable


class UnsafePath(ValueError):
    """A file name that would land outside its folder (a planted symlink, say)."""


def atomic_write(path: str | Path, write: Callable[[Path], None], *, overwrite: bool = True) -> Path:
    """`write(tmp)` fills a temporary file beside `path`, which then replaces `path` in one rename.

    With `overwrite=False` an existing `path` is a FileExistsError, checked before and after writing
    (another writer may have taken the name meanwhile).
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise FileExistsError(f"{path} exists; choose another name")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        write(tmp)
        if not overwrite and path.exists():  # lost a race with another writer
            raise FileExistsError(f"{path} exists; choose another name")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def safe_name(name: str) -> str:
    """A file stem that cannot leave its folder: letters, digits, `.`, `-`, `_`; no leading dot."""
    stem = Path(str(name).replace("\\", "/")).name
    stem = re.sub(r"\.pt$", "", stem)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip(".-_")[:80]
    return stem or "run"


def unique_path(folder: str | Path, name: str, suffix: str = ".pt", taken: Iterable[Path] = ()) -> Path:
    """`folder/name.pt`, or `name-2.pt`, `name-3.pt`...: a path no file (and no path in `taken`, e.g.
    files that running jobs will write later) has, so a run never overwrites another's file."""
    folder, taken = Path(folder), set(taken)
    stem = safe_name(name)
    path, i = folder / f"{stem}{suffix}", 2
    while path in taken or path.exists():
        path, i = folder / f"{stem}-{i}{suffix}", i + 1
    if folder.resolve() not in path.resolve().parents:
        raise UnsafePath("the file name escapes its folder")
    return path


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
