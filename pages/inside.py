"""Look inside: one output pixel of a trained net worked out by hand beside the value the net computed, a unit's
receptive field (closed form and gradient), where each downsampler's net looks (Grad-CAM), the net as plain
PyTorch code, and the lecture's worked examples."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from cnnviz import conv_arithmetic, export, figures, inside, method_runs, saliency, shipped, worked
from cnnviz.conv_arithmetic import output_size_latex
from cnnviz.data import DATASETS
from cnnviz.downsample import downsample_label, get_downsample
from cnnviz.images import MAX_UPLOAD_MB as MAX_IMAGE_MB, ImageError, load_image
from cnnviz.figures import inside as inside_figures
from cnnviz.models import get_arch, list_archs
from pages.ui import catalog, loaders, nav, widgets
from pages.ui.widgets import Notices

TABS = ["One pixel", "Receptive field", "Where it looks", "Export as code", "Worked examples"]

nav.header("Pick one output pixel of a trained net and see it computed by hand, window by kernel, beside the value "
           "the network computed itself; see which input pixels it can see, where the nets of each downsampler "
           "look, and take the net home as plain PyTorch code.")
notices = Notices()
notice_slot = st.container()  # filled at the end, once every URL parameter has been read

# ---- the net and the image ------------------------------------------------------------------------
c_pick, c_img = st.columns([4, 1])
with c_pick:
    c_ds, c_net = st.columns([1, 3])
    dataset = widgets.select("Dataset", list(DATASETS), "dataset", list(DATASETS)[0], notices, where=c_ds)
    runs = catalog.runs_by_id(dataset)
    if not runs:
        st.warning(f"No trained checkpoint for {dataset} yet: train one on the Train & compare page.")
        st.stop()
    first = shipped.find_run("downsample_compare", dataset, "max")  # the lecture's net with max pooling
    run = widgets.select("Trained network", list(runs), "net", first.filename if first and first.filename in runs
                         else method_runs.default_run(runs) or next(iter(runs)),
                         notices, fmt=lambda k: catalog.menu_label(runs[k]), where=c_net,
                         link_names=catalog.link_names(runs, dataset),
                         help="A shipped checkpoint of this dataset, or one of yours.")
    data = loaders.dataset(dataset)
    image, image_label = widgets.image_picker(data, dataset, notices)
with c_img:
    st.plotly_chart(figures.image_figure(image.numpy(), height=180), key="image")
    st.caption(image_label)
ck = loaders.checkpoint_or_error(runs[run]["path"])
if ck is None:
    st.stop()
model, x = ck.model, data.normalize(image[None])  # x: (1, C, H, W), normalised as in training
classes = DATASETS[dataset].classes
true_class = widgets.picked_class(dataset, image_label)


def unit_picker() -> tuple[str, inside.LayerIO, int, int, int, str]:
    """Layer, output channel, row and column (all in the URL); a click on the map drawn later sets row and column."""
    layers = inside.inside_layers(model)
    if not layers:
        st.info(f"{ck.record.label} has no conv or downsampling layer to look inside.")
        st.stop()
    c1, c2, c3, c4 = st.columns([2, 1, 1, 1])
    layer = widgets.select("Layer", layers, "layer", layers[0], notices, where=c1,
                           help="Every conv and downsampling layer of the net.")
    io = inside.layer_io(model, x, layer)
    c, h, w = io.output.shape
    chart = f"pick_{layer}"
    widgets.take_click(chart, "row", "col")
    ch = widgets.number(f"Output channel (0..{c - 1})", 0, c - 1, "ch", 0, notices, where=c2)
    top = inside.strongest(io, ch)  # the default pixel: the channel's largest value, not a ReLU's zero
    row = widgets.number(f"Row (0..{h - 1})", 0, h - 1, "row", top[0], notices, where=c3)
    col = widgets.number(f"Column (0..{w - 1})", 0, w - 1, "col", top[1], notices, where=c4)
    return layer, io, ch, row, col, chart


def pick_map(io, layer, ch, row, col, chart, where=st) -> None:
    where.plotly_chart(inside_figures.pick_figure(io.output[ch], (row, col), f"{layer}, channel {ch}"), key=chart,
                       on_select="rerun", selection_mode="points",
                       config={"displayModeBar": False})  # its buttons would cover the title
    where.caption("Click a pixel to pick it" + (" (values after the ReLU)." if io.relu else "."))


def one_pixel() -> None:
    layer, io, ch, row, col, chart = unit_picker()
    pixel = inside.explain(model, io, ch, row, col)
    c_out, c_in = st.columns(2)
    pick_map(io, layer, ch, row, col, chart, c_out)
    n_in = io.input.shape[0]
    shown = pixel.in_channels[0]
    if pixel.rule == "conv" and n_in > 1:
        shown = widgets.number(f"Input channel shown (0..{n_in - 1})", 0, n_in - 1, "in_ch", 0, notices, where=c_in)
    c_in.plotly_chart(inside_figures.window_figure(io.input[shown], pixel, f"its input, channel {shown}, and the "
                                                   "window"), key="window")
    st.caption(inside.pixel_sentence(pixel, io.input.shape[1:]))
    grids = inside.panels(pixel, shown)
    for col, (i, grid) in zip(st.columns(3), enumerate(grids)):
        col.plotly_chart(inside_figures.numbers_figure(grid.pop("values"), grid.pop("title"), **grid), key=f"grid{i}")
    if pixel.rule == "conv" and n_in > 1:
        with st.expander(f"The sum S split over the {n_in} input channels"):
            st.dataframe(pd.DataFrame(inside.channel_sums(pixel)), hide_index=True)
    st.latex(inside.equation_latex(pixel))
    widgets.metrics_row(("Computed by hand", f"{pixel.value:.6f}"),
                        ("The network computed (forward hook)", f"{pixel.hooked:.6f}",
                         f"Read by a forward hook on {io.layer}" + (" and its ReLU" if io.relu else "")),
                        ("Difference", f"{abs(pixel.value - pixel.hooked):.1e}"))


_field_rows = st.cache_data(show_spinner=False, max_entries=64)(conv_arithmetic.field_sizes_by_method)


def receptive_field() -> None:
    layer, io, ch, row, col, chart = unit_picker()
    rows = conv_arithmetic.receptive_fields(model, data.shape)
    field = conv_arithmetic.unit_field(rows, layer, row, col)
    grad = saliency.effective_field(model, x, layer, ch, row, col)
    c1, c2, c3 = st.columns(3)
    pick_map(io, layer, ch, row, col, chart, c1)
    c2.plotly_chart(inside_figures.field_figure(image.numpy(), field, "the theoretical receptive field"), key="field")
    c3.plotly_chart(inside_figures.effective_figure(grad, field, "the effective one: |d unit / d input|"), key="erf")
    st.caption(saliency.field_sentence(grad, field) + " The unit is taken before the ReLU that follows it, so a "
               "unit that ReLU would zero still has a gradient; the ReLUs inside the net gate it.")
    st.subheader("Receptive field per layer")
    st.latex(r"r_{out} = r_{in} + (k - 1)\, j_{in}, \quad j_{out} = j_{in}\, s, \quad "
             r"\text{start}_{out} = \text{start}_{in} - p\, j_{in}")
    archs = list_archs()
    arch = widgets.select("Architecture", archs, "rf_arch", ck.record.arch, notices, help="Built for this dataset's "
                          "input with every downsampling it takes (shapes only, no weights).")
    raw = _field_rows(arch, data.shape, get_arch(arch).downsamples)  # the methods in the key: one registered later too
    label = {m: downsample_label(m) if m else "none" for m in dict.fromkeys(r["method"] for r in raw)}
    table = pd.DataFrame([{**r, "method": label[r["method"]]} for r in raw])
    layers = list(dict.fromkeys(table.sort_values("order")["layer"]))
    table["field"] = [f"{r} px, jump {j:g}" for r, j in zip(table["rf"], table["jump"])]
    st.dataframe(table.pivot(index="method", columns="layer", values="field").reindex(list(label.values()))[layers]
                 .fillna("no such layer"), key="rf_table")
    st.caption("Pixels of the input that one unit of each layer sees (rows = columns: square kernels), and the "
               "jump: input pixels between neighbouring units. Layers that keep both (ReLUs) are left out, and so is "
               "the classifier, whose every unit sees the whole input. A strided conv downsamples inside the conv, so "
               "its net has no pool layer.")
    colors = {text: get_downsample(m).color if m else "#333333" for m, text in label.items()}
    st.plotly_chart(inside_figures.fields_per_layer_figure(table.to_dict("records"), colors), key="rf_figure")


def where_it_looks() -> None:
    where = widgets.select("Grad-CAM on", list(saliency.CAM_LAYERS), "cam", "last conv", notices,
                           fmt=saliency.CAM_LAYERS.get, widget="radio", horizontal=True)
    present = [r for r in shipped.runs_of_group("downsampling", dataset) if r.config.seed == 0 and r.path.exists()]
    if not present:
        st.info(f"No shipped downsample_compare checkpoints for {dataset} yet.")
        return
    nets = {r.config.downsample: loaders.checkpoint(r.path).model for r in present}
    looks = saliency.where_nets_look(nets, x, true_class if true_class is not None else 0, where)
    rows = [("predicted", "Grad-CAM, predicted class", "cams"), ("predicted", "|input gradient|, predicted class",
                                                                  "gradients")]
    if true_class is not None:
        rows[1:1] = [("true", f"Grad-CAM, true class ({classes[true_class]})", "cams")]
        rows.append(("true", f"|input gradient|, true class ({classes[true_class]})", "gradients"))
    labels = {"predicted": [f"{get_downsample(lk.name).short}: {classes[lk.predicted]} "
                            f"({lk.probs[lk.predicted]:.2f})" for lk in looks],
              "true": [f"{get_downsample(lk.name).short}: p = {lk.probs[true_class or 0]:.2f}" for lk in looks]}
    for target, title, kind in rows:
        maps = np.stack([getattr(lk, kind)[target] for lk in looks])
        st.plotly_chart(figures.labelled_grid_figure(maps, labels[target], cols=len(looks), title=title),
                        key=f"looks_{target}_{kind}")
    right = sum(lk.predicted == true_class for lk in looks)
    agree = ("" if true_class is None else f"{right} of the {len(looks)} nets predict the true class (for those, its "
             "two rows are the same maps). ")
    st.caption(f"The shipped downsample_compare net of each method (seed 0) on {image_label}. {agree}Grad-CAM reads "
               f"{', '.join(sorted({lk.layer for lk in looks}))}: each channel weighted by the mean gradient of the "
               "class score over its map, summed, ReLU, resized to the image. Each map is scaled to its own "
               "range; labels: the predicted class and its probability, or the true class's probability.")


_script = st.cache_data(show_spinner=False, max_entries=32)(export.script)
_notebook = st.cache_data(show_spinner=False, max_entries=32)(export.notebook_json)


def export_as_code() -> None:
    cfg = ck.record.config
    try:
        code, notebook = _script(cfg), _notebook(cfg)
    except export.NotExportable as e:
        st.info(str(e))
        return
    st.markdown(f"The net and settings of `{ck.record.file}`: {cfg.epochs} epochs of {cfg.optimizer} at learning "
                f"rate {cfg.lr:g}, batch {cfg.batch_size}, seed {cfg.seed}: plain PyTorch, no cnnviz needed. The same "
                f"seed gives the same initial weights and the same first batch, so the first loss it prints is "
                f"cnnviz's.")
    c1, c2 = st.columns(2)
    c1.download_button("Download notebook (.ipynb)", notebook, f"{cfg.name}.ipynb", "application/x-ipynb+json",
                       key="download_notebook", icon=":material/download:")
    c2.download_button("Download script (.py)", code, f"{cfg.name}.py", "text/x-python", key="download_script",
                       icon=":material/download:")
    st.subheader("Copy as PyTorch code")
    st.code(code, language="python")


def worked_examples() -> None:
    stride_example()
    pooling_example()
    kernel_example()


def stride_example() -> None:
    st.subheader("Stride 1 or stride 2: the 4x4 data and a 2x2 kernel")
    out = worked.strided()
    grids = [("data D: v1..v16", worked.STRIDE_DATA), ("kernel w1..w4, b = 0", worked.STRIDE_KERNEL)] + [
        (f"stride {s}: {o.shape[0]}x{o.shape[1]} output", o) for s, o in out.items()]
    for col, (i, (title, values)) in zip(st.columns(4), enumerate(grids)):
        col.plotly_chart(inside_figures.numbers_figure(values, title, signed=False, height=230), key=f"stride{i}")
    st.latex(worked.first_window_latex())
    for s in out:
        st.latex(output_size_latex(worked.STRIDE_DATA.shape[0], worked.STRIDE_KERNEL.shape[0], 0, s))
    st.caption("Computed by F.conv2d, no padding: with stride 2 the window jumps two pixels, so it keeps every "
               "other output of stride 1.")


def pooling_example() -> None:
    st.subheader(f"{worked.POOLED_SIZE} → {worked.POOLED_SIZE // 2} → {worked.POOLED_SIZE // 4}: two 2x2 poolings")
    photo, source = image, f"{image_label}, enlarged to {worked.POOLED_SIZE}x{worked.POOLED_SIZE} (bilinear)"
    upload = st.file_uploader(f"A photo of your own (resized to {worked.POOLED_SIZE}x{worked.POOLED_SIZE})",
                              type=["png", "jpg", "jpeg", "bmp", "webp"], key="pool_upload",
                              max_upload_size=MAX_IMAGE_MB)
    if upload is not None:
        try:
            photo, _ = load_image(upload.getvalue(), 3, (worked.POOLED_SIZE, worked.POOLED_SIZE))
            source = f"your photo {upload.name}"
        except ImageError as e:
            st.error(f"{upload.name}: {e}. Showing {source} instead.")
    for p in worked.pooled_twice(photo):
        panels = [(f"pool_{p.method}_{i}", figures.heatmap(m, height=220), f"{m.shape[0]}x{m.shape[1]}",
                   None if i == 0 else f"after {i} x {downsample_label(p.method)}") for i, m in enumerate(p.maps)]
        widgets.figure_rows(panels, per_row=3)
    st.caption(f"Gray version of {source}; each map drawn at the same size, so the pixels grow.")


def kernel_example() -> None:
    st.subheader("One kernel (1,5,5) on a gray image, one kernel (3,5,5) on a colour image")
    ch = widgets.number("Output channel of the first conv", 0, 31, "kernel_ch", 0, notices)
    for name in DATASETS:
        run = shipped.find_run("downsample_compare", name, "max")
        if run is None or not run.path.exists():
            st.info(shipped.missing_sentence("downsample_compare", name, "max"))
            continue
        ds = loaders.dataset(name)
        img = image if name == dataset else ds.test_x[0]
        k = worked.one_kernel(loaders.checkpoint(run.path).model, ds.normalize(img[None]), ch)
        c = k.kernel.shape[0]
        c1, c2, c3 = st.columns(3)
        c1.plotly_chart(figures.image_figure(img.numpy(), f"{DATASETS[name].label}: {tuple(k.image.shape)}",
                                             height=220), key=f"k_image_{name}")
        c2.plotly_chart(figures.labelled_grid_figure(k.kernel, ["gray"] if c == 1 else ["R", "G", "B"], cols=3,
                                                     signed=True, title=f"kernel {tuple(k.kernel.shape)}",
                                                     width=figures.column_width(1 / 3)), key=f"k_kernel_{name}")
        c3.plotly_chart(figures.heatmap(k.output, f"ReLU(conv): {k.output.shape[0]}x{k.output.shape[1]}",
                                        height=220), key=f"k_out_{name}")
        st.caption(f"{k.params} parameters: {c} x 5 x 5 weights + 1 bias; channel {ch} of the trained first conv "
                   f"of `{run.filename}`.")


widgets.lazy_tabs(dict(zip(TABS, (one_pixel, receptive_field, where_it_looks, export_as_code, worked_examples))))

notices.show_as_list(notice_slot, "Ignored URL parameters that do not fit this page:")
widgets.share_link()
