"""Train & compare: train a lecture network in the background, then compare runs by their curves,
their errors and their cost.

Training runs in a worker thread of the job registry (`ui.registry()`), never in this script: every
click reruns the script, and the job must outlive that. The page keeps only the job's id (in the
session and in the URL) and polls the job's snapshot from a fragment.
"""
from __future__ import annotations

import hashlib
import secrets
from pathlib import Path

import numpy as np
import streamlit as st

import ui
from cnnviz import analysis, costs, figures, results, shipped
from cnnviz.checkpoints import CheckpointError
from cnnviz.config import OPTIMIZERS, RunConfig
from cnnviz.data import DATASETS, DataUnavailable, list_datasets
from cnnviz.device import available_devices, describe_device
from cnnviz.downsample import downsample_label
from cnnviz.models import build_model, get_arch, list_archs
from cnnviz.images import gallery_images
from cnnviz.summary import summary
from cnnviz.train import LR_PRESETS

LECTURE_FORMULA = r"S_o = \left\lfloor \frac{S_D - K + 2P}{S} \right\rfloor + 1"
CUSTOM_LR = "custom"
TRAIN_SUBSETS = ("all", 2048, 10000, 30000)
DEFAULT_ARCH = "downsample_compare"  # the lecture's small net: an epoch takes seconds, not minutes, on a CPU
GALLERY = 12  # images per gallery: enough to see a pattern, light enough for a phone


# ---- cached work ---------------------------------------------------------------------------------

@st.cache_data(show_spinner="Building the model and running it once...", max_entries=64)
def _summary(arch: str, dataset: str, downsample: str | None):
    shape = DATASETS[dataset].shape
    model = build_model(arch, shape, len(DATASETS[dataset].classes), downsample)
    return summary(model, shape), costs.macs(model, shape)


@st.cache_resource(show_spinner="Evaluating the uploaded model on the test set...", max_entries=8)
def _uploaded_predictions(digest: str, _model, _data) -> analysis.Predictions:
    return analysis.predict(_model, _data)


def _data_or_error(name: str):
    """The dataset a run was trained on, or an error line (the rest of the page still draws)."""
    try:
        return ui._dataset(name)
    except DataUnavailable as e:
        st.error(str(e))
        return None


def _pct(x) -> str:
    return "—" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{100 * x:.2f} %"


# ---- page ----------------------------------------------------------------------------------------

ui.header("Train & compare",
          "Train a network from the lecture in the background (it keeps running while you click around), "
          "then compare runs: accuracy and loss per epoch, seed-to-seed spread, errors per class, and "
          "accuracy against cost. Every number here is read from real checkpoints and test sets.")
train_tab, compare_tab = st.tabs(["Train", "Compare"], key="part", bind="query-params")
registry = ui.registry()
owner = st.session_state.setdefault("train_owner", secrets.token_hex(4))


# ---- TRAIN -----------------------------------------------------------------------------------------

def _train_form() -> RunConfig | None:
    """The training choices; returns the config when "Train" was clicked."""
    # Dataset, net and downsampling live in the URL: a shared link opens the same form.
    c1, c2, c3 = st.columns(3)
    notices: list[str] = []
    with c1:
        dataset = _pick("Dataset", list_datasets(), "t_dataset", list_datasets()[0], notices, str, param="dataset",
                        help="The images the network learns from; its test set scores every epoch.")
    archs = list_archs()
    with c2:
        arch = _pick("Architecture", archs, "t_arch", DEFAULT_ARCH if DEFAULT_ARCH in archs else archs[0], notices,
                     str, param="arch", help="Every network of the lecture, from the model registry.")
    spec = get_arch(arch)
    if spec.downsamples:
        with c3:
            downsample = _pick(
                "Downsampling", list(spec.downsamples), f"t_downsample_{arch}", spec.default_downsample, notices,
                downsample_label, param="downsample",
                help="How each 2x2 downsampling step halves the feature maps (only the options this net takes).")
    else:
        downsample = None
        st.query_params.pop("downsample", None)
        c3.selectbox("Downsampling", ["none: this net never downsamples"], key="t_downsample_none", disabled=True)
    for n in notices:
        st.info(n)
    st.caption(f"**{arch}**: {spec.description} {shipped.availability(arch)}")

    c1, c2, c3, c4 = st.columns(4)
    epochs = c1.number_input("Epochs", 1, 200, shipped.EPOCHS, key="t_epochs", persist_state="session",
                             help="Passes over the training set; the shipped runs use "
                                  f"{shipped.EPOCHS}, so yours lines up with theirs.")
    presets = [*LR_PRESETS, CUSTOM_LR]
    lr_choice = c2.selectbox("Learning rate", presets, index=presets.index("fast (1e-3)"), key="t_lr",
                             persist_state="session",
                             help="The lecture uses Adam with 1e-5 (slow, many epochs); 1e-3 learns in a few.")
    lr = (c2.number_input("Custom learning rate", 1e-7, 1.0, 1e-4, format="%.1e", key="t_lr_custom",
                          persist_state="session") if lr_choice == CUSTOM_LR else LR_PRESETS[lr_choice])
    batch_size = c3.number_input("Batch size", 1, 8192, 1024, key="t_batch", persist_state="session",
                                 help="Images per optimiser step; the lecture's loaders use 1024.")
    optimizer = c4.selectbox("Optimizer", OPTIMIZERS, key="t_opt", persist_state="session")
    c1, c2, c3, _ = st.columns(4)
    device = c1.selectbox("Device", available_devices(), key="t_device", persist_state="session",
                          help=f"auto = the fastest here: {describe_device()}")
    seed = c2.number_input("Seed", 0, 10_000, 0, key="t_seed", persist_state="session",
                           help="Fixes the initial weights and the shuffling: same seed, same run. "
                                "Runs that differ only by seed are grouped on the Compare tab.")
    subset = c3.selectbox("Training images", TRAIN_SUBSETS, key="t_subset", persist_state="session",
                          format_func=lambda s: "all" if s == "all" else f"first {s:,}",
                          help="A subset trains faster (for a quick look); the test set is always complete.")

    st.subheader("The model you are about to train")
    st.caption("The lecture's summary table, measured by running the model once on an input of the "
               "dataset's shape. Output sizes follow the lecture's formula:")
    st.latex(LECTURE_FORMULA)
    summ, macs = _summary(arch, dataset, downsample)
    frame = summ.to_frame()
    st.dataframe(frame[["layer", "name", "output_shape", "params", "formula"]], hide_index=True,
                 key="t_summary", column_config={"params": st.column_config.NumberColumn("Param #", format="localized")})
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Total params", f"{summ.total_params:,}")
    m2.metric("Trainable params", f"{summ.trainable_params:,}")
    m3.metric("Multiply-adds per image", f"{macs:,}")
    m4.metric("Estimated total size (MB)", f"{summ.total_mb:.2f}")
    st.caption("Multiply-adds are counted by torch's FLOP counter on one forward pass; the size is the "
               "torchsummary estimate (input + forward/backward activations + parameters, float32).")

    if st.button("Train in the background", type="primary", key="t_train"):
        return RunConfig(arch=arch, dataset=dataset, downsample=downsample, epochs=int(epochs), lr=float(lr),
                         optimizer=optimizer, batch_size=int(batch_size), device=device, seed=int(seed),
                         limit_train=None if subset == "all" else int(subset))
    return None


def _set_job(job_id: str | None) -> None:
    ui.remember_job("job", "train_job", job_id)


def _attached_job():
    """The job this session watches: from the URL (a reload, a shared link) or the session."""
    return ui.attached_job("job", "train_job", "find them on the Compare tab.")


def _history_figures(label: str, history: list[dict]) -> None:
    run = [{"label": label, "history": history, "color": figures.RUN_COLORS[0]}]
    a, b = st.columns(2)
    a.plotly_chart(figures.curves_figure(run, ("train_acc", "test_acc"), title="Accuracy per epoch"),
                   key="t_acc_curve")
    b.plotly_chart(figures.curves_figure(run, ("train_loss", "test_loss"), title="Loss per epoch"),
                   key="t_loss_curve")


def _add_to_compare(run_id: str) -> None:
    """Callback of "Compare it": select the run and open the Compare tab."""
    selected = st.session_state.get("c_runs")
    if selected is None:
        raw = st.query_params.get("runs")
        selected = [r for r in raw.split(",") if r] if raw is not None else _default_selection(_catalog())
    st.query_params["runs"] = ",".join(dict.fromkeys([*selected, run_id]))
    st.query_params["run"] = run_id
    for key in ("c_runs", "run"):  # re-read from the URL on the next run
        st.session_state.pop(key, None)
    st.session_state["part"] = "Compare"


def _running(job_id: str) -> None:
    snap = registry.get(job_id).snapshot()
    if snap.done:
        st.rerun()  # the whole page redraws the finished run, and the polling stops
    p = snap.progress
    st.markdown(f"**{snap.name}** · {snap.state}")
    if snap.state == "queued":
        position = registry.queue_position(job_id)
        ahead = position - 1 + sum(j.state == "running" for j in registry.jobs())
        st.info(f"waiting: {ahead} job{'s' if ahead != 1 else ''} ahead (this server trains "
                f"{registry.max_concurrent} at a time, first come first served).")
        label = "Cancel"
    else:
        text = (f"epoch {p.epoch}/{p.epochs}, batch {p.batch}/{p.batches}" if p.epoch
                else "starting: loading the data and building the model")
        st.progress(min(1.0, p.fraction), text=text)
        c1, c2, c3 = st.columns(3)
        c1.metric("Running train loss (this epoch)", "—" if p.loss is None else f"{p.loss:.4f}")
        c2.metric("Running train accuracy (this epoch)", _pct(p.acc))
        c3.metric("Elapsed", f"{snap.elapsed:.0f} s")
        if snap.history:
            _history_figures(snap.name, list(snap.history))
        label = "Stop"
    help_text = ("Takes the run out of the queue; nothing was trained yet." if snap.state == "queued" else
                 "Ends the run after the current batch and keeps what it learned: the checkpoint is saved "
                 "with the epochs finished so far, marked incomplete.")
    if not snap.cancel_requested and st.button(label, key="t_stop", help=help_text):
        registry.cancel(job_id)
    if snap.cancel_requested or registry.get(job_id).snapshot().cancel_requested:
        st.caption("Stopping after the current batch...")


_running_live = st.fragment(run_every=1.0)(_running)


def _finished(snap) -> None:
    h = list(snap.history)
    st.markdown(f"**{snap.name}** · {snap.state}")
    if snap.state == "completed":
        st.success(f"Finished {len(h)} epoch{'s' if len(h) != 1 else ''}: final test accuracy "
                   f"{_pct(h[-1]['test_acc'])}.")
    elif snap.state == "stopped":
        st.warning(f"{snap.reason.capitalize()}; the checkpoint keeps what it learned (marked incomplete).")
    elif snap.state == "cancelled":
        st.info(f"{snap.reason.capitalize()}.")
    else:
        st.error(f"Training failed: {snap.reason.strip().splitlines()[0] if snap.reason.strip() else 'unknown error'}")
    if h:
        _history_figures(snap.name, h)
    if snap.checkpoint and Path(snap.checkpoint).exists():
        path = Path(snap.checkpoint)
        c1, c2, c3 = st.columns(3)
        c1.metric("Final test accuracy", _pct(h[-1]["test_acc"]) if h else "—")
        c2.metric("Epochs trained", f"{len(h)} of {snap.config.epochs}")
        c3.metric("Seconds per epoch", f"{np.mean([r['seconds'] for r in h]):.1f}" if h else "—")
        st.caption(f"Checkpoint: `{path}`")
        d1, d2 = st.columns(2)
        # A callable: the file is read when clicked, not held in memory on every rerun (VGG16: 60 MB).
        d1.download_button("Download the checkpoint (.pt)", path.read_bytes, file_name=path.name,
                           mime="application/octet-stream", key="t_download")
        d2.button("Compare it with other runs", key="t_compare", on_click=_add_to_compare,
                  args=(_user_run_id(path.name),))


def _user_run_id(file: str) -> str:
    return f"yours/{file}"


def train_section() -> None:
    st.caption("Choose a network and its training; the table below shows the model before anything is "
               "trained. Training runs on the server in the background: clicking, switching tabs or pages, "
               "or reloading does not stop it.")
    cfg = _train_form()
    if cfg is not None:
        try:
            cfg = cfg.resolved()
        except ValueError as e:
            ui.show_error(e)
        else:
            job = registry.submit(cfg, owner=owner)
            _set_job(job.id)
    st.subheader("Training")
    job = _attached_job()
    if job is None:
        st.caption("No training started in this session yet.")
    elif job.done:
        _finished(job.snapshot())
    else:
        _running_live(job.id)
    mine = registry.jobs(owner=owner)
    everyone = registry.jobs()
    busy = [j for j in everyone if not j.done]
    st.caption(f"On this server now: {sum(j.state == 'running' for j in busy)} running, "
               f"{sum(j.state == 'queued' for j in busy)} waiting.")
    if len(mine) > 1:
        with st.expander(f"Your runs in this session ({len(mine)})"):
            rows = []
            for j in mine:
                s = j.snapshot()
                rows.append({"id": s.id, "name": s.name, "state": s.state, "reason": s.reason,
                             "epochs": len(s.history),
                             "final test acc": s.history[-1]["test_acc"] if s.history else None,
                             "checkpoint": str(s.checkpoint or "")})
            st.dataframe(rows, hide_index=True, key="t_jobs")
            names = {r["id"]: f"{r['name']} ({r['id']}, {r['state']})" for r in rows}
            pick = st.selectbox("Show this run above", list(names), index=len(rows) - 1, key="t_watch",
                                format_func=names.get)
            if st.button("Show it", key="t_watch_go"):
                _set_job(pick)
                st.rerun()


# ---- COMPARE ---------------------------------------------------------------------------------------

def _catalog():
    """id -> run entry for every checkpoint on disk: shipped ones by file name, yours as `yours/<file>`."""
    table = ui.runs_table()
    entries = {}
    for row in table.to_dict("records") if not table.empty else []:
        run_id = row["file"] if row["origin"] == "shipped" else _user_run_id(row["file"])
        entries[run_id] = {"id": run_id, "path": row["path"], "origin": row["origin"], "file": row["file"],
                           "dataset": row["dataset"], "label": row["label"]}
    return entries


def _uploads() -> dict:
    """id -> entry for each uploaded checkpoint that loads; one error line for each that does not."""
    files = st.file_uploader(f"Or upload checkpoints (.pt, up to {ui.MAX_UPLOAD_MB} MB each)", type=["pt"],
                             accept_multiple_files=True, key="c_upload", max_upload_size=ui.MAX_UPLOAD_MB,
                             help="Files written by this app or by `python -m cnnviz train`; they are read "
                                  "safely (no code runs) and kept only in this session.")
    out = {}
    for f in files or []:
        raw = f.getvalue()
        try:
            ck = ui.uploaded_checkpoint(raw)
        except CheckpointError as e:
            st.error(f"{f.name}: {e}")
            continue
        run_id = f"upload/{f.name}"
        out[run_id] = {"id": run_id, "path": None, "origin": "uploaded", "file": f.name,
                       "dataset": ck.record.dataset_name, "label": ck.record.label, "checkpoint": ck,
                       "digest": hashlib.sha256(raw).hexdigest(), "raw": raw}
    return out


def _default_selection(catalog: dict) -> list[str]:
    """The shipped Fashion-MNIST downsampling grid, every seed: the page opens on bands, not single lines."""
    wanted = [r.filename for r in shipped.runs_of_group("seeds", "fashion-mnist")]
    present = [f for f in wanted if f in catalog]
    return present or list(catalog)[:4]


def _load_group(files: list[str]) -> None:
    st.session_state["c_runs"] = files


def _group_picker(catalog: dict) -> None:
    """One click puts a shipped comparison group (runs trained alike, so comparable) into the selection."""
    groups = {t: [f for f in files if f in catalog] for t, files in shipped.comparison_groups().items()}
    groups = {t: files for t, files in groups.items() if files}
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


def _selection(catalog: dict, uploads: dict, notices: list[str]) -> list[str]:
    """The runs to compare: the multiselect seeded from the URL, plus every uploaded checkpoint."""
    options = list(catalog)
    if "c_runs" not in st.session_state or any(r not in options for r in st.session_state["c_runs"]):
        raw = st.query_params.get("runs")
        if raw is not None:
            asked = [r for r in raw.split(",") if r]
            unknown = [r for r in asked if r not in options]
            if unknown:
                notices.append(f"Ignored runs in the link that are not here: {', '.join(unknown)}.")
            st.session_state["c_runs"] = [r for r in asked if r in options]
        else:
            kept = st.session_state.get("c_runs")
            st.session_state["c_runs"] = [r for r in kept if r in options] if kept else _default_selection(catalog)
    _group_picker(catalog)
    chosen = st.multiselect("Runs to compare", options, key="c_runs", persist_state="session",
                            format_func=lambda r: f"{catalog[r]['label']} ({'yours: ' if catalog[r]['origin'] != 'shipped' else ''}{catalog[r]['file']})",
                            help="Shipped runs (trained by this project) and yours (trained on the Train tab).")
    st.query_params["runs"] = ",".join(chosen)
    return [*chosen, *uploads]


def _pick(label: str, options: list[str], key: str, default: str, notices: list[str], fmt, param: str | None = None,
          help: str | None = None) -> str:
    """A selectbox that starts from the URL parameter `param` (default: `key`) and writes its choice back;
    a value in the link that is not among `options` gives a notice and the default."""
    param = param or key
    ui.start_from_url(key, options, default, notices, param=param, fmt=fmt)
    choice = st.selectbox(label, options, key=key, format_func=fmt, persist_state="session", help=help)
    st.query_params[param] = choice
    return choice


def _missing_shipped_note(catalog: dict) -> None:
    missing = [r for r in shipped.shipped_runs() if r.filename not in catalog]
    if not missing:
        return
    with st.expander(f"Shipped checkpoints not available yet ({len(missing)} of {len(shipped.shipped_runs())})"):
        st.caption("No shipped checkpoint for these yet: train them on the Train tab or with the command beside each.")
        st.dataframe([{"run": r.filename, "group": r.group, "command": shipped.command_for(r)} for r in missing],
                     hide_index=True, key="c_missing")


def _predictions(entry: dict):
    """Test-set predictions of a run (cached per file, or per uploaded file's digest)."""
    data = _data_or_error(entry["dataset"])
    if data is None:
        return None, None
    if entry["origin"] == "uploaded":
        return _uploaded_predictions(entry["digest"], entry["checkpoint"].model, data), data
    return ui.predictions(entry["path"]), data


def _gallery(data, indices, captions) -> None:
    if len(indices) == 0:
        st.caption("None.")
        return
    st.image(gallery_images(data, indices), caption=captions, width=84)


def compare_section() -> None:
    notices: list[str] = []
    catalog = _catalog()
    st.caption("Pick runs to overlay. Runs that differ only by their seed are grouped: their mean curve is "
               "drawn with a band from the lowest to the highest seed, so you can see whether a gap between "
               "two methods is bigger than luck.")
    picker = st.container()  # the group picker and the run list, above the uploader, drawn once uploads are read
    uploads = _uploads()
    if not catalog and not uploads:
        st.info("No checkpoints yet: train one on the Train tab (or with `python -m cnnviz train ...`), or "
                "upload a .pt file.")
        _missing_shipped_note(catalog)
        return
    entries = {**catalog, **uploads}
    with picker:
        selected = _selection(catalog, uploads, notices)
    _missing_shipped_note(catalog)
    for n in notices:
        st.info(n)
    notices.clear()
    if not selected:
        st.info("Select at least one run above.")
        return

    records, labels = [], {}
    for r in selected:
        e = entries[r]
        records.append(e["checkpoint"].record if e["origin"] == "uploaded" else ui.record(e["path"]))
    counts = {}
    for rec in records:
        counts[rec.label] = counts.get(rec.label, 0) + 1
    for r, rec in zip(selected, records):
        labels[r] = rec.label if counts[rec.label] == 1 else f"{rec.label} [{r}]"
    colors = {r: figures.RUN_COLORS[i % len(figures.RUN_COLORS)] for i, r in enumerate(selected)}

    # -- curves ------------------------------------------------------------------------------------
    st.subheader("Accuracy and loss per epoch")
    grouped = st.toggle("Group runs that differ only by seed (mean with a min–max band)", value=True,
                        key="c_group", persist_state="session")
    if grouped:
        groups = results.seed_groups(records)
        drawn = [(g.label, colors[selected[g.members[0]]], g) for g in groups]
    else:
        groups = [results.Group((i,), labels[r], (rec,), (i,)) for i, (r, rec) in enumerate(zip(selected, records))
                  if rec.history]
        drawn = [(g.label, colors[selected[g.members[0]]], g) for g in groups]
    series = [{"label": lab, "color": col, "n": g.n,
               "curves": {m: vars(g.curve(m)) for m in results.METRICS}} for lab, col, g in drawn]
    a, b = st.columns(2)
    a.plotly_chart(figures.group_curves_figure(series, ("train_acc", "test_acc"),
                                               title="Accuracy (train dashed, test solid)"), key="c_acc")
    b.plotly_chart(figures.group_curves_figure(series, ("train_loss", "test_loss"),
                                               title="Loss (train dashed, test solid)"), key="c_loss")
    empty = [labels[r] for r, rec in zip(selected, records) if not rec.history]
    if empty:
        st.caption(f"No finished epoch yet, so no curve: {', '.join(empty)}.")

    # -- tables ------------------------------------------------------------------------------------
    st.subheader("Final numbers")
    table = results.run_table(records, origins=[entries[r]["origin"] for r in selected])
    table["label"] = [labels[r] for r in selected]
    table["file"] = [entries[r]["file"] for r in selected]  # an upload's record has no path: its file name
    # The export's names: "source" says where the run came from (shipped, yours, uploaded), not the dataset's.
    table = table.drop(columns="source").rename(columns={"label": "run", "test_acc": "final_test_acc",
                                                         "origin": "source"})[
        ["run", "final_test_acc", "best_test_acc", "best_epoch", "params", "seconds_per_epoch", "epochs",
         "complete", "seed", "device", "source", "file"]]
    shown, pct = ui.percent_columns(table, {"final_test_acc": "final test acc", "best_test_acc": "best test acc"})
    st.dataframe(shown, hide_index=True, key="c_table",
                 column_config={**pct, "params": st.column_config.NumberColumn("parameters", format="localized"),
                                "seconds_per_epoch": st.column_config.NumberColumn("s / epoch", format="%.1f")})
    st.download_button("Download this table (CSV)", table.to_csv(index=False).encode(), file_name="cnnviz-runs.csv",
                       mime="text/csv", key="c_csv")
    st.caption("Seconds per epoch count training only (evaluation excluded) on the device each run used, "
               "with whatever else that machine was running: compare speeds between runs trained together.")
    if grouped and any(g.n > 1 for g in groups):
        st.markdown("**Groups of seeds** (final test accuracy; std is the sample standard deviation)")
        shown, pct = ui.percent_columns(results.group_table(groups), {
            f"{s}_final_test_acc": f"{s} test acc" for s in ("mean", "std", "min", "max")})
        st.dataframe(shown, hide_index=True, key="c_groups", column_config=pct)
    if grouped:
        for ds in dict.fromkeys(g.first.dataset_name for g in groups):
            on_ds = [g for g in groups if g.first.dataset_name == ds]
            if len(on_ds) > 1:
                st.markdown(f"**{ds}:** {results.compare_sentence(on_ds)}")

    # -- cost against accuracy ----------------------------------------------------------------------
    st.subheader("Cost against accuracy")
    st.caption("Each point is a run; colour = downsampling method. Parameters come from the checkpoint; "
               "multiply-adds per image are counted by torch's FLOP counter on the rebuilt architecture.")
    points, mac_points = [], []
    for r, rec in zip(selected, records):
        if not rec.history:
            continue
        base = {"y": rec.final_test_acc, "label": labels[r], "downsample": rec.downsample}
        points.append({**base, "x": rec.params})
        mac_points.append({**base, "x": costs.arch_macs(rec.arch, rec.in_shape, rec.num_classes, rec.downsample)})
    a, b = st.columns(2)
    a.plotly_chart(figures.cost_scatter_figure(points, "parameters", title="Test accuracy against parameters"),
                   key="c_cost_params")
    b.plotly_chart(figures.cost_scatter_figure(mac_points, "multiply-adds per image",
                                               title="Test accuracy against multiply-adds"), key="c_cost_macs")

    # -- one run -------------------------------------------------------------------------------------
    st.subheader("One run: what it gets wrong")
    fmt = labels.get
    run = _pick("Run", selected, "run", selected[0], notices, fmt)
    for n in notices:
        st.info(n)
    notices.clear()
    entry = entries[run]
    if entry["origin"] != "uploaded":
        path = Path(entry["path"])
        st.download_button(f"Download {path.name}", path.read_bytes, file_name=path.name,
                           mime="application/octet-stream", key="c_download")
    pred, data = _predictions(entry)
    if pred is not None:
        st.caption(f"Test accuracy recomputed on all {len(pred.true):,} test images: {_pct(pred.accuracy)}.")
        a, b = st.columns(2)
        a.plotly_chart(figures.bars_figure(pred.classes, pred.per_class_accuracy(), title="Accuracy per class",
                                           yaxis="accuracy"), key="c_per_class")
        b.plotly_chart(figures.confusion_figure(pred.confusion(), pred.classes), key="c_confusion")
        wrong = pred.misclassified(GALLERY)
        st.markdown(f"**Misclassified test images** (the first {len(wrong)} of "
                    f"{int((pred.pred != pred.true).sum()):,})")
        _gallery(data, wrong, [f"#{i}: {pred.classes[pred.true[i]]} → {pred.classes[pred.pred[i]]}" for i in wrong])

    # -- two runs --------------------------------------------------------------------------------------
    st.subheader("Two runs: where they differ")
    a_opts = [r for r in selected if sum(entries[o]["dataset"] == entries[r]["dataset"] for o in selected) > 1]
    if not a_opts:
        st.info("Select two runs on the same dataset to see where they differ.")
    else:
        c1, c2 = st.columns(2)
        with c1:
            ra = _pick("Run A", a_opts, "a", a_opts[0], notices, fmt)
        b_opts = [r for r in a_opts if r != ra and entries[r]["dataset"] == entries[ra]["dataset"]]
        key_a = records[selected.index(ra)].experiment
        other = [r for r in b_opts if records[selected.index(r)].experiment != key_a]  # not just a seed
        with c2:
            rb = _pick("Run B", b_opts, "b", (other or b_opts)[0], notices, fmt)
        for n in notices:
            st.info(n)
        (pa, data), (pb, _) = _predictions(entries[ra]), _predictions(entries[rb])
        if pa is not None and pb is not None:
            _diff_view(pa, pb, data, labels[ra], labels[rb])


def _diff_view(pa, pb, data, la: str, lb: str) -> None:
    try:
        diff = analysis.run_diff(pa, pb)
    except ValueError as e:
        ui.show_error(e)
        return
    st.caption(f"A = {la} ({_pct(pa.accuracy)}), B = {lb} ({_pct(pb.accuracy)}). Blue cells: B puts more "
               "test images there than A; red: fewer. On the diagonal, blue means B gets more right.")
    a, b = st.columns(2)
    a.plotly_chart(figures.confusion_figure(diff.confusion_delta, pa.classes, diverging=True,
                                            title="Confusion matrix of B minus A"), key="c_diff_confusion")
    b.plotly_chart(figures.bars_figure(pa.classes, diff.per_class_delta,
                                       colors=["#2ca02c" if v >= 0 else "#d62728" for v in diff.per_class_delta],
                                       title="Per-class accuracy change (B − A)", yaxis="accuracy change"),
                   key="c_diff_bars")
    a, b = st.columns(2)
    for col, idx, title in ((a, diff.a_right_b_wrong, "Right in A, wrong in B"),
                            (b, diff.b_right_a_wrong, "Right in B, wrong in A")):
        with col:
            st.markdown(f"**{title}**: {len(idx):,} test images (the first {min(len(idx), GALLERY)} shown)")
            shown = idx[:GALLERY]
            _gallery(data, shown, [f"{pa.classes[pa.true[i]]}: A {pa.classes[pa.pred[i]]}, B {pb.classes[pb.pred[i]]}"
                                   for i in shown])


with train_tab:
    if train_tab.open:
        train_section()
with compare_tab:
    if compare_tab.open:
        compare_section()
ui.share_link()
