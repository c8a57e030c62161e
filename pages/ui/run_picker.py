"""Choosing runs to compare: every checkpoint on disk, uploads, the shipped comparison groups, the URL's list.

An entry is a runs-table row (id, path, origin, file, dataset, label) or an upload (origin "uploaded", its
loaded checkpoint and digest); ids follow `catalog.run_id`.
"""
from __future__ import annotations

import streamlit as st

from cnnviz import limits, shipped
from cnnviz.checkpoints import CheckpointError
from cnnviz.images import gallery_images

from . import catalog, loaders, widgets
from .widgets import Notices


def uploads() -> dict[str, dict]:
    """id -> entry for each uploaded checkpoint that loads; one error line for each that does not."""
    files = st.file_uploader(f"Or upload checkpoints (.pt, up to {loaders.MAX_UPLOAD_MB} MiB each)", type=["pt"],
                             accept_multiple_files=True, key="c_upload", max_upload_size=limits.streamlit_upload_setting(loaders.MAX_UPLOAD_MB),
                             help="Files written by this app or by `python -m cnnviz train`; they are read "
                                  "safely (no code runs) and kept only in this session.")
    out = {}
    for f in files or []:
        raw = f.getvalue()
        try:
            ck = loaders.uploaded_checkpoint(raw)
        except CheckpointError as e:
            st.error(f"{f.name}: {e}")
            continue
        run_id = catalog.run_id("uploaded", f.name)
        out[run_id] = {"id": run_id, "path": None, "origin": "uploaded", "file": f.name,
                       "dataset": ck.record.dataset_name, "label": ck.record.label, "checkpoint": ck,
                       "digest": loaders.digest(raw)}
    loaders.keep_uploads(entry["digest"] for entry in out.values())
    return out


def default_selection(runs: dict) -> list[str]:
    """The shipped Fashion-MNIST downsampling grid, every seed: the page opens on bands, not single lines."""
    wanted = [catalog.run_id("shipped", r.filename) for r in shipped.runs_of_group("seeds", "fashion-mnist")]
    present = [f for f in wanted if f in runs]
    return present or list(runs)[:4]


def add_to_selection(run_id: str) -> None:
    """Put `run_id` into the comparison (and make it the one run looked at), re-read on the next run."""
    selected = st.session_state.get("c_runs")
    if selected is None:
        raw = st.query_params.get("runs")
        selected = [r for r in raw.split(",") if r] if raw is not None else default_selection(catalog.runs_by_id())
    st.query_params["runs"] = ",".join(dict.fromkeys([*selected, run_id]))
    st.query_params["run"] = run_id
    for key in ("c_runs", "run"):
        st.session_state.pop(key, None)


def _load_group(ids: list[str]) -> None:
    st.session_state["c_runs"] = ids


def _group_picker(runs: dict) -> None:
    """One click puts a shipped comparison group (runs trained alike, so comparable) into the selection."""
    groups = {t: [catalog.run_id("shipped", f) for f in files] for t, files in shipped.comparison_groups().items()}
    groups = {t: [i for i in ids if i in runs] for t, ids in groups.items()}
    groups = {t: ids for t, ids in groups.items() if ids}
    if not groups:
        return
    if st.session_state.get("c_shipped_group") not in groups:  # first run: the group now selected, if one is
        current = st.session_state.get("c_runs")
        st.session_state["c_shipped_group"] = next((t for t, f in groups.items() if f == current),
                                                   next(iter(groups)))
    c_pick, c_load = st.columns([3, 1], vertical_alignment="bottom")
    title = c_pick.selectbox("Shipped comparison group", list(groups), key="c_shipped_group",
                             format_func=lambda t: f"{t} ({len(groups[t])} runs)",
                             help="Runs this project trained alike: same seed(s), optimiser, learning rate, "
                                  "batch size and epochs within a group.")
    c_load.button("Compare this group", key="c_load_group", on_click=_load_group, args=(groups[title],))


def _seed_from_url(options: list[str], notices: Notices) -> None:
    """The multiselect's start: the URL's `runs` (unknown ids left out with a notice), else the default."""
    if "c_runs" in st.session_state and all(r in options for r in st.session_state["c_runs"]):
        return
    raw = st.query_params.get("runs")
    if raw is not None:
        asked = [r for r in raw.split(",") if r]
        unknown = [r for r in asked if r not in options]
        if unknown:
            shown = ", ".join(widgets.link_value(r) for r in unknown[:5]) + (f" and {len(unknown) - 5} more"
                                                                              if len(unknown) > 5 else "")
            notices.append(f"Ignored runs in the link that are not here: {shown}.")
        st.session_state["c_runs"] = [r for r in asked if r in options]
    else:
        kept = st.session_state.get("c_runs")
        st.session_state["c_runs"] = ([r for r in kept if r in options] if kept
                                      else default_selection(dict.fromkeys(options)))


def selection(runs: dict, uploaded: dict, notices: Notices) -> list[str]:
    """The runs to compare: the multiselect seeded from the URL, plus every uploaded checkpoint."""
    options = list(runs)
    _seed_from_url(options, notices)
    _group_picker(runs)
    chosen = st.multiselect("Runs to compare", options, key="c_runs", persist_state="session",
                            format_func=lambda r: catalog.menu_label(runs[r], accuracy=False),
                            help="Shipped runs (trained by this project) and yours (trained on the Train tab).")
    st.query_params["runs"] = ",".join(chosen)
    return [*chosen, *uploaded]


def missing_shipped_note(runs: dict) -> None:
    missing = [r for r in shipped.shipped_runs() if catalog.run_id("shipped", r.filename) not in runs]
    if not missing:
        return
    with st.expander(f"Shipped checkpoints not available yet ({len(missing)} of {len(shipped.shipped_runs())})"):
        st.caption("No shipped checkpoint for these yet: train them on the Train tab or with the command beside each.")
        st.dataframe([{"run": r.filename, "group": r.group, "command": shipped.command_for(r)} for r in missing],
                     hide_index=True, key="c_missing")


def record_of(entry: dict):
    """The entry's RunRecord (an upload's from its loaded file)."""
    return entry["checkpoint"].record if entry["origin"] == "uploaded" else loaders.record(entry["path"])


def predictions_of(entry: dict):
    """(test-set predictions, dataset) of a run, cached per file or per upload's digest; (None, None) without data."""
    data = loaders.dataset_or_error(entry["dataset"])
    if data is None:
        return None, None
    if entry["origin"] == "uploaded":
        return loaders.uploaded_predictions(entry["digest"], entry["checkpoint"].model, data), data
    return loaders.predictions(entry["path"]), data


def gallery(data, indices, captions) -> None:
    """Test images in a row, each with its caption."""
    if len(indices) == 0:
        st.caption("None.")
        return
    st.image(gallery_images(data, indices), caption=captions, width=84)
