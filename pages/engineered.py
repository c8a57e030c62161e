"""Engineered vs learned features: OpenCV's Sobel / Scharr / Laplacian next to what a trained
network's first conv layer learned, how its filters move towards (or away from) those kernels epoch by
epoch, and the lecture's comparison "engineering features vs CNN features" on real checkpoints.

All tensor work happens in `cnnviz.filters` and `cnnviz.baselines`; this page only lays it out.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from cnnviz import baselines, figures, filters, shipped
from cnnviz.data import DATASETS, list_datasets
from cnnviz.engineered import FRONT_CHANNELS, KIND_LABELS, engineered_kernels
from cnnviz.models import get_arch, list_baselines
from pages.ui import catalog, jobs, loaders, nav, widgets
from pages.ui.widgets import Notices

THRESHOLD = 0.8  # |cos| above which a learned filter counts as "a Sobel/Scharr/Laplacian kernel"
ARCH_COLORS = {a: figures.RUN_COLORS[i] for i, a in enumerate(list_baselines())}
SOBEL_LATEX = (r"G_x = \begin{bmatrix} -1 & 0 & +1 \\ -2 & 0 & +2 \\ -1 & 0 & +1 \end{bmatrix} * I"
               r"\qquad G_y = \begin{bmatrix} -1 & -2 & -1 \\ 0 & 0 & 0 \\ +1 & +2 & +1 \end{bmatrix} * I"
               r"\qquad |G| = \sqrt{G_x^2 + G_y^2}")
EDGE_SHARE_LATEX = (r"\text{edge share}(w) = \frac{\lVert P_{D_x, D_y}(w - \bar w) \rVert^2}"
                    r"{\lVert w - \bar w \rVert^2},\qquad \text{an edge detector: share} > 0.5")
COSINE_LATEX = (r"\cos(w, k) = \frac{\sum_{ij} (w_{ij} - \bar w)\, k_{ij}}"
                r"{\lVert w - \bar w \rVert\, \lVert k \rVert}")


@st.cache_data(show_spinner=False, max_entries=64)
def _evolution(path: str, mtime: float):
    """Per epoch: the filters' matches, the mean best |cos| and how many are close (one checkpoint)."""
    return filters.evolution(loaders.checkpoint(path).meta, THRESHOLD)


# ---- page ---------------------------------------------------------------------------------------------

nav.header("Before CNNs, features were engineered: fixed Sobel, Scharr and Laplacian filters that measure how "
           "fast brightness changes. A CNN's first layer learns its own filters. Here both look at the same "
           "image; then the learned filters are compared with the engineered kernels, epoch by epoch; then "
           "the lecture's comparison is rerun on real checkpoints: raw pixels vs engineered vs learned features.")
notice_box = st.container()
notices = Notices()

dataset = widgets.select("Dataset", list_datasets(), "e_dataset", list_datasets()[0], notices, param="dataset",
                         fmt=lambda d: DATASETS[d].label, widget="segmented_control", persist_state="session",
                         required=True, help="Fashion-MNIST: 28x28 gray clothes; CIFAR-10: 32x32 colour photos.")
data = loaders.dataset(dataset)
x, image_label = widgets.image_picker(data, dataset, notices, key="e_")  # (C, H, W) uint8
x_norm = data.normalize(x[None])  # (1, C, H, W), as the networks saw their training images

runs = filters.with_first_conv(catalog.runs_by_id(dataset), DATASETS[dataset].shape)
ck_id, ck = None, None
if runs:
    ck_id = widgets.select("Trained network (its first conv layer)", runs, "e_checkpoint",
                           filters.default_run(runs, dataset), notices, param="checkpoint",
                           link_names=catalog.link_names(runs, dataset),
                           fmt=lambda r: catalog.menu_label(runs[r]), persist_state="session",
                           help="Checkpoints of this dataset whose network has a learned conv layer: the shipped "
                                "ones and yours.")
    ck = loaders.checkpoint_or_error(runs[ck_id]["path"])
else:
    st.query_params.pop("checkpoint", None)
    st.info(f"No checkpoint with a learned conv layer for {DATASETS[dataset].label} yet: the shipped ones "
            "are still being trained, or train one on the Train & compare page (or with "
            f"`python -m cnnviz train --arch lenet5 --dataset {dataset}`).")
snaps = filters.snapshots_of(ck.meta) if ck is not None else None  # (epochs + 1, O, I, k, k) or None
notices.show(notice_box)


# ---- the parts, each a tab that runs only while open ------------------------------------------------

def _share(shapes) -> str:
    """Edge detectors as a share, one unit for the trained, the random and the added filters: "31 % (10 of 32)"."""
    n = len(shapes)
    return f"{100 * shapes.edge_detectors / n:.0f} % ({shapes.edge_detectors:,} of {n:,})"


def one_image() -> None:
    st.caption("OpenCV's engineered filters (the lecture's `cv2.Sobel`, `cv2.Scharr`, `cv2.Laplacian` on the gray "
               "float image) beside the feature maps of the chosen network's first conv layer (before its ReLU). "
               "Each map is scaled to its own range: black = lowest, white = highest.")
    st.latex(SOBEL_LATEX)
    names, eng = filters.engineered_maps(x)
    c1, c2 = st.columns([1, 4])
    c1.plotly_chart(figures.image_figure(np.asarray(x), image_label, height=240), key="e_image")
    c1.caption(image_label)
    c2.plotly_chart(figures.labelled_grid_figure(eng, [KIND_LABELS[n] for n in names], cols=5, width=figures.column_width(4 / 5),
                                 title="Engineered: Sobel 3x3 and 5x5, Scharr, Laplacian"), key="e_engineered")
    if ck is not None:
        layer, learned = filters.learned_maps(ck.model, x_norm)
        st.plotly_chart(figures.labelled_grid_figure(learned, [f"filter {i}" for i in range(len(learned))], cols=8,
                                     title=f"Learned: {layer} of {ck.record.label} ({len(learned)} maps of "
                                           f"{learned.shape[1]}x{learned.shape[2]})"), key="e_learned")

    fronts = [r for r in catalog.runs_by_id(dataset).values() if r["arch"] == "engineered"]
    front = min(fronts, key=lambda r: r["origin"] != "shipped", default=None)  # a shipped one first
    eng_run = next(r for r in shipped.runs_of_group("baselines", dataset) if r.config.arch == "engineered")
    front_ck = loaders.checkpoint_or_error(front["path"]) if front is not None else None
    if front_ck is not None:
        maps = filters.front_end_maps(front_ck.model, x_norm)
        st.plotly_chart(figures.labelled_grid_figure(maps, list(FRONT_CHANNELS), cols=5, width=figures.column_width(),
                                     title=f"The engineered network's fixed front end ({front['file']}): what its "
                                           "head sees instead of pixels"), key="e_front")
        st.caption("These five channels are computed by fixed, non-trainable weights inside the `engineered` model, "
                   "with reflect padding like OpenCV's default border. On the network's input, normalised to [-1, 1], "
                   "d/dx, d/dy, magnitude and Laplacian are exactly twice OpenCV's Sobel x / y / magnitude and "
                   "Laplacian on the [0, 1] image: the same pictures once each map is scaled.")
    else:
        st.caption(f"No `engineered` checkpoint for {DATASETS[dataset].label} yet, so its fixed front end is "
                   "not shown (train it below or with "
                   f"`{shipped.command_for(eng_run)}`).")


def edge_detectors() -> None:
    evolution = _evolution(runs[ck_id]["path"], Path(runs[ck_id]["path"]).stat().st_mtime) if ck is not None else None
    if ck is None:
        st.info("Choose (or train) a network with a conv layer above to compare its filters.")
    else:
        conv_name, weights = filters.first_conv_weights(ck.model)  # (O, I, k, k)
        k = weights.shape[-1]
        shapes = filters.filter_shapes(weights)
        st.caption(f"An edge detector takes a derivative: along x (Sobel x), along y (Sobel y), or along any direction "
                   f"in between, a·d/dx + b·d/dy. So the share of a filter's energy (its mean removed, averaged over its "
                   f"{weights.shape[1]} input channel(s)) that lies in the span of the two {k}x{k} derivative kernels "
                   "says how much of an edge detector it is, whatever its orientation; the angle is the edge's "
                   "(0° horizontal, 90° vertical). Random filters of the same size are the yardstick: by chance alone "
                   "they put some energy there too. Colours: red positive, blue negative, white 0.")
        st.latex(EDGE_SHARE_LATEX)
        update = filters.training_update(snaps) if snaps is not None else None
        added = filters.filter_shapes(update) if update is not None else None
        rnd = filters.random_shapes(k)
        widgets.metrics_row(("Edge detectors, trained", _share(shapes)),
                            (f"Edge detectors among random {k}x{k} filters", _share(rnd)),
                            ("Edge detectors in what training added", _share(added) if added is not None else "—"))
        c1, c2 = st.columns(2)
        c1.plotly_chart(figures.labelled_grid_figure(filters.mean_filters(weights), filters.shape_labels(shapes), cols=8,
                                     signed=True, width=figures.column_width(1 / 2), lines=2, title=f"Trained filters of {ck.record.label}"),
                        key="e_filters")
        if added is not None:
            c2.plotly_chart(figures.labelled_grid_figure(filters.mean_filters(update), filters.shape_labels(added), cols=8,
                                         signed=True, width=figures.column_width(1 / 2), lines=2,
                                         title=f"What training added: W after epoch {len(snaps) - 1} − W at epoch 0"),
                            key="e_update")
        else:
            c2.info("This checkpoint kept no per-epoch filter snapshots, so what training added cannot be shown.")
        st.markdown(f"**{filters.edge_sentence(shapes)}**")
        if added is not None:
            st.markdown(f"**What training added:** {filters.edge_sentence(added, 'changes')} Training moves the first "
                        f"layer little (‖W − W₀‖ / ‖W₀‖ = {filters.relative_change(snaps):.2f}), so much of the "
                        "initial noise stays in the trained filter; the change itself is where the learning shows.")
        with st.expander("Closest single engineered kernel (cosine), and why it says too little"):
            matches = filters.closest_engineered(weights)
            kernels = engineered_kernels(k)
            st.caption("Each filter against each engineered kernel of its size on its own, by the cosine of the angle "
                       "between them (mean removed). A Sobel x or y kernel is one orientation: an edge detector at 45° "
                       "scores about 0.7 against both, so few filters pass a 0.8 threshold although many are edge "
                       "detectors by the measure above.")
            st.latex(COSINE_LATEX)
            c1, c2 = st.columns([1, 2])
            c1.plotly_chart(figures.labelled_grid_figure(np.stack(list(kernels.values())),
                                                         [filters.short_label(n) for n in kernels], cols=4, signed=True,
                                                         width=figures.column_width(1 / 3), title=f"Engineered kernels ({k}x{k})"), key="e_kernels")
            c2.plotly_chart(figures.labelled_grid_figure(filters.mean_filters(weights), filters.filter_labels(matches),
                                                         cols=8, signed=True, width=figures.column_width(2 / 3), lines=2,
                                                         title="Learned filters: closest kernel, cos"), key="e_cos_filters")
            st.markdown(filters.similarity_sentence(matches, THRESHOLD))
            if evolution is not None:
                _, mean_best, n_close = evolution
                st.caption(filters.chance_sentence(mean_best, n_close, len(matches), k, THRESHOLD))
            st.dataframe(pd.DataFrame(filters.match_table(matches, short=True)), hide_index=True, key="e_match_table",
                         column_config={"cosine": st.column_config.NumberColumn(format="%+.3f"),
                                        "|cosine|": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0,
                                                                                    format="%.3f")})


def watch_learning() -> None:
    if ck is None:
        st.info("Choose (or train) a network with a conv layer above.")
    elif snaps is None:
        st.info(f"{ck.record.label} has no per-epoch filter snapshots (they are kept only for small first layers); "
                "choose another checkpoint.")
    else:
        epochs = len(snaps) - 1
        epoch = widgets.number("Epoch (0 = the random initialisation)", 0, epochs, "e_epoch", epochs, notices,
                               param="epoch", widget="slider", persist_state="session",
                               help="The checkpoint kept the first layer's weights after every epoch.")
        notices.show(notice_box)
        at_epoch = filters.filter_shapes(snaps[epoch])
        st.caption(f"After epoch {epoch}: {at_epoch.edge_detectors} of {len(at_epoch)} filters are edge detectors "
                   f"(at initialisation {filters.filter_shapes(snaps[0]).edge_detectors}). The maps apply that epoch's "
                   "weights to the image (bias not stored, so left out: it would only shift each map, which the "
                   "per-map scaling hides).")
        c1, c2 = st.columns(2)
        c1.plotly_chart(figures.labelled_grid_figure(filters.mean_filters(snaps[epoch]), filters.shape_labels(at_epoch),
                                     cols=8, signed=True, width=figures.column_width(1 / 2), lines=2, title=f"Filters after epoch {epoch}"),
                        key="e_epoch_filters")
        if epoch:
            change = filters.training_update(snaps, epoch)
            c2.plotly_chart(figures.labelled_grid_figure(filters.mean_filters(change),
                                                         filters.shape_labels(filters.filter_shapes(change)), cols=8,
                                                         signed=True, width=figures.column_width(1 / 2), lines=2,
                                                         title=f"What training added by epoch {epoch}"),
                            key="e_epoch_update")
        else:
            c2.caption("Epoch 0 is the initialisation: nothing has been added yet.")
        maps_e = filters.snapshot_maps(ck.model, snaps[epoch], x_norm)
        c0, c1, c2 = st.columns(3)
        c0.plotly_chart(figures.labelled_grid_figure(maps_e, [str(i) for i in range(len(maps_e))], cols=8, width=figures.column_width(1 / 3),
                                     title="Their maps on the image"), key="e_epoch_maps")
        run = [{"label": ck.record.label, "history": ck.record.history, "color": figures.RUN_COLORS[0]}]
        c1.plotly_chart(figures.curves_figure(run, ("train_acc", "test_acc"), title=f"Accuracy (epoch {epoch} marked)",
                                              mark_epoch=epoch, width=figures.column_width(1 / 3)), key="e_epoch_curves")
        filt, add = filters.edge_share_per_epoch(snaps)
        lines = [{"label": label, "color": figures.RUN_COLORS[i + 1],
                  "history": [{"epoch": e, "median edge share": float(v)} for e, v in enumerate(values) if v == v]}
                 for i, (label, values) in enumerate((("filters", filt), ("what training added", add)))]
        c2.plotly_chart(figures.curves_figure(lines, ("median edge share",), title="Median edge share",
                                              mark_epoch=epoch, yaxis="median edge share", width=figures.column_width(1 / 3)),
                        key="e_epoch_similarity")
        st.caption(f"Median edge share of a random {snaps.shape[-1]}x{snaps.shape[-1]} filter: "
                   f"{np.median(filters.random_shapes(snaps.shape[-1]).edge):.2f}.")


def versus_cnn() -> None:
    label = DATASETS[dataset].label
    group = shipped.runs_of_group("baselines", dataset)
    st.caption(f"The lecture's comparison on {label}, from the shipped checkpoints: the same training for all "
               f"({group[0].config.epochs} epochs, {group[0].config.optimizer} at lr {group[0].config.lr:g}, batch "
               f"{group[0].config.batch_size}, seed {group[0].config.seed}). The two engineered nets (Sobel, Scharr) "
               "and the learned-conv net share their head; only the front end differs (see the layers column). The "
               "batch is smaller than the lecture's 1024 because 10 epochs at 1024 are only ~500 optimiser steps, after which the small CNNs are "
               "still improving fast and the comparison would mostly measure that.")
    read, missing = catalog.read_shipped(group)
    present = [record for _, record in read]
    results, problems = baselines.comparable(present)
    for problem in problems:
        st.error(problem)
    if present:
        curves = [{"label": get_arch(r.arch).label, "history": r.history, "color": ARCH_COLORS[r.arch]}
                  for r in present if r.history]
        widgets.curve_pair(curves, ("e_base_acc", "e_base_loss"))
        table, pct = widgets.percent_columns(pd.DataFrame(baselines.table_rows(results)),
                                             {"final test accuracy": "final test accuracy"})
        st.dataframe(table, hide_index=True, key="e_base_table", column_config={
            "trainable parameters": st.column_config.NumberColumn(format="localized"), **pct,
            "seconds per epoch": st.column_config.NumberColumn(format="%.1f")})
        st.markdown(f"**{baselines.winner_sentence(results, label)}**")
        st.caption("Seconds per epoch count training only, on the device each run used "
                   f"({', '.join(sorted({r.device or '?' for r in present}))}).")
        mlp = next((r for r in results if r.arch == "mlp"), None)
        if dataset == "cifar10" and mlp is not None:
            delta, how = baselines.mlp_vs_lecture(mlp)
            st.metric("MLP on CIFAR-10, measured here", widgets.pct(mlp.final_test_acc, 1), delta=delta, delta_color="off")
            st.caption(how)
    if missing:
        st.warning(f"No shipped checkpoint yet for {', '.join(get_arch(r.config.arch).label for r in missing)} "
                   f"on {label}: retrain it below, or run:")
        st.code("\n".join(shipped.command_for(r) for r in missing), language="bash")

    # ---- 5. retrain a member of the group ---------------------------------------------------------------
    st.subheader("Retrain one of them yourself")
    st.caption("Runs on the server in the background with the group's settings (seed 0: the same start as the "
               "shipped run), so clicking around or reloading does not stop it. Fewer epochs make a quick demo.")
    by_arch = {r.config.arch: r for r in group}
    c1, c2, c3 = st.columns([2, 1, 1])
    arch = c1.selectbox("Network", list(by_arch), key="e_retrain_arch", format_func=lambda a: get_arch(a).label,
                        persist_state="session")
    n_epochs = c2.number_input("Epochs", 1, shipped.EPOCHS, shipped.EPOCHS, key="e_retrain_epochs",
                               persist_state="session")
    c3.write("")
    if c3.button("Retrain", type="primary", key="e_retrain", help="Starts a background training job on the server."):
        try:  # over this server's limits (your runs at a time, compute): one line
            jobs.remember_job("retrain", "e_job", jobs.submit(shipped.retrain_config(by_arch[arch], int(n_epochs))).id)
        except ValueError as e:
            widgets.show_error(e)

    def _title(snap) -> str:
        cfg = snap.config
        return f"**{get_arch(cfg.arch).label} on {DATASETS[cfg.dataset].label}** · {snap.state} · job `{snap.id}`"

    def _yours_vs_shipped(snap) -> None:
        cfg = snap.config
        lines = [{"label": "your run", "history": list(snap.history), "color": ARCH_COLORS.get(cfg.arch, "#1f77b4")}]
        lines += [{"label": f"shipped {get_arch(cfg.arch).label}", "history": r.history, "color": "#7f7f7f"}
                  for r in present if r.arch == cfg.arch and r.dataset_name == cfg.dataset][:1]
        widgets.curve_pair(lines, ("e_job_acc", "e_job_loss"),
                           titles=("Test accuracy: yours vs shipped", "Test loss: yours vs shipped"))

    def _where_it_is(snap) -> None:
        if snap.state == "completed":
            st.caption(f"Checkpoint `{jobs.checkpoint_name(snap.checkpoint)}` (in your runs): choose it above as a "
                       "network to inspect.")

    job = jobs.attached_job("retrain", "e_job", "the comparison above lists the shipped runs.")
    if job is not None:
        jobs.follow(job, key="e_", title=_title, curves=_yours_vs_shipped, finished=_where_it_is)


TABS = {"Are the learned filters edge detectors?": edge_detectors, "One image through both": one_image,
        "Watch the filters learn": watch_learning, "Engineering vs CNN features": versus_cnn}
widgets.lazy_tabs(TABS)
widgets.share_link()
