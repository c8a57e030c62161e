"""Downsampling: pooling vs interpolation vs stride, on real feature maps, on the lecture's 4x4 example,
in training, and under shifts of the input.

Each part is a tab that runs only when it is open (`st.tabs(..., bind="query-params")`): the page opens on
the feature maps of one image, and the shift probe is read from the stored results, not recomputed."""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import streamlit as st

from cnnviz import derived, features, figures, method_runs, results, shift, shipped
from cnnviz.data import DATASETS
from cnnviz.downsample import downsample_label, list_downsamples
from cnnviz.conv_arithmetic import OUTPUT_SIZE_LATEX
from pages.ui import catalog, loaders, nav, widgets
from pages.ui.widgets import Notices

METHODS = list_downsamples()  # on every run: a method registered later is on this page too
UNTRAINED = "untrained"
FILL_LABELS = {"zero": "zeros (black)", "edge": "repeat the image's edge column"}

nav.header("Five ways to halve a feature map (plus Zhang's anti-aliased max pooling): on the feature maps of a "
           "real image, on the lecture's 4x4 example, in training, and under shifts of the input.")

# Every main choice lives in st.query_params; garbage falls back to defaults, listed in one notice at the top.
_notices = Notices()
_notice_slot = st.container()  # filled at the end, once every parameter has been checked
names = list(DATASETS)
dataset_name = widgets.select("Dataset", names, "dataset", names[0], _notices,
                              help="The test split of this dataset, and the nets trained on it.")


# =====================================================================================================
def worked_example() -> None:
    st.caption("Edit the 4x4 data v1..v16 and the 2x2 kernel w1..w4 with bias b; m1..m4 are recomputed by "
               "the same torch operations the networks use.")
    c_grid, c_kernel = st.columns([3, 2])
    with c_grid:
        pattern = widgets.select("Start from", features.WORKED_PATTERNS, "we_pattern", features.WORKED_PATTERNS[0],
                                 _notices, param="pattern",
                                 help="Resets the grid below to this pattern; then edit any cell.")
        start = features.worked_pattern(pattern)
        grid_df = st.data_editor(pd.DataFrame(start, columns=[f"c{j + 1}" for j in range(4)],
                                              index=[f"r{i + 1}" for i in range(4)]),
                                 key=f"we_grid_{pattern}", width="content")
        st.caption("Cell (r, c) holds v with index 4(r-1) + c: the first row is v1..v4, the last v13..v16.")
    with c_kernel:
        kernel_df = st.data_editor(pd.DataFrame([[0.25, 0.25], [0.25, 0.25]], columns=["c1", "c2"],
                                                index=["r1", "r2"]), key="we_kernel", width="content")
        st.caption("The kernel w1 w2 / w3 w4 of the strided convolution (stride 2, no padding).")
        bias = st.number_input("bias b", value=0.0, step=0.5, key="we_bias")

    grid = grid_df.to_numpy(dtype=float)
    kernel = kernel_df.to_numpy(dtype=float)
    if not (np.isfinite(grid).all() and np.isfinite(kernel).all()):
        st.error("Fill every cell of the grid and the kernel with a number.")
        return
    we = features.worked_example(grid, kernel, bias)
    st.dataframe(pd.DataFrame([we[m].reshape(-1) for m in we], columns=["m1", "m2", "m3", "m4"],
                              index=[downsample_label(m) for m in we]),
                 key="we_results")
    notes = features.WORKED_NOTES  # the lecture's five, each with the torch call the networks use
    for tab, m in zip(st.tabs([downsample_label(m) for m in notes]), notes):
        with tab:
            st.markdown(notes[m])
            st.latex(features.worked_example_latex(m, grid, kernel, bias, we[m]))
    remark = features.worked_example_remark(we)
    if remark:
        st.info(remark)


# =====================================================================================================
def _source_label(run_keys: dict, key: str) -> str:
    return ("untrained downsample_compare (torch.manual_seed(0))" if key == UNTRAINED
            else catalog.menu_label(run_keys[key]))


@st.cache_resource(show_spinner=False)
def _untrained(name: str):
    return shift.untrained_model(DATASETS[name].shape, len(DATASETS[name].classes))


def _network(run_keys: dict, where) -> tuple:
    """(model, the choice of network): a shipped or user checkpoint of this dataset, else a fresh net."""
    sources = [UNTRAINED] + list(run_keys)
    default_source = method_runs.default_run(run_keys)  # None: no shipped downsample_compare run for this dataset
    source = widgets.select("Network", sources, "source", default_source or UNTRAINED, _notices,
                            fmt=lambda k: _source_label(run_keys, k), where=where,
                            link_names=catalog.link_names(run_keys, dataset_name),
                            help="Whose conv layer produces the feature maps: a shipped or your own "
                                 "checkpoint of this dataset, or a freshly initialised net.")
    ck = loaders.checkpoint_or_error(run_keys[source]["path"]) if source != UNTRAINED else None
    if ck is not None and not shift.conv2d_layers(ck.model):
        st.warning(f"{run_keys[source]['label']} has no learned conv layer; showing the untrained net.")
        ck = None
    if default_source is None:
        st.info(f"No shipped downsample_compare checkpoint for {dataset_name} yet: train one on the Train & "
                f"compare page or with `python -m cnnviz train --arch downsample_compare --dataset "
                f"{dataset_name}`.")
    return ck.model if ck is not None else _untrained(dataset_name)


def real_image() -> None:
    ds = loaders.dataset(dataset_name)
    c_img, c_pick = st.columns([1, 3])
    with c_pick:
        x_uint8, where = widgets.image_picker(ds, dataset_name, _notices)
        run_keys = catalog.runs_by_id(dataset_name)
        c_src, c_layer = st.columns([3, 1])
        model = _network(run_keys, c_src)
    with c_img:
        st.plotly_chart(figures.image_figure(x_uint8.numpy(), height=200), key="input_image")
        st.caption(where)
    layers = shift.conv2d_layers(model)
    layer = widgets.select("Conv layer", layers, "layer", layers[0], _notices, where=c_layer,
                           help="Its activation (after ReLU) is downsampled.")

    dense, densified = shift.dense_for_comparison(model, layer)
    t0 = time.perf_counter()
    cmp = features.compare_downsampling(dense, ds.normalize(x_uint8[None]), layer)
    compare_ms = 1000 * (time.perf_counter() - t0)
    fmap = shift.to_numpy(cmp.fmap)
    n_ch = fmap.shape[0]
    if densified:
        st.caption(f"This network was trained with a stride-2 {layer}; it is run here at stride 1 so every "
                   "method downsamples the same map (its `stride` panel is the trained net's own output).")

    first_16 = list(range(min(16, n_ch)))  # what an empty or outdated choice shows
    if any(c >= n_ch for c in st.session_state.get("channels", [])) or not st.session_state.get("channels"):
        st.session_state["channels"] = first_16
    channels = c_pick.multiselect(f"Channels (of {n_ch})", list(range(n_ch)), key="channels",
                                  help="Tiled into one heatmap per method; each map is scaled to its own "
                                       "min..max.") or first_16

    panels = [("before", f"{layer} (after ReLU)", fmap, "#000000")] + [
        (m, downsample_label(m), shift.to_numpy(cmp.downsampled[m]), figures.downsample_color(m)) for m in METHODS]
    widgets.figure_rows([(f"fmap_{key}", figures.heatmap(figures.tile(maps[channels]), colorscale="gray", height=260),
                          f"<span style='color:{color}'>■</span> <b>{title}</b>",
                          f"output shape {tuple(maps.shape)} (C, H, W)") for key, title, maps, color in panels])
    st.caption(f"Computed in {compare_ms:.0f} ms for this image (all methods). Map sizes follow "
               "S_o = floor((S_D - K + 2P) / S) + 1.")
    st.latex(OUTPUT_SIZE_LATEX)
    _difference(cmp, channels)
    aliasing = st.expander("Aliasing in the spectrum", expanded="fft_channel" in st.query_params, key="aliasing",
                           on_change="rerun")  # drawn only while open
    with aliasing:
        if aliasing.open:
            _spectra(cmp, layer, fmap, n_ch)


def _difference(cmp, channels) -> None:
    st.subheader("Difference between two methods")
    if "diff_a" not in st.session_state or "diff_b" not in st.session_state:  # the link says "diff=max,avg"
        pairs = [f"{a},{b}" for a in METHODS for b in METHODS]
        widgets.start_from_url("diff", pairs, "max,avg", _notices)
        st.session_state["diff_a"], st.session_state["diff_b"] = st.session_state.pop("diff").split(",")
    c_a, c_b, c_m = st.columns([2, 2, 1])
    diff_a = c_a.selectbox("Method A", METHODS, key="diff_a", format_func=downsample_label)
    diff_b = c_b.selectbox("Method B", METHODS, key="diff_b", format_func=downsample_label)
    delta = shift.to_numpy(features.difference(cmp.downsampled[diff_a], cmp.downsampled[diff_b]))
    mad = float(np.abs(delta).mean())
    c_m.metric("mean |A − B|", f"{mad:.4f}", help="Over all channels and pixels of the common size.")
    st.plotly_chart(figures.heatmap(figures.tile(delta[channels], scale=None), colorscale="RdBu", zmid=0,
                                    showscale=True, height=360,
                                    title=f"{downsample_label(diff_a)} − {downsample_label(diff_b)}"), key="diff_map")
    st.caption(features.difference_sentence(delta, cmp.downsampled[diff_a].shape, cmp.downsampled[diff_b].shape,
                                           diff_a, diff_b))
    st.query_params["diff"] = f"{diff_a},{diff_b}"


def _spectra(cmp, layer: str, fmap, n_ch: int) -> None:
    st.caption("2-D FFT magnitude (log scale, zero frequency in the centre, mean removed) of one channel of "
               "the map above, before and after each downsampler. Halving the grid halves the "
               "highest frequency it can hold (0.25 cycles per original pixel): what lies above is either "
               "removed (blur, averaging) or folded back onto lower frequencies (aliasing).")
    channel = widgets.select("Channel", range(n_ch), "fft_channel", 0, _notices)
    hf = shift.high_frequency_fraction(cmp.fmap[channel])
    st.metric("Energy above 0.25 cycles/pixel before downsampling", f"{100 * hf:.1f} %",
              help="Share of the (mean-removed) energy of this channel's map that a 2x subsampling cannot "
                   "represent.")
    spectra = [("before", f"{layer} {tuple(fmap.shape[-2:])}", cmp.fmap[channel])] + [
        (m, downsample_label(m), cmp.downsampled[m][channel]) for m in METHODS]
    widgets.figure_rows([(f"fft_{key}", figures.heatmap(shift.spectrum(m), title=title, colorscale="Viridis",
                                                        height=240), None, None) for key, title, m in spectra])


# =====================================================================================================
def trained() -> None:
    st.caption("The lecture's net (conv 5x5 (32) + ReLU, one 2x2 downsampling, FC 128, FC 10) trained once "
               "per method with the same seed, optimiser, learning rate and epochs.")
    read, _ = catalog.read_shipped(shipped.runs_of_group("seeds", dataset_name))
    records = [rec for _, rec in read]
    missing = [r for r in shipped.runs_of_group("downsampling", dataset_name)
               if not (catalog.SHIPPED / r.filename).exists()]
    if missing:
        st.warning(f"No shipped checkpoint yet for {', '.join(downsample_label(r.config.downsample) for r in missing)} "
                   f"on {dataset_name}: train it on the Train & compare page or with "
                   f"`{shipped.command_for(missing[0])}` (and likewise for the others).")
    seed0 = method_runs.seed0_by_method(records)
    order = [m for m in METHODS if m in seed0]
    if not order:
        st.info(f"No trained downsample_compare runs for {dataset_name} yet.")
        return
    curves = [{"label": downsample_label(m), "history": seed0[m].history, "color": figures.downsample_color(m)}
              for m in order]
    widgets.curve_pair(curves, ("runs_acc", "runs_loss"))
    rows = pd.DataFrame(method_runs.method_rows(records, order, {m: downsample_label(m) for m in order}))
    rows["± std (seeds)"] = [widgets.pct(v) for v in rows["± std (seeds)"]]  # a dash for one seed, not "None"
    shown, pcts = widgets.percent_columns(rows, {"final test acc": "final test acc", "best test acc": "best test acc"})
    st.dataframe(shown, hide_index=True, key="runs_table", column_config={
        **pcts, "params": st.column_config.NumberColumn("parameters", format="localized"),
        "seconds/epoch": st.column_config.NumberColumn(format="%.1f")})
    st.caption("Final and best test accuracy are means over the seeds present; seconds per epoch is "
               "training time only, on the device each run was trained on.")
    twins = method_runs.twins_sentence(records)
    if twins:
        st.caption(twins)
    bands, multi = method_runs.seed_bands(records, order)
    if multi:
        st.plotly_chart(figures.band_figure(bands, "test_acc", title="Test accuracy over seeds (mean, min–max band)"),
                        key="runs_band")
        st.caption(results.compare_sentence(multi))


# =====================================================================================================
@st.cache_data(show_spinner=False, max_entries=32)
def _probe(name: str, files: tuple, stamps: tuple, methods: tuple, n: int, k: int, fill: str):
    """(probe table, seconds, whether it was stored): `stamps` (mtimes) key the cache to the files' versions."""
    data = loaders.dataset(name)
    t = time.perf_counter()
    value, stored = derived.get("shift_probe", list(files), data,
                                {"methods": list(methods), "n": n, "k": k, "fill": fill})
    return pd.DataFrame(value["rows"]), time.perf_counter() - t, stored


def shift_invariance() -> None:
    st.markdown(
        "Each trained net sees N test images shifted right by 0..k pixels. **Agreement**: the share of images "
        "whose predicted class stays the same as for the unshifted image. **Similarity**: the cosine between "
        "the downsampled feature map (layer `pool1`; for `stride` the strided conv's ReLU) of the shifted "
        "image and the unshifted image's map moved by shift/2 pixels. A 2x2 downsampler keeps every other "
        "pixel, so even shifts are reproduced exactly (similarity 1 by construction); for odd shifts there "
        "is no exact answer on the coarse grid and the reference is the half-pixel shift by linear "
        "interpolation. Maps are compared on interior columns that the filled border, the conv and "
        "blurmax's reflected edge cannot reach.")
    c_k, c_n, c_f = st.columns(3)
    k = widgets.number("Largest shift k (pixels)", 1, 4, "k", shift.PROBE_MAX_SHIFT, _notices, where=c_k)
    n = widgets.number("Test images N", 10, 2000, "n", shift.PROBE_IMAGES, _notices, where=c_n, step=50,
                       help="A fixed random sample of the test split (the same images for every net).")
    fill = widgets.select("Fill the vacated columns with", shift.FILLS, "fill",
                          shift.fill_name(shift.default_fill(dataset_name)), _notices, fmt=FILL_LABELS.get,
                          where=c_f, help="Fashion-MNIST's background is exactly 0; photos are better continued "
                                          "with their own edge column.")
    entry = derived.shift_probe_entry(dataset_name, catalog.SHIPPED)  # the seed-0 nets there are
    if entry is None:
        st.info(f"The probe needs trained downsample_compare checkpoints for {dataset_name}; none is there yet.")
        return
    _, files, defaults = entry
    with st.spinner(f"Shifting {n} images through {len(files)} nets..."):
        probe, seconds, stored = _probe(dataset_name, tuple(map(str, files)), tuple(f.stat().st_mtime for f in files),
                                        tuple(defaults["methods"]), int(n), int(k), fill)
    how = (f"read in {1000 * seconds:.0f} ms from the stored results (`checkpoints/{derived.FILE_NAME}`, made from "
           "these very checkpoints and this test set by `scripts/train_all.py`)" if stored
           else f"computed in {seconds:.1f} s (cached)")
    st.caption(f"{len(files)} nets (seed 0) × {k + 1} shifts × {n} images, {how}. Compared columns of the "
               f"downsampled map: {probe['columns'].iloc[0]}.")
    curves = [{"label": downsample_label(m), "color": figures.downsample_color(m),
               "history": shift.probe_history(probe, m)} for m in METHODS if m in set(probe.method)]
    widgets.curve_pair(curves, ("shift_agreement", "shift_similarity"), metrics=(("agreement",), ("similarity",)),
                       titles=("Predictions unchanged", "Cosine similarity of the downsampled map"),
                       yaxes=("fraction of images", "mean cosine"), xaxis="shift (pixels)", x_step=1)
    same = shift.identical_sentence(probe, method_runs.TWINS)
    if same:
        st.caption(same)
    st.success(shift.shift_verdict(probe).sentence)
    st.dataframe(shift.probe_table(probe, METHODS, downsample_label), key="shift_table")


# =====================================================================================================
widgets.lazy_tabs({"On a real image": real_image, "The lecture's 4x4 example": worked_example,
                   "Trained with each method": trained, "Is it shift-invariant?": shift_invariance})

_notices.show_as_list(_notice_slot, "Ignored URL parameters that do not fit this page:")
widgets.share_link()
