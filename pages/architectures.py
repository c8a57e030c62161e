"""Architectures: summary tables, a diagram of the layer shapes, the net's shipped run beside every other one,
the output-size formula measured by a real convolution, and the 1x1 convolution that turns a classifier into
a map of class scores."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from cnnviz import conv_arithmetic, figures, score_maps, shipped
from cnnviz.checkpoints import CheckpointError
from cnnviz.data import DATASETS
from cnnviz.config import RunConfig
from cnnviz.models import SLIDE_VGG16_SIZE, get_arch, list_archs, vgg16_slide_difference
from cnnviz.conv_arithmetic import OUTPUT_SIZE_LATEX, conv_output_size, output_size_latex
from cnnviz.summary import arch_summary, resize_note, summary_table
from pages.ui import catalog, loaders, nav, widgets
from pages.ui.widgets import Notices

ARCHS = list_archs()
DATASET_NAMES = list(DATASETS)


def _summary(arch: str, dataset: str, downsample: str | None):
    spec = DATASETS[dataset]
    return arch_summary(arch, spec.shape, len(spec.classes), downsample)


_fc_vs_1x1 = st.cache_data(show_spinner=False, max_entries=16)(score_maps.fc_vs_1x1_params)
_measure = st.cache_data(show_spinner=False, max_entries=256)(conv_arithmetic.measure_conv_output)


def vgg16_note(shape) -> str:
    """How cnnviz's VGG16 differs from the slide's code, every number counted from the built model."""
    d = vgg16_slide_difference(shape)
    return (f"**cnnviz's VGG16 and the slide's.** The slide's classifier starts with `Linear(512 * 7 * 7, 128)`: "
            f"that is VGG16 for {SLIDE_VGG16_SIZE}x{SLIDE_VGG16_SIZE} inputs, whose five 2x2 poolings end at "
            f"{SLIDE_VGG16_SIZE}/32 = {d.slide_final_map}x{d.slide_final_map}. On {d.input_size}x{d.input_size} "
            f"inputs they end at {d.final_map}x{d.final_map}, so cnnviz's first classifier layer is "
            f"`Linear({d.first_fc_in}, 128)`: {d.first_fc_params:,} parameters instead of "
            f"{d.slide_first_fc_params:,}, and {d.total_params:,} in the whole net instead of "
            f"{d.slide_total_params:,}. The 3x3 convolutions (padding 1) and 2x2 max poolings are the slide's; its "
            "listing shows four of the five blocks, but the 7x7 of its classifier needs all five "
            f"({SLIDE_VGG16_SIZE}/16 would be {SLIDE_VGG16_SIZE // 16}).")


nav.header("Every network of the lecture as its summary table (computed by running the "
          "model once), a picture of its layer shapes, how its shipped run trained and where it stands, the "
          "output-size formula checked against a real convolution, and the 1x1 convolution that replaces "
          "fully-connected layers.")
notices = Notices()

# ---- choose a network --------------------------------------------------------------------------
c1, c2, c3 = st.columns([2, 1, 2])
with c1:
    arch = widgets.select("Architecture", ARCHS, "arch", "lenet5", notices,
                   help="Every architecture registered in cnnviz.models.")
with c2:
    dataset = widgets.select("Dataset", DATASET_NAMES, "dataset", "fashion-mnist", notices,
                      help="Sets the input shape: 1x28x28 (Fashion-MNIST) or 3x32x32 (CIFAR-10).")
spec = get_arch(arch)
downsample = widgets.downsample_select(spec, "downsample", "downsample_none", notices, where=c3,
                                      help="How each 2x2 downsampling step is done (options this net accepts).")
notices.show()
st.markdown(f"**{arch}**: {spec.description}")
st.caption(shipped.availability(arch))
if arch == "vgg16":
    st.markdown(vgg16_note(DATASETS[dataset].shape))

s = _summary(arch, dataset, downsample)
shape = DATASETS[dataset].shape

# ---- the parts, each a tab that runs only while open ------------------------------------------------

def summary_part() -> None:
    st.caption(f"The lecture's table for input {shape[0]}x{shape[1]}x{shape[2]}: one row per layer, recorded by "
               "forward hooks while the model runs once on zeros. For conv and pooling rows the last column "
               "fills in the output-size formula with that layer's numbers.")
    resize = resize_note(s, shape[1], dataset)
    if resize:
        st.info(resize)
    st.dataframe(summary_table(s), hide_index=True, width="stretch",
                 height=min(38 + 35 * len(s.rows), 600))
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Total params", f"{s.total_params:,}")
    m2.metric("Trainable params", f"{s.trainable_params:,}")
    m3.metric("Non-trainable params", f"{s.total_params - s.trainable_params:,}")
    m4.metric("Estimated total size (MB)", f"{s.total_mb:.2f}")
    st.caption(f"Sizes in float32 for a batch of one: input {s.input_mb:.3g} MB, forward/backward pass "
               f"{s.forward_backward_mb:.2f} MB (every layer's output, twice), params {s.params_mb:.2f} MB.")
    with st.expander("The same table as text (torchsummary's format)"):
        st.code(s.to_text(), language=None)

    st.subheader("Layer shapes")
    st.caption("One box per layer that changes the shape (activations left out): height = spatial size in "
               "pixels, width grows with log2(channels). A vector of N units is drawn as N channels of "
               "1x1, which is how a 1x1 convolution sees it. Hover a box for its numbers.")
    st.plotly_chart(figures.shapes_figure(s), width="stretch", key="shapes")


def trained_part() -> None:
    st.subheader(f"Trained on {dataset}")
    run = shipped.find_run(arch, dataset, downsample)
    record = None
    if run is not None and run.path.exists():
        try:
            record = loaders.record(run.path)
        except (CheckpointError, OSError) as e:
            st.error(f"{run.filename}: {e}")
    if record and record.history:
        t1, t2, t3 = st.columns(3)
        t1.metric("Final test accuracy", f"{100 * record.final_test_acc:.2f} %")
        t2.metric("Best test accuracy", f"{100 * record.best_test_acc:.2f} %", help=f"At epoch {record.best_epoch}.")
        t3.metric("Epochs", record.epochs)
        curve = {"label": record.label, "history": record.history, "color": figures.RUN_COLORS[0]}
        st.plotly_chart(figures.curves_figure([curve], title="Accuracy per epoch (train dashed, test solid)"),
                        key="trained_acc")
        c = record.config
        st.caption(f"The shipped checkpoint `checkpoints/{run.filename}`: {c.optimizer} at learning rate {c.lr:g}, batch "
                   f"{c.batch_size}, trained in {c.precision}, made by `{record.command or '?'}`.")
        if arch == "vgg16":
            st.caption(f"Why learning rate {c.lr:g} and not cnnviz's default {RunConfig.lr:g}: this VGG16 has no batch "
                       f"normalisation, and at {RunConfig.lr:g} its 13 ReLU convolutions stay at chance (the loss stays "
                       "at ln 10 = 2.303); the smaller rate learns. Measured in docs/benchmarks.md.")
        st.page_link(nav.lesson("train_compare").path, label="Open it on Train & compare: errors per class, other runs "
                     "beside it", icon=":material/show_chart:",
                     query_params={"part": "Compare", "runs": catalog.run_id("shipped", run.filename)})
    else:
        st.info(shipped.missing_sentence(arch, dataset, downsample))

    standing = shipped.standings(catalog.runs_table(include_user=False), dataset)
    if not standing.empty:
        st.subheader(f"Every shipped net on {dataset}, best first")
        shown, pct = widgets.percent_columns(standing[["label", "group", "params", "macs", "batch_size", "lr", "precision",
                                                       "epochs", "test_acc"]], {"test_acc": "final test accuracy"})
        st.dataframe(shown, hide_index=True, key="standings", column_config={
            **pct, "params": st.column_config.NumberColumn("parameters", format="localized"),
            "macs": st.column_config.NumberColumn("multiply-adds per image", format="localized"),
            "batch_size": st.column_config.NumberColumn("batch size"),
            "lr": st.column_config.NumberColumn("learning rate", format="%.0e")})
        st.caption("Seed 0 of each shipped run; multiply-adds are counted layer by layer on one forward pass (the "
               "test suite checks them against torch's FLOP counter). Within a "
                   "group the runs were trained alike (optimiser, learning rate, batch size, epochs); across groups "
                   "the batch size, learning rate and precision may differ (their columns), so compare across groups with that in mind.")


def calculator_part() -> None:
    st.latex(OUTPUT_SIZE_LATEX)
    st.caption("Type an input size S_D, a kernel K, a padding P and a stride S: the formula is evaluated, then "
               "checked by running a real nn.Conv2d on a tensor of that size.")
    k1, k2, k3, k4 = st.columns(4)
    size = widgets.number("Input size S_D", 1, 512, "sd", 4, notices, where=k1, help="Height (= width) of the input map.")
    kernel = widgets.number("Kernel K", 1, 15, "k", 3, notices, where=k2, help="Kernel height (= width).")
    padding = widgets.number("Padding P", 0, 10, "p", 1, notices, where=k3, help="Zeros added on every side.")
    stride = widgets.number("Stride S", 1, 8, "s", 1, notices, where=k4, help="Pixels the kernel moves per step.")
    notices.show()
    formula = conv_output_size(size, kernel, padding, stride)
    st.latex(output_size_latex(size, kernel, padding, stride))
    try:
        measured = _measure(size, kernel, padding, stride)
    except ValueError as e:
        st.error(f"Impossible numbers: {e}.")
        measured = None
    if measured is not None:
        r1, r2, r3 = st.columns(3)
        r1.metric("S_o by the formula", formula)
        r2.metric("S_o measured with nn.Conv2d", measured)
        r3.metric("Output pixels", f"{measured}x{measured} = {measured * measured}")
        for remark in conv_arithmetic.size_remarks(size, kernel, padding, stride):
            st.caption(remark)
        st.subheader("The kernel sliding over the padded input")
        if size + 2 * padding > 40:
            st.info("Choose S_D + 2P of 40 or less to see the step view.")
        else:
            cells = measured * measured
            pos = widgets.slider_in_range("Output cell m_i", 1, cells, "calc_cell", help="Which output cell to compute: "
                                          "the window moves by S pixels per step.") if cells > 1 else 1
            st.plotly_chart(figures.sliding_figure(size, kernel, padding, stride, pos - 1), width="stretch",
                            key="sliding")
            w = conv_arithmetic.window_at(pos - 1, size, kernel, padding, stride)
            st.caption(f"m{pos} (output row {w.out_row}, column {w.out_col}) = the sum of the {kernel}x{kernel} "
                       f"weights times the pixels under the blue window (padded rows {w.row}..{w.row + kernel - 1}, "
                       f"columns {w.col}..{w.col + kernel - 1}), plus the bias b. Grey cells are padding zeros.")


def one_by_one_part() -> None:
    last_map = [r for r in _summary("lenet_fc", dataset, "max").rows if len(r["output_shape"]) == 3][-1]["output_shape"]
    st.caption(f"lenet_fc ends in Flatten + Linear layers; lenet_1x1 replaces them with a conv whose kernel "
               f"covers the whole {last_map[-2]}x{last_map[-1]} map and a 1x1 conv. Both are built live here for the "
               "chosen dataset.")
    lenet_ds = "max"
    pair = _fc_vs_1x1(tuple(DATASETS[dataset].shape), lenet_ds)
    left, right = st.columns(2)
    for col, name in ((left, "lenet_fc"), (right, "lenet_1x1")):
        with col:
            ss = _summary(name, dataset, lenet_ds)
            st.markdown(f"**{name}**")
            st.dataframe(summary_table(ss)[["Layer (type)", "Output Shape", "Param #"]], hide_index=True,
                         width="stretch")
            st.metric(f"{name} params", f"{ss.total_params:,}")
    st.latex(score_maps.fc_vs_1x1_latex(pair))
    if pair["lenet_fc"] == pair["lenet_1x1"]:
        st.success(f"Identical parameter counts: {pair['lenet_fc']:,} = {pair['lenet_1x1']:,}. The same weights, "
                   "arranged as convolution kernels.")
    else:
        st.warning(f"The counts differ: {pair['lenet_fc']:,} vs {pair['lenet_1x1']:,}.")

    st.subheader("A trained lenet_1x1 on a larger canvas")
    st.markdown(
        "> *It's a too-rarely-understood fact that ConvNets don't need to have a fixed-size input. You can "
        "train them on inputs that happen to produce a single output vector (with no spatial extent), and "
        "then apply them to larger images. Instead of a single output vector, you then get a spatial map of "
        "output vectors. Each vector sees input windows at different locations on the input.*  \n"
        "> Yann LeCun, 2015")

    found = {i: r for i, r in catalog.runs_by_id(dataset).items() if r["arch"] == "lenet_1x1"}
    if not found:
        st.warning(shipped.missing_sentence("lenet_1x1", dataset, lenet_ds))
        return

    planned_1x1 = shipped.find_run("lenet_1x1", dataset, lenet_ds)
    shipped_1x1 = planned_1x1.filename if planned_1x1 else None
    options_1x1 = sorted(found, key=lambda i: i != shipped_1x1)
    run_id = widgets.select("Checkpoint", options_1x1, "ckpt_1x1", options_1x1[0], notices, param="ckpt",
                            fmt=lambda i: catalog.menu_label(found[i]),
                            help="Shipped runs first; your own runs appear here too.")
    notices.show()
    ck = loaders.checkpoint_or_error(found[run_id]["path"])
    if ck is None:
        return
    data = loaders.dataset(ck.record.dataset_name)
    classes = list(data.classes)
    train_size = ck.record.in_shape[-1]

    st.caption("Four test images are tiled 2x2 into one canvas twice the training size; the net, never trained "
               "on such a canvas, runs on it unchanged.")
    p1, p2 = st.columns([1, 3])
    seed = widgets.number("Seed", 0, 10**6, "seed", 0, notices, where=p1, help="Which test images are drawn.")
    notices.show()
    chosen = p2.multiselect("Classes, one per quadrant (empty: any class)", classes, max_selections=4,
                            key="canvas_classes", help="Top-left, top-right, bottom-left, bottom-right.")
    canvas = score_maps.canvas_of_test_images(data, seed, chosen)
    sm = score_maps.score_maps(ck.model, canvas.image, data, train_size)
    h, w = sm.pred.shape

    s1, s2 = st.columns(2)
    row = widgets.slider_in_range("Output row", 0, h - 1, "cell_row", where=s1, help="Pick an output cell of the score map.")
    col = widgets.slider_in_range("Output column", 0, w - 1, "cell_col", where=s2)
    top, lft, bot, rgt = sm.cell_window(row, col)
    f1, f2 = st.columns(2)
    with f1:
        st.markdown(f"**Canvas {canvas.image.shape[-2]}x{canvas.image.shape[-1]}** (orange: the window cell "
                    f"({row}, {col}) sees)")
        st.plotly_chart(figures.canvas_figure(canvas.image.numpy(), (top, lft, bot, rgt), canvas.labels), width="stretch",
                        key="canvas")
    with f2:
        st.markdown(f"**{h}x{w} map of predicted classes** (argmax per cell; hover for the class)")
        st.plotly_chart(figures.class_map_figure(sm, classes, (row, col)), width="stretch", key="class_map")
    best = int(sm.pred[row, col])
    st.caption(f"Cell ({row}, {col}) sees canvas rows {top}..{bot - 1} and columns {lft}..{rgt - 1}: a "
               f"{train_size}x{train_size} window, like one training image; neighbouring cells are "
               f"{sm.step} pixels apart (the two 2x2 downsamplings). It predicts **{classes[best]}** "
               f"(p = {sm.probs[best, row, col]:.2f}). The four corner cells see the four images exactly; the "
               "cells between see windows that straddle two or four images.")
    st.markdown("**Score maps**: the softmax probability of each class in every cell")
    st.plotly_chart(figures.score_maps_figure(sm, classes), width="stretch", key="score_maps")

    alone = score_maps.predict_images(ck.model, data, canvas.indices)
    st.markdown("**Each image alone vs its corner cell**")
    st.dataframe(pd.DataFrame(score_maps.alone_vs_corner(sm, alone, canvas, classes)), hide_index=True, width="stretch")
    st.caption(f"Alone and at the corner the net applies the same weights to the same {train_size}x{train_size} "
               "pixels; the scores differ a little only because the padding of the inner layers now sees the "
               "neighbouring image instead of zeros.")


TABS = {"Summary and layer shapes": summary_part, "Trained": trained_part,
        "Padding, stride and kernel size": calculator_part, "1x1 convolution instead of FC layers": one_by_one_part}
widgets.lazy_tabs(TABS)
widgets.share_link()
