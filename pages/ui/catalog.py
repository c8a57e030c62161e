"""Where runs live and what a page calls them: the shipped and the user's checkpoints as one table.

One run-id scheme on every page and in every link: a shipped run is its file name
(`fashion-mnist-lenet5-max.pt`), a run of yours is `yours/<file>`, an upload is `upload/<file name>`. A link
that names the dataset too may shorten an id (`link_names`); the full id always opens.
Tests point the UI at temporary folders by patching `SHIPPED` and `USER_RUNS` here.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from cnnviz import checkpoints, paths
from cnnviz.checkpoints import CheckpointError

SHIPPED = paths.shipped_dir()
USER_RUNS = paths.runs_dir()
ORIGIN_PREFIX = {"shipped": "", "yours": "yours/", "uploaded": "upload/"}


def run_id(origin: str, file: str) -> str:
    """The id of a run on every page and in every link (see the module's docstring)."""
    return ORIGIN_PREFIX[origin] + file


def link_names(ids, dataset: str) -> dict[str, str]:
    """Shorter names for run ids in a link that names the dataset already: the id without the dataset's prefix
    and ".pt" (`downsample_compare-max`, `yours/lenet5-max`). An id whose short name another id would share, or
    that is some other id's full text, keeps its full text."""
    ids = list(ids)
    short = {}
    for i in ids:
        origin, _, file = i.rpartition("/")
        name = file.removeprefix(f"{dataset}-").removesuffix(".pt")
        short[i] = f"{origin}/{name}" if origin else name
    names = list(short.values())
    return {i: n for i, n in short.items() if names.count(n) == 1 and (n == i or n not in ids)}


@st.cache_data(show_spinner=False, max_entries=2048)
def _run_row(path: str, mtime: float, size: int) -> dict | None:
    """One runs-table row (`RunRecord.row`), read once per (file, mtime, size); None for an unreadable
    file, which is left out of the table (a load shows why) and not read again until it changes."""
    try:
        return checkpoints.read_record(path).row()
    except CheckpointError:
        return None


def runs_table(include_user: bool = True):
    """All readable checkpoints: the shipped ones, then the user's, with their `origin` and `id`. Only the
    folders are listed on each call; a file's metadata is read again only when the file changed."""
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
                rows.append({**row, "origin": origin, "id": run_id(origin, row["file"])})
    return pd.DataFrame(rows)


def runs_by_id(dataset: str | None = None, include_user: bool = True) -> dict[str, dict]:
    """id -> runs-table row (as a dict), optionally only the runs of one dataset; shipped ones first."""
    table = runs_table(include_user)
    if table.empty:
        return {}
    if dataset is not None:
        table = table[table["dataset"] == dataset]
    return {row["id"]: row for row in table.to_dict("records")}


def menu_label(row: dict, accuracy: bool = True) -> str:
    """How a run reads in a menu: its label, whose it is, its file, and its final test accuracy."""
    whose = "" if row["origin"] == "shipped" else f"{row['origin']}: "
    acc = row.get("test_acc")
    tail = f", {100 * acc:.1f} % test accuracy" if accuracy and acc is not None and acc == acc else ""
    return f"{row['label']} ({whose}{row['file']}{tail})"


def unique_labels(ids: list[str], labels: list[str]) -> dict[str, str]:
    """id -> its label, with the id added to each label that two of the runs share (charts need distinct names)."""
    counts = {lab: labels.count(lab) for lab in labels}
    return {i: lab if counts[lab] == 1 else f"{lab} [{i}]" for i, lab in zip(ids, labels)}


def read_shipped(runs) -> tuple[list[tuple], list]:
    """([(run, its RunRecord)] for the shipped runs on disk, [the runs not there yet]); one error line for each
    file that is there but unreadable."""
    from . import loaders  # loaders needs nothing from here; imported late to keep this module light

    present, missing = [], []
    for run in runs:
        path = SHIPPED / run.filename
        if not path.exists():
            missing.append(run)
            continue
        try:
            present.append((run, loaders.record(path)))
        except (CheckpointError, OSError) as e:
            st.error(f"{run.filename}: {e}")
    return present, missing
