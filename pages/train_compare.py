"""Train & compare: train a lecture network in the background, then compare runs by their curves,
their errors and their cost.

Training runs in a worker thread of the job registry (`pages.ui.jobs`), never in this script: every click
reruns the script, and the job must outlive that. The page keeps only the job's id (in the session and in
the URL) and polls the job's snapshot from a fragment.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from cnnviz import costs, figures, results, shipped
from cnnviz.checkpoints import CheckpointError
from cnnviz.config import OPTIMIZERS, RunConfig
from cnnviz.data import DATASETS, list_datasets
from cnnviz.device import available_devices, describe_device
from cnnviz.models import get_arch, list_archs
from cnnviz.precision import PRECISIONS
from cnnviz.conv_arithmetic import OUTPUT_SIZE_LATEX
from cnnviz.runs import continuation, continue_note
from cnnviz.summary import arch_summary
from cnnviz.train import LR_PRESETS
from pages.ui import catalog, jobs, loaders, nav, run_picker, run_views, widgets
from pages.ui.widgets import Notices, pct

CUSTOM_LR = "custom"
TRAIN_SUBSETS = ("all", 2048, 10000, 30000)
DEFAULT_ARCH = "downsample_compare"  # the lecture's small net: an epoch takes seconds, not minutes, on a CPU


def _summary(arch: str, dataset: str, downsample: str | None):
    spec = DATASETS[dataset]
    return arch_summary(arch, spec.shape, len(spec.classes), downsample)


nav.header("Train a network from the lecture in the background (it keeps running while you click around), "
           "then compare runs: accuracy and loss per epoch, seed-to-seed spread, errors per class, and "
           "accuracy against cost. Every number here is read from real checkpoints and test sets.")
train_tab, compare_tab = st.tabs(["Train", "Compare"], key="part", bind="query-params")


# ---- TRAIN -----------------------------------------------------------------------------------------

def _network_choice(notices: Notices) -> tuple[str, str, str | None]:
    """Dataset, net and downsampling, kept in the URL: a shared link opens the same form."""
    c1, c2, c3 = st.columns(3)
    archs = list_archs()
    dataset = widgets.select("Dataset", list_datasets(), "t_dataset", list_datasets()[0], notices, param="dataset",
                             where=c1, persist_state="session",
                             help="The images the network learns from; its test set scores every epoch.")
    arch = widgets.select("Architecture", archs, "t_arch", DEFAULT_ARCH if DEFAULT_ARCH in archs else archs[0],
                          notices, param="arch", where=c2, persist_state="session",
                          help="Every network of the lecture, from the model registry.")
    spec = get_arch(arch)
    downsample = widgets.downsample_select(
        spec, f"t_downsample_{arch}", "t_downsample_none", notices, where=c3, persist_state="session",
        help="How each 2x2 downsampling step halves the feature maps (only the options this net takes).")
    notices.show()
    st.caption(f"**{arch}**: {spec.description} {shipped.availability(arch)}")
    return dataset, arch, downsample


def _training_choices(notices: Notices) -> dict:
    """How to train, kept in the URL like the net (a custom learning rate stays in this tab only)."""
    c1, c2, c3, c4 = st.columns(4)
    epochs = widgets.number("Epochs", 1, 200, "t_epochs", shipped.EPOCHS, notices, param="epochs", where=c1,
                            persist_state="session", help="Passes over the training set; the shipped runs use "
                                                          f"{shipped.EPOCHS}, so yours lines up with theirs.")
    presets = [*LR_PRESETS, CUSTOM_LR]
    lr_choice = widgets.select("Learning rate", presets, "t_lr", "fast (1e-3)", notices, param="lr", where=c2,
                               persist_state="session",
                               help="The lecture uses Adam with 1e-5 (slow, many epochs); 1e-3 learns in a few.")
    lr = (c2.number_input("Custom learning rate", 1e-7, 1.0, 1e-4, format="%.1e", key="t_lr_custom",
                          persist_state="session") if lr_choice == CUSTOM_LR else LR_PRESETS[lr_choice])
    batch_size = widgets.number("Batch size", 1, 8192, "t_batch", 1024, notices, param="batch", where=c3,
                                persist_state="session", help="Images per optimiser step; the lecture's loaders use 1024.")
    optimizer = widgets.select("Optimizer", OPTIMIZERS, "t_opt", OPTIMIZERS[0], notices, param="optimizer", where=c4,
                               persist_state="session")
    c1, c2, c3, c4 = st.columns(4)
    devices = available_devices()
    device = widgets.select("Device", devices, "t_device", devices[0], notices, param="device", where=c1,
                            persist_state="session", help=f"auto = the fastest here: {describe_device()}")
    seed = widgets.number("Seed", 0, 10_000, "t_seed", 0, notices, param="seed", where=c2, persist_state="session",
                          help="Fixes the initial weights and the shuffling: same seed, same run. "
                               "Runs that differ only by seed are grouped on the Compare tab.")
    subset = widgets.select("Training images", TRAIN_SUBSETS, "t_subset", TRAIN_SUBSETS[0], notices, param="images",
                            where=c3, persist_state="session",
                            fmt=lambda s: "all" if s == "all" else f"first {s:,}",
                            help="A subset trains faster (for a quick look); the test set is always complete.")
    precision = widgets.select("Precision", PRECISIONS, "t_precision", PRECISIONS[0], notices, param="precision",
                               where=c4, persist_state="session",
                               help="auto: bf16 autocast (float32 master weights) on a GPU, and on a CPU with native "
                                    "bf16 where a short probe of this net measured it faster; else fp32. The run "
                                    "records which it used. fp32 forces full precision.")
    notices.show()
    return {"epochs": int(epochs), "lr": float(lr), "optimizer": optimizer, "batch_size": int(batch_size),
            "device": device, "seed": int(seed), "limit_train": None if subset == "all" else int(subset),
            "precision": precision}


def _model_preview(arch: str, dataset: str, downsample: str | None) -> None:
    st.subheader("The model you are about to train")
    st.caption("The lecture's summary table, measured by running the model once on an input of the "
               "dataset's shape. Output sizes follow the lecture's formula:")
    st.latex(OUTPUT_SIZE_LATEX)
    summ = _summary(arch, dataset, downsample)
    macs = summ.macs
    st.dataframe(summ.to_frame()[["layer", "name", "output_shape", "params", "formula"]], hide_index=True,
                 key="t_summary", column_config={"params": st.column_config.NumberColumn("Param #", format="localized")})
    widgets.metrics_row(("Total params", f"{summ.total_params:,}"), ("Trainable params", f"{summ.trainable_params:,}"),
                        ("Multiply-adds per image", f"{macs:,}"), ("Estimated total size (MB)", f"{summ.total_mb:.2f}"))
    st.caption("Multiply-adds are counted layer by layer on one forward pass (the tests hold them against torch's "
               "FLOP counter); the size is the "
               "torchsummary estimate (input + forward/backward activations + parameters, float32).")


def _curves(snap) -> None:
    """The job's curves, beside the shipped run of the same net (grey) where there is one: a reference line."""
    run = [{"label": snap.name, "history": list(snap.history), "color": figures.RUN_COLORS[0]}]
    cfg = snap.config
    ref = shipped.find_run(cfg.arch, cfg.dataset, cfg.downsample)
    if ref is not None and ref.path.exists():
        try:
            rec = loaders.record(ref.path)
            run.append({"label": f"shipped {ref.filename}", "history": rec.history, "color": "#7f7f7f"})
        except (CheckpointError, OSError):
            pass  # the reference is a courtesy: the job's own curves still draw
    widgets.curve_pair(run, ("t_acc_curve", "t_loss_curve"), titles=("Accuracy per epoch", "Loss per epoch"),
                       metrics=(("train_acc", "test_acc"), ("train_loss", "test_loss")))


def _compare_it(run_id: str) -> None:
    """Callback of "Compare it": select the run and open the Compare tab."""
    run_picker.add_to_selection(run_id)
    st.session_state["part"] = "Compare"


def _checkpoint_actions(snap) -> None:
    if not (snap.checkpoint and Path(snap.checkpoint).exists()):
        return
    path, h = Path(snap.checkpoint), list(snap.history)
    widgets.metrics_row(("Final test accuracy", pct(h[-1]["test_acc"]) if h else "—"),
                        ("Epochs trained", f"{len(h)} of {snap.config.epochs}"),
                        ("Seconds per epoch", f"{np.mean([r['seconds'] for r in h]):.1f}" if h else "—"))
    st.caption(f"Checkpoint: `{jobs.checkpoint_name(path)}` (in your runs, on the Compare tab)")
    d1, d2 = st.columns(2)
    # A callable: the file is read when clicked, not held in memory on every rerun (VGG16: 60 MB).
    d1.download_button("Download the checkpoint (.pt)", path.read_bytes, file_name=path.name,
                       mime="application/octet-stream", key="t_download")
    d2.button("Compare it with other runs", key="t_compare", on_click=_compare_it,
              args=(catalog.run_id("yours", path.name),))


def _continue_choice() -> None:
    """Continue any finished run (shipped or yours) for more epochs, as a new file of yours."""
    with st.expander("Continue a run for more epochs (shipped or yours)"):
        runs = catalog.runs_by_id()
        if not runs:
            st.caption("No runs yet.")
            return
        run_id = st.selectbox("Run", list(runs), key="t_continue_run", format_func=lambda i: catalog.menu_label(runs[i]))
        record = loaders.record(runs[run_id]["path"])
        total = st.number_input("Epochs in all", record.epochs + 1, record.epochs + 200, record.epochs + 5,
                                key=f"t_continue_epochs_{run_id}", help=f"It has {record.epochs}; training goes on from there.")
        st.caption(continue_note(record))
        if st.button("Continue in the background", key="t_continue"):
            try:  # a bad total, or over this server's limits: one line
                cfg = continuation(record, int(total))
                job = jobs.submit(cfg, name=f"{cfg.name}-e{int(total)}", resume_from=runs[run_id]["path"])
                jobs.remember_job("job", "train_job", job.id)
            except ValueError as e:
                widgets.show_error(e)


def _expected_time(arch: str, dataset: str, downsample: str | None, choices: dict) -> None:
    """What the click will cost, before it: scaled from the most similar finished run of this net."""
    try:
        cfg = RunConfig(arch=arch, dataset=dataset, downsample=downsample, **choices).resolved()
    except ValueError:
        return  # the button says why
    rows = [r for r in catalog.runs_by_id(dataset).values() if r["arch"] == arch]
    estimate = results.expected_seconds(cfg, [loaders.record(r["path"]) for r in rows])
    if estimate is None:
        st.caption("No finished run of this net on this dataset yet to tell how long it takes.")
        return
    b = estimate.basis
    st.info(f"Expected: **{results.duration_text(estimate.seconds)}** for {cfg.epochs} epoch"
            f"{'s' if cfg.epochs != 1 else ''}, scaled from `{b.file}` ({b.seconds_per_epoch:.1f} s per epoch of "
            f"training on {b.device or 'its device'}, batch {b.config.batch_size}, {b.config.precision}). This "
            "server's speed and load may differ.", icon=":material/schedule:")


def train_section() -> None:
    st.caption("Choose a network and its training; the table below shows the model before anything is "
               "trained. Training runs on the server in the background: clicking, switching tabs or pages, "
               "or reloading does not stop it.")
    dataset, arch, downsample = _network_choice(Notices())
    choices = _training_choices(Notices())
    _model_preview(arch, dataset, downsample)
    _expected_time(arch, dataset, downsample, choices)
    if st.button("Train in the background", type="primary", key="t_train"):
        try:  # a bad setting, or one over this server's limits (memory, compute, your runs at a time): one line
            cfg = RunConfig(arch=arch, dataset=dataset, downsample=downsample, **choices).resolved()
            jobs.remember_job("job", "train_job", jobs.submit(cfg).id)
        except ValueError as e:
            widgets.show_error(e)
    _continue_choice()
    st.subheader("Training")
    job = jobs.attached_job("job", "train_job", "find them on the Compare tab.", own_latest=True)
    if job is None:
        st.caption("No training started in this session yet.")
    else:
        jobs.follow(job, key="t_", title=lambda s: f"**{s.name}** · {s.state}", curves=_curves,
                    finished=_checkpoint_actions)
    jobs.server_load(jobs.owner(), key="t_", show=lambda job_id: jobs.remember_job("job", "train_job", job_id))
    jobs.teacher_login()


# ---- COMPARE ---------------------------------------------------------------------------------------

def _curves_section(selected, records, labels, colors, notices: Notices) -> tuple[bool, list]:
    st.subheader("Accuracy and loss per epoch")
    grouped = widgets.toggle("Group runs that differ only by seed (mean with a min–max band)", "c_group", True,
                             notices, param="seeds", persist_state="session")
    notices.show()
    groups = results.seed_groups(records) if grouped else results.single_groups(records, [labels[r] for r in selected])
    series = [{"label": g.label, "color": colors[selected[g.members[0]]], "n": g.n,
               "curves": {m: vars(g.curve(m)) for m in results.METRICS}} for g in groups]
    a, b = st.columns(2)
    a.plotly_chart(figures.group_curves_figure(series, ("train_acc", "test_acc"),
                                               title="Accuracy (train dashed, test solid)"), key="c_acc")
    b.plotly_chart(figures.group_curves_figure(series, ("train_loss", "test_loss"),
                                               title="Loss (train dashed, test solid)"), key="c_loss")
    empty = [labels[r] for r, rec in zip(selected, records) if not rec.history]
    if empty:
        st.caption(f"No finished epoch yet, so no curve: {', '.join(empty)}.")
    return grouped, groups


def _tables_section(selected, records, labels, entries, grouped, groups) -> None:
    st.subheader("Final numbers")
    table = results.export_table(records, [entries[r]["origin"] for r in selected], [labels[r] for r in selected],
                                 [entries[r]["file"] for r in selected])
    shown, pcts = widgets.percent_columns(table, {"final_test_acc": "final test acc", "best_test_acc": "best test acc"})
    st.dataframe(shown, hide_index=True, key="c_table",
                 column_config={**pcts, "params": st.column_config.NumberColumn("parameters", format="localized"),
                                "seconds_per_epoch": st.column_config.NumberColumn("s / epoch", format="%.1f")})
    st.download_button("Download this table (CSV)", table.to_csv(index=False).encode(), file_name="cnnviz-runs.csv",
                       mime="text/csv", key="c_csv")
    st.caption("Seconds per epoch count training only (evaluation excluded) on the device each run used, "
               "with whatever else that machine was running: compare speeds between runs trained together.")
    if not grouped:
        return
    if any(g.n > 1 for g in groups):
        st.markdown("**Groups of seeds** (final test accuracy; std is the sample standard deviation)")
        shown, pcts = widgets.percent_columns(results.group_table(groups), {
            f"{s}_final_test_acc": f"{s} test acc" for s in ("mean", "std", "min", "max")})
        st.dataframe(shown, hide_index=True, key="c_groups", column_config=pcts)
    for ds, sentence in results.sentences_by_dataset(groups):
        st.markdown(f"**{ds}:** {sentence}")


def _cost_section(selected, records, labels, colors, groups) -> None:
    st.subheader("Cost against accuracy")
    st.caption("Each point is a run, in its colour on the curves above. Parameters come from the checkpoint; "
               "multiply-adds per image are counted by torch's FLOP counter on the rebuilt architecture.")
    group_color = {selected[i]: colors[selected[g.members[0]]] for g in groups for i in g.members}  # as on the curves
    by_params, by_macs = costs.cost_points(records, [labels[r] for r in selected],
                                           [group_color.get(r, colors[r]) for r in selected])
    a, b = st.columns(2)
    a.plotly_chart(figures.cost_scatter_figure(by_params, "parameters", title="Test accuracy against parameters"),
                   key="c_cost_params")
    b.plotly_chart(figures.cost_scatter_figure(by_macs, "multiply-adds per image",
                                               title="Test accuracy against multiply-adds"), key="c_cost_macs")


def compare_section() -> None:
    st.caption("Pick runs to overlay. Runs that differ only by their seed are grouped: their mean curve is "
               "drawn with a band from the lowest to the highest seed, so you can see whether a gap between "
               "two methods is bigger than luck.")
    runs, notices = catalog.runs_by_id(), Notices()
    picker = st.container()  # the group picker and the run list, above the uploader, drawn once uploads are read
    uploaded = run_picker.uploads()
    if not runs and not uploaded:
        st.info("No checkpoints yet: train one on the Train tab (or with `python -m cnnviz train ...`), or "
                "upload a .pt file.")
    else:
        with picker:
            selected = run_picker.selection(runs, uploaded, notices)
    run_picker.missing_shipped_note(runs)
    notices.show()
    if not runs and not uploaded:
        return
    if not selected:
        st.info("Select at least one run above.")
        return
    entries = {**runs, **uploaded}
    records = [run_picker.record_of(entries[r]) for r in selected]
    labels = catalog.unique_labels(selected, results.run_labels(records))
    colors = {r: figures.RUN_COLORS[i % len(figures.RUN_COLORS)] for i, r in enumerate(selected)}
    grouped, groups = _curves_section(selected, records, labels, colors, notices)
    _tables_section(selected, records, labels, entries, grouped, groups)
    _cost_section(selected, records, labels, colors, groups)
    st.subheader("One run: what it gets wrong")
    run_views.errors_of_one_run(selected, labels, entries, notices)
    st.subheader("Two runs: where they differ")
    run_views.differences_of_two_runs(selected, records, labels, entries, notices)


with train_tab:
    if train_tab.open:
        train_section()
with compare_tab:
    if compare_tab.open:
        compare_section()
widgets.share_link()
