"""The "Engineered vs learned features" page, driven by AppTest.

Most tests point the page at a folder of small checkpoints written here (real architectures with
seeded weights, a recorded history, and filter snapshots that walk from the initialisation to
known kernels), so the numbers on screen can be checked against what was recorded. One test renders
the page on the real shipped checkpoints: under CI every run of the comparison group must be there.
"""
from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from pages.ui import catalog, jobs, nav
from cnnviz import baselines, shipped
from cnnviz.checkpoints import load_checkpoint, make_meta, read_meta, save_checkpoint
from cnnviz.data import DATASETS
from cnnviz.record import RunRecord
from cnnviz.engineered import KIND_LABELS, engineered_kernels
from cnnviz.models import build_model, first_conv, get_arch

APP = str(nav.APP)
PAGE = nav.lesson("engineered").path
EPOCHS = 3
# Recorded final test accuracies of the fake Fashion-MNIST comparison group (LeNet-5 left missing).
RECORDED = {"mlp": 0.8123, "engineered": 0.8456, "learned_conv": 0.8789}


def _file(group: str, dataset: str, arch: str) -> str:
    return next(r.filename for r in shipped.runs_of_group(group, dataset) if r.config.arch == arch
                and r.config.downsample in (None, "max"))


DEFAULT_FM = _file("downsampling", "fashion-mnist", "downsample_compare")


def _history(final: float, epochs: int = EPOCHS) -> list[dict]:
    return [{"epoch": e, "train_loss": 1.0 / e, "train_acc": final - 0.01 * (epochs - e),
             "test_loss": 1.1 / e, "test_acc": final - 0.02 * (epochs - e), "seconds": 2.0 + e,
             "images_per_second": 1000.0, "eval_seconds": 0.1} for e in range(1, epochs + 1)]


def _write(folder, run: shipped.ShippedRun, final: float) -> None:
    """A checkpoint of `run`'s architecture whose first conv ends at Sobel x / Laplacian in filters 0 / 1."""
    c = run.config
    spec = DATASETS[c.dataset]
    torch.manual_seed(0)
    model = build_model(c.arch, spec.shape, len(spec.classes), c.downsample)
    snaps = None
    found = first_conv(model)
    if found is not None:
        w = found[1].weight
        init = w.detach().clone()
        target = init.clone()
        k = engineered_kernels(w.shape[-1])
        target[0] = torch.from_numpy(k["sobel_x"])[None].expand_as(target[0]) / 10
        target[1] = torch.from_numpy(k["laplacian"])[None].expand_as(target[1]) / 10
        snaps = [init + (target - init) * e / EPOCHS for e in range(EPOCHS + 1)]
        with torch.no_grad():
            w.copy_(target)
    dataset = {"name": c.dataset, "source": "test fixture", "lossy": False, "shape": list(spec.shape),
               "classes": list(spec.classes), "mean": list(spec.mean), "std": list(spec.std)}
    meta = make_meta(arch=c.arch, downsample=c.downsample, dataset=dataset, in_shape=spec.shape,
                     num_classes=len(spec.classes), train={"seed": 0, "lr": c.lr, "device": "cpu"},
                     history=_history(final), complete=True, reason="completed", model=model)
    save_checkpoint(folder / run.filename, meta, model, half=True, snapshots=snaps)


@pytest.fixture(scope="module")
def fake_shipped(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shipped")
    for run in shipped.runs_of_group("baselines", "fashion-mnist"):
        if run.config.arch in RECORDED:
            _write(folder, run, RECORDED[run.config.arch])
    for run in shipped.runs_of_group("downsampling", "fashion-mnist"):
        if run.config.downsample == "max":
            _write(folder, run, 0.9)
    for run in shipped.runs_of_group("baselines", "cifar10"):
        if run.config.arch in ("mlp", "lenet5"):
            _write(folder, run, {"mlp": 0.5111, "lenet5": 0.6222}[run.config.arch])
    return folder


@pytest.fixture
def app(monkeypatch, tmp_path, fake_shipped, fashion_mnist, cifar10):
    """AppTest of the page over the fake shipped folder and an empty user folder."""
    monkeypatch.setattr(catalog, "SHIPPED", fake_shipped)
    monkeypatch.setattr(catalog, "USER_RUNS", tmp_path / "runs")
    jobs.registry.clear()
    yield _open
    jobs.registry.clear()


# The page's tabs (each runs only while open; `part` in the link opens one; the first opens by default).
EDGES, IMAGE, LEARN, VERSUS = ("Are the learned filters edge detectors?", "One image through both",
                               "Watch the filters learn", "Engineering vs CNN features")


def _open(**params) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page(PAGE)
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, at.exception
    return at


def _chart(at, key: str) -> dict:
    for el in at.get("plotly_chart"):
        spec = json.loads(el.proto.spec)
        if el.proto.id and key in el.proto.id:
            return spec
    raise AssertionError(f"no chart with key {key}")


TABLE_COLUMNS = {"e_base_table": "what it sees", "e_match_table": "closest kernel"}


def _table(at, key: str):
    """A dataframe by its widget key (AppTest's dataframes carry no id: found by a telling column)."""
    return next(df.value for df in at.dataframe if TABLE_COLUMNS[key] in df.value.columns)


def _texts(at) -> str:
    return "\n".join([m.value for m in at.markdown] + [i.value for i in at.info] + [w.value for w in at.warning]
                     + [c.value for c in at.caption] + [e.value for e in at.error])


# ---- on the fixture checkpoints -----------------------------------------------------------------

def test_renders_defaults_for_both_datasets(app):
    at = app()
    assert at.title[0].value == "Engineered vs learned features"
    assert at.segmented_control(key="e_dataset").value == "fashion-mnist"
    assert at.selectbox(key="e_checkpoint").value == DEFAULT_FM
    assert [t.label for t in at.tabs][:4] == [EDGES, IMAGE, LEARN, VERSUS]
    for key in ("e_filters", "e_kernels"):  # the page opens on the edge-detector measure
        _chart(at, key)
    assert not [el for el in at.get("plotly_chart") if "e_image" in el.proto.id]  # a closed tab runs nothing
    _chart(app(part=LEARN), "e_epoch_curves")
    at = app(part=IMAGE)
    for key in ("e_image", "e_engineered", "e_learned", "e_front"):
        _chart(at, key)
    labels = [a["text"] for a in _chart(at, "e_engineered")["layout"]["annotations"]]
    assert labels == [KIND_LABELS[k] for k in KIND_LABELS]  # every OpenCV feature, named
    at.segmented_control(key="e_dataset").set_value("cifar10").run()
    assert not at.exception, at.exception
    assert at.query_params["dataset"] == ["cifar10"] or at.query_params["dataset"] == "cifar10"
    assert at.selectbox(key="e_checkpoint").value == _file("baselines", "cifar10", "lenet5")
    assert not at.error


def test_baseline_table_lists_present_runs_with_recorded_accuracy(app, fake_shipped):
    at = app(part=VERSUS)
    table = _table(at, "e_base_table")
    assert list(table["model"]) == [get_arch(a).label for a in RECORDED]
    for arch, acc in RECORDED.items():
        meta = read_meta(fake_shipped / _file("baselines", "fashion-mnist", arch))
        row = table[table["model"] == get_arch(arch).label].iloc[0]
        assert row["final test accuracy"] / 100 == pytest.approx(acc) == pytest.approx(meta["history"][-1]["test_acc"])
        assert row["trainable parameters"] == meta["trainable_params"]
        assert row["what it sees"] == get_arch(arch).sees
    text = _texts(at)
    assert "On Fashion-MNIST, the learned conv front end (87.9%) beats the engineered front end by 3.3 points" in text
    # the missing member is named, with the command that trains it
    assert any("LeNet-5" in w.value for w in at.warning)
    assert any("--arch lenet5" in c.value for c in at.code)
    curves = _chart(at, "e_base_acc")
    assert {t["name"] for t in curves["data"]} == {get_arch(a).label for a in RECORDED}  # the metric: in the title


def test_cifar10_mlp_is_shown_next_to_the_lectures_53_percent(app):
    at = app(dataset="cifar10", part=VERSUS)
    metric = next(m for m in at.metric if "MLP on CIFAR-10" in m.label)
    assert metric.value == "51.1 %"
    assert "-1.9 points vs the lecture's" in metric.delta


def _edge_share(w: np.ndarray) -> float:
    """Oracle: the share of a zero-mean filter's energy in the least-squares span of OpenCV's d/dx, d/dy kernels."""
    import cv2

    k = w.shape[-1]
    kx, ky = cv2.getDerivKernels(1, 0, k)
    dx = ky @ kx.T
    basis = np.stack([dx.ravel(), dx.T.ravel()], 1)
    f = w.ravel() - w.mean()
    proj = basis @ np.linalg.lstsq(basis, f, rcond=None)[0]
    return float(proj @ proj / (f @ f))


def test_filter_grid_labels_each_filter_as_an_edge_detector_and_its_orientation(app, fake_shipped):
    at = app()
    spec = _chart(at, "e_filters")
    labels = [a["text"] for a in spec["layout"]["annotations"]]
    assert len(labels) == 32
    w = load_checkpoint(fake_shipped / "fashion-mnist-downsample_compare-max.pt").model.conv1.weight.detach().numpy()
    share = _edge_share(w[0].mean(0))  # filter 0 is Sobel x (3x3, zero-padded to 5x5): a vertical edge
    assert labels[0] == f"0: edge 90°<br>edge {share:.2f}" and share > 0.5
    assert labels[1].startswith("1: blob") or labels[1].startswith("1: —")  # filter 1 is a Laplacian
    hits = sum(_edge_share(f.mean(0)) > 0.5 for f in w)
    assert any(m.value.startswith(f"**{hits} of 32 filters are edge detectors") for m in at.markdown)
    assert next(m.value for m in at.metric if m.label == "Edge detectors, trained") == f"{100 * hits / 32:.0f} % ({hits} of 32)"
    table = _table(at, "e_match_table")  # the single-kernel cosine, kept in an expander
    assert table.iloc[0]["closest kernel"] == "Sobel x" and table.iloc[0]["cosine"] == pytest.approx(1.0, abs=1e-3)
    assert any("of 32 filters" in m.value for m in at.markdown)
    chance = next(c.value for c in at.caption if c.value.startswith("Chance level"))
    assert f"after epoch {EPOCHS}: " in chance  # the random initialisation is the reference


def test_epoch_slider_moves_and_the_marked_epoch_follows(app):
    at = app(part=LEARN)
    assert at.slider(key="e_epoch").value == EPOCHS
    assert _chart(at, "e_epoch_curves")["layout"]["shapes"][0]["x0"] == EPOCHS
    at.slider(key="e_epoch").set_value(1).run()
    assert not at.exception, at.exception
    assert _chart(at, "e_epoch_curves")["layout"]["shapes"][0]["x0"] == 1
    assert _chart(at, "e_epoch_similarity")["layout"]["shapes"][0]["x0"] == 1
    assert "after epoch 1" in _chart(at, "e_epoch_filters")["layout"]["title"]["text"]
    assert at.query_params["epoch"] in ("1", ["1"])
    # At the last epoch filter 0 IS (padded) Sobel x; at epoch 1 it is only a third of the way there.
    first = _chart(at, "e_epoch_filters")["layout"]["annotations"][0]["text"]
    last = _chart(app(part=LEARN), "e_epoch_filters")["layout"]["annotations"][0]["text"]
    assert first != last and last.startswith("0: edge 90°")


def test_url_reopens_the_same_view(app):
    at = app(dataset="fashion-mnist", **{"class": "Sneaker"}, index="4", epoch="2", part=LEARN,
             checkpoint=_file("baselines", "fashion-mnist", "learned_conv"))
    assert not at.info or not any("in the link" in i.value for i in at.info)
    assert at.selectbox(key="e_class_fashion-mnist").value == "Sneaker"
    assert at.number_input(key="e_index").value == 4
    assert at.slider(key="e_epoch").value == 2
    assert at.selectbox(key="e_checkpoint").value == _file("baselines", "fashion-mnist", "learned_conv")


def test_garbage_query_params_fall_back_with_a_notice(app):
    at = app(dataset="mnist-ish", **{"class": "99"}, index="-3", checkpoint="../../etc/passwd", epoch="abc",
             part=LEARN)
    notices = [i.value for i in at.info if "in the link" in i.value]
    assert len(notices) == 5, notices
    assert at.segmented_control(key="e_dataset").value == "fashion-mnist"
    assert at.selectbox(key="e_class_fashion-mnist").value == "T-shirt/top" and at.number_input(key="e_index").value == 0
    assert at.selectbox(key="e_checkpoint").value == DEFAULT_FM
    assert at.slider(key="e_epoch").value == EPOCHS


def test_bad_upload_shows_one_error_and_a_good_one_is_used(app):
    from PIL import Image

    at = app(part=IMAGE)
    at.file_uploader(key="e_upload").upload("photo.png", b"this is not an image", "image/png").run()
    assert not at.exception, at.exception
    assert len(at.error) == 1 and at.error[0].value.startswith("photo.png: not an image")
    assert "test image #" in _chart(at, "e_image")["layout"]["title"]["text"]  # the test image stays

    buf = io.BytesIO()
    Image.fromarray(np.tile(np.arange(64, dtype=np.uint8) * 4, (48, 1)), "L").convert("RGB").save(buf, "PNG")
    at.file_uploader(key="e_upload").set_value(("ramp.png", buf.getvalue(), "image/png")).run()
    assert not at.exception and not at.error
    assert "your image ramp.png" in _chart(at, "e_image")["layout"]["title"]["text"]
    assert any("resized from 64x48 to 28x28" in c.value for c in at.caption)


@pytest.mark.slow
def test_retrain_starts_a_background_job_and_stop_ends_it(app):
    at = app(part=VERSUS)
    at.selectbox(key="e_retrain_arch").select("mlp")
    at.number_input(key="e_retrain_epochs").set_value(1)
    at.button(key="e_retrain").click().run()
    assert not at.exception, at.exception
    job_id = at.session_state["e_job"]
    assert at.query_params["retrain"] in (job_id, [job_id])
    job = jobs.registry().get(job_id)
    assert job.config.arch == "mlp" and job.config.epochs == 1 and job.config.lr == 1e-3
    assert job.config.batch_size == shipped.BASELINE_BATCH_SIZE and job.config.seed == 0  # the group's
    assert any(f"job `{job_id}`" in m.value for m in at.markdown)
    at.button(key="e_stop").click().run()
    snap = jobs.registry().wait(job_id, timeout=120)
    assert snap.done and snap.state in ("stopped", "completed")
    at.run()
    assert not at.exception, at.exception


# ---- on the real shipped checkpoints ------------------------------------------------------------

@pytest.mark.parametrize("dataset", ["fashion-mnist", "cifar10"])
def test_shipped_comparison_group_is_shown_with_recorded_accuracy(dataset, monkeypatch, tmp_path, fashion_mnist,
                                                                   cifar10):
    runs = shipped.runs_of_group("baselines", dataset)
    present = [r for r in runs if (catalog.SHIPPED / r.filename).exists()]
    if len(present) < len(runs) and os.environ.get("CI"):
        pytest.fail(f"shipped checkpoints missing under CI: {[r.filename for r in runs if r not in present]}")
    monkeypatch.setattr(catalog, "USER_RUNS", tmp_path / "runs")
    at = _open(dataset=dataset, part=VERSUS)
    if not present:
        assert any("No shipped checkpoint yet" in w.value for w in at.warning)
        pytest.skip(f"no shipped baseline checkpoint for {dataset} yet")
    table = _table(at, "e_base_table")
    assert len(table) == len(present)
    metas = {run.config.arch: read_meta(catalog.SHIPPED / run.filename) for run in present}
    for arch, meta in metas.items():
        row = table[table["model"] == get_arch(arch).label].iloc[0]
        assert row["final test accuracy"] / 100 == pytest.approx(meta["history"][-1]["test_acc"])  # shown in %
        assert row["trainable parameters"] == meta["trainable_params"]
    expected = baselines.winner_sentence([RunRecord.from_meta(m) for m in metas.values()],
                                       DATASETS[dataset].label)
    assert f"**{expected}**" in [m.value for m in at.markdown]
    if dataset == "cifar10" and "mlp" in metas:
        metric = next(m for m in at.metric if "MLP on CIFAR-10" in m.label)
        assert metric.value == f"{100 * metas['mlp']['history'][-1]['test_acc']:.1f} %"


def test_switching_the_dataset_shows_a_class_of_the_new_dataset_under_its_image(app):
    at = app(part=IMAGE)
    at.segmented_control(key="e_dataset").set_value("cifar10").run()
    assert not at.exception
    (box,) = [s for s in at.selectbox if s.label == "Test-set class"]
    assert box.value == DATASETS["cifar10"].classes[0] and box.options == list(DATASETS["cifar10"].classes)
    assert any(f"({DATASETS['cifar10'].classes[0]})" in c.value for c in at.caption)  # the image's own caption
