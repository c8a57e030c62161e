"""Choosing runs to compare: every checkpoint on disk, uploads, the shipped comparison groups, the URL's list.

An entry is a runs-table row (id, path, origin, file, dataset, label) or an upload (origin "uploaded", its
loaded checkpoint and digest); ids follow `catalog.run_id`.
"""
from __future__ import annotations

import streamlit as st

from cnnviz import shipped
from cnnviz.checkpoints import CheckpointError
from cnnviz.images import gallery_images

from . import catalog, loaders, widgets
from .widgets import Notices


def uploads() -> dict[str, dict]:
    """id -> entry for each uploaded checkpoint that loads; one error line for each that does not."""
    files = st.file_uploader(f"Or upload checkpoints (.pt, up to {loaders.MAX_UPLOAD_MB} MB each)", type=["pt"],
                             accept_multiple_files=True, key="c_upload", max_upload_size=loaders.MAX_UPLOAD_MB,
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


# The selection in a link: `group=<id>` (a shipped comparison group, `shipped.ComparisonGroup.id`) followed by
# `runs=<more ids>`, or, when it does not start with a group, `runs=<every id>` (older links say this too).
GROUP_PARAM, RUNS_PARAM = "group", "runs"


def default_selection(runs: dict) -> list[str]:
    """The shipped Fashion-MNIST downsampling grid, every seed: the page opens on bands, not single lines."""
    wanted = [catalog.run_id("shipped", r.filename) for r in shipped.runs_of_group("seeds", "fashion-mnist")]
    present = [f for f in wanted if f in runs]
    return present or list(runs)[:4]


def shipped_groups(runs: dict) -> dict[str, tuple[str, list[str]]]:
    """Group id -> (its title, the ids of its runs that are here), for each group with a run here."""
    out = {}
    for gid, group in shipped.comparison_groups().items():
        ids = [i for i in (catalog.run_id("shipped", f) for f in group.files) if i in runs]
        if ids:
            out[gid] = (group.title, ids)
    return out


def link_params(chosen: list[str], groups: dict[str, tuple[str, list[str]]], default: list[str]) -> dict[str, str]:
    """The shortest parameters that reopen `chosen`: none for the default selection; `group=<id>` (plus
    `runs=` for what follows the group) when it starts with every run of a group, the largest such group; else
    `runs=` with every id."""
    if chosen == default:
        return {}
    gid = leading_group(chosen, groups)
    if gid is None:
        return {RUNS_PARAM: ",".join(chosen)}
    rest = chosen[len(groups[gid][1]):]
    return {GROUP_PARAM: gid, **({RUNS_PARAM: ",".join(rest)} if rest else {})}


def leading_group(chosen: list[str], groups: dict[str, tuple[str, list[str]]]) -> str | None:
    """The largest group whose runs, in its order, begin `chosen`; None if none does."""
    starts = [(len(ids), gid) for gid, (_, ids) in groups.items() if chosen[:len(ids)] == ids]
    return max(starts)[1] if starts else None


def _write_link(chosen: list[str], runs: dict) -> None:
    params = link_params(chosen, shipped_groups(runs), default_selection(runs))
    for name in (GROUP_PARAM, RUNS_PARAM):
        if name in params:
            st.query_params[name] = params[name]
        else:
            st.query_params.pop(name, None)


def _url_selection(runs: dict, notices: Notices | None = None) -> list[str] | None:
    """The runs the URL names (see GROUP_PARAM), None when it names none (or only a group that is not one here).
    Ids that are not here, and a group id that is not a group, are left out with a line in `notices`."""
    gid, raw = st.query_params.get(GROUP_PARAM), st.query_params.get(RUNS_PARAM)
    if gid is None and raw is None:
        return None
    groups = shipped_groups(runs)
    asked = groups[gid][1] if gid in groups else []
    if gid is not None and gid not in groups:
        if notices is not None:
            notices.append(f"`{GROUP_PARAM}={widgets.link_value(gid)}` in the link is not a shipped comparison "
                           f"group here ({', '.join(groups) or 'none is'}); showing "
                           f"{'the default runs' if raw is None else 'the runs it lists'} instead.")
        if raw is None:
            return None
    asked = list(dict.fromkeys([*asked, *(r for r in (raw or "").split(",") if r)]))
    unknown = [r for r in asked if r not in runs]
    if unknown and notices is not None:
        shown = ", ".join(widgets.link_value(r) for r in unknown[:5]) + (f" and {len(unknown) - 5} more"
                                                                          if len(unknown) > 5 else "")
        notices.append(f"Ignored runs in the link that are not here: {shown}.")
    return [r for r in asked if r in runs]


def add_to_selection(run_id: str) -> None:
    """Put `run_id` into the comparison (and make it the one run looked at), re-read on the next run."""
    runs = catalog.runs_by_id()
    selected = st.session_state.get("c_runs")
    if selected is None:
        selected = _url_selection(runs)
        selected = default_selection(runs) if selected is None else selected
    _write_link(list(dict.fromkeys([*selected, run_id])), runs)
    st.query_params["run"] = run_id
    for key in ("c_runs", "run"):
        st.session_state.pop(key, None)


def _load_group(ids: list[str]) -> None:
    st.session_state["c_runs"] = ids


def _group_picker(runs: dict) -> None:
    """One click puts a shipped comparison group (runs trained alike, so comparable) into the selection."""
    groups = shipped_groups(runs)
    if not groups:
        return
    if st.session_state.get("c_shipped_group") not in groups:  # first run: the group the selection starts with
        st.session_state["c_shipped_group"] = leading_group(st.session_state.get("c_runs") or [], groups) \
            or next(iter(groups))
    c_pick, c_load = st.columns([3, 1], vertical_alignment="bottom")
    gid = c_pick.selectbox("Shipped comparison group", list(groups), key="c_shipped_group",
                           format_func=lambda g: f"{groups[g][0]} ({len(groups[g][1])} runs)",
                           help="Runs this project trained alike: same seed(s), optimiser, learning rate, "
                                "batch size and epochs within a group.")
    c_load.button("Compare this group", key="c_load_group", on_click=_load_group, args=(groups[gid][1],))


def _seed_from_url(runs: dict, notices: Notices) -> None:
    """The multiselect's start: the runs the URL names (unknown ones left out with a notice), else the default."""
    if "c_runs" in st.session_state and all(r in runs for r in st.session_state["c_runs"]):
        return
    asked = _url_selection(runs, notices)
    if asked is not None:
        st.session_state["c_runs"] = asked
    else:
        kept = st.session_state.get("c_runs")
        st.session_state["c_runs"] = [r for r in kept if r in runs] if kept else default_selection(runs)


def selection(runs: dict, uploaded: dict, notices: Notices) -> list[str]:
    """The runs to compare: the multiselect seeded from the URL, plus every uploaded checkpoint."""
    _seed_from_url(runs, notices)
    _group_picker(runs)
    chosen = st.multiselect("Runs to compare", list(runs), key="c_runs", persist_state="session",
                            format_func=lambda r: catalog.menu_label(runs[r], accuracy=False),
                            help="Shipped runs (trained by this project) and yours (trained on the Train tab).")
    _write_link(chosen, runs)
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
