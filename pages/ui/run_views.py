"""What one run gets wrong and where two runs differ, on the test set: the Compare tab's lower half.

`entries` maps run ids (`catalog.run_id`) to run_picker entries; `labels` maps them to distinct names.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from cnnviz import analysis, figures

from . import widgets
from .run_picker import gallery, predictions_of
from .widgets import Notices, pct

GALLERY = 12  # images per gallery: enough to see a pattern, light enough for a phone


def errors_of_one_run(selected, labels, entries, notices: Notices) -> None:
    """The chosen run (`run=` in the URL): per-class accuracy, confusion matrix, misclassified images."""
    # By position among the runs compared: the link names those already (group=..., runs=...).
    entry = entries[widgets.select("Run", selected, "run", selected[0], notices, fmt=labels.get,
                                   by_position=True, persist_state="session")]
    notices.show()
    if entry["origin"] != "uploaded":
        path = Path(entry["path"])
        st.download_button(f"Download {path.name}", path.read_bytes, file_name=path.name,
                           mime="application/octet-stream", key="c_download")
    pred, data = predictions_of(entry)
    if pred is None:
        return
    st.caption(f"Test accuracy recomputed on all {len(pred.true):,} test images: {pct(pred.accuracy)}.")
    a, b = st.columns(2)
    a.plotly_chart(figures.bars_figure(pred.classes, pred.per_class_accuracy(), title="Accuracy per class",
                                       yaxis="accuracy"), key="c_per_class")
    b.plotly_chart(figures.confusion_figure(pred.confusion(), pred.classes), key="c_confusion")
    wrong = pred.misclassified(GALLERY)
    st.markdown(f"**Misclassified test images** (the first {len(wrong)} of {int((pred.pred != pred.true).sum()):,})")
    gallery(data, wrong, [f"#{i}: {pred.classes[pred.true[i]]} → {pred.classes[pred.pred[i]]}"
                                     for i in wrong])


def differences_of_two_runs(selected, records, labels, entries, notices: Notices) -> None:
    """Runs A and B (`a=`, `b=`) on one dataset: the confusion and per-class change, images right in one only."""
    same_ds = [r for r in selected if sum(entries[o]["dataset"] == entries[r]["dataset"] for o in selected) > 1]
    if not same_ds:
        st.info("Select two runs on the same dataset to see where they differ.")
        return
    c1, c2 = st.columns(2)
    ra = widgets.select("Run A", same_ds, "a", same_ds[0], notices, fmt=labels.get, where=c1, by_position=True,
                        persist_state="session")
    b_opts = [r for r in same_ds if r != ra and entries[r]["dataset"] == entries[ra]["dataset"]]
    key_a = records[selected.index(ra)].experiment
    other = [r for r in b_opts if records[selected.index(r)].experiment != key_a]  # not just a seed
    rb = widgets.select("Run B", b_opts, "b", (other or b_opts)[0], notices, fmt=labels.get, where=c2,
                        by_position=True, persist_state="session")
    notices.show()
    (pa, data), (pb, _) = predictions_of(entries[ra]), predictions_of(entries[rb])
    if pa is None or pb is None:
        return
    try:
        diff = analysis.run_diff(pa, pb)
    except ValueError as e:
        widgets.show_error(e)
        return
    st.caption(f"A = {labels[ra]} ({pct(pa.accuracy)}), B = {labels[rb]} ({pct(pb.accuracy)}). Blue cells: B puts "
               "more test images there than A; red: fewer. On the diagonal, blue means B gets more right.")
    a, b = st.columns(2)
    a.plotly_chart(figures.confusion_figure(diff.confusion_delta, pa.classes, diverging=True,
                                            title="Confusion matrix of B minus A"), key="c_diff_confusion")
    b.plotly_chart(figures.bars_figure(pa.classes, diff.per_class_delta,
                                       colors=["#2ca02c" if v >= 0 else "#d62728" for v in diff.per_class_delta],
                                       title="Per-class accuracy change (B − A)", yaxis="accuracy change"),
                   key="c_diff_bars")
    for col, idx, title in zip(st.columns(2), (diff.a_right_b_wrong, diff.b_right_a_wrong),
                               ("Right in A, wrong in B", "Right in B, wrong in A")):
        with col:
            st.markdown(f"**{title}**: {len(idx):,} test images (the first {min(len(idx), GALLERY)} shown)")
            gallery(data, idx[:GALLERY], [f"{pa.classes[pa.true[i]]}: A {pa.classes[pa.pred[i]]}, "
                                                     f"B {pb.classes[pb.pred[i]]}" for i in idx[:GALLERY]])
