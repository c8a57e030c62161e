"""The Train & compare page in AppTest: the training form and its summary for every architecture, a real
background job followed to the end (and one stopped), and the comparison of real tiny checkpoints.

The user runs folder is a temporary one (`pages.ui.catalog.USER_RUNS` patched and the registry rebuilt), filled by a
fixture with three tiny real trainings on Fashion-MNIST: learned_conv with max pooling (seeds 0 and 1)
and with average pooling (seed 0) -- one group of two seeds and one single run.
"""
from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import streamlit as st
import torch
from streamlit.testing.v1 import AppTest

from pages.ui import catalog, jobs, nav
from cnnviz import shipped
from cnnviz.checkpoints import read_meta
from cnnviz.data import DATASETS
from cnnviz.models import build_model, count_params, get_arch, list_archs
from cnnviz.config import RunConfig
from cnnviz.runs import run_training

ROOT = Path(__file__).resolve().parent.parent
PAGE = nav.lesson("train_compare").path
WAIT = 180  # seconds for a tiny job: the 2-core machine may be busy with other trainings
RUNS = [RunConfig("learned_conv", downsample="max", epochs=2, limit_train=2048, batch_size=512, seed=0),
        RunConfig("learned_conv", downsample="max", epochs=2, limit_train=2048, batch_size=512, seed=1),
        RunConfig("learned_conv", downsample="avg", epochs=2, limit_train=2048, batch_size=512, seed=0)]


@pytest.fixture(scope="module")
def runs_folder(tmp_path_factory):
    """A fresh, empty user runs folder; the page's job registry and runs table point at it."""
    folder = tmp_path_factory.mktemp("runs")
    mp = pytest.MonkeyPatch()
    mp.setattr(catalog, "USER_RUNS", folder)
    jobs.registry.clear()
    yield folder
    assert jobs.registry().shutdown(timeout=WAIT), "a training thread did not end"
    jobs.registry.clear()
    mp.undo()


@pytest.fixture(scope="module")
def user_runs(runs_folder, fashion_mnist):
    """Three tiny real runs in the user runs folder: (folder, their ids on the page)."""
    files = [run_training(cfg, folder=runs_folder, data=fashion_mnist)[0].name for cfg in RUNS]
    return runs_folder, [f"yours/{f}" for f in files]


def open_page(**params) -> AppTest:
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=WAIT)
    at.switch_page(PAGE)
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def charts(at) -> dict[str, dict]:
    """Plotly specs by the chart's key (the element id ends with it)."""
    return {el.proto.id.rsplit("-", 1)[-1]: json.loads(el.proto.spec) for el in at.get("plotly_chart")}


def array(value) -> np.ndarray:
    """A plotly data array from a spec: a plain list, or plotly's typed array {dtype, bdata, shape}."""
    if isinstance(value, dict):
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        shape = value.get("shape")
        return flat.reshape([int(n) for n in str(shape).split(",")]) if shape else flat
    return np.asarray(value)


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


# ---- Train ---------------------------------------------------------------------------------------

def test_train_tab_renders_the_default_network_and_its_summary(runs_folder):
    at = open_page()
    assert at.title[0].value == "Train & compare"
    arch = at.selectbox(key="t_arch").value
    assert arch == "downsample_compare"  # the lecture's small net: quick to train on a shared CPU
    model = build_model(arch, DATASETS["fashion-mnist"].shape)
    assert metric(at, "Total params") == f"{count_params(model):,}"
    assert at.selectbox(key="t_lr").value == "fast (1e-3)" and at.number_input(key="t_batch").value == 1024
    assert any("Output sizes follow the lecture's formula" in c.value for c in at.caption)
    # the cost before the click, scaled from the shipped run of the same net (10 epochs, all images)
    from cnnviz.checkpoints import read_record
    from cnnviz.results import duration_text

    shipped_run = shipped.find_run(arch, "fashion-mnist", "max")
    if shipped_run.path.exists():
        (text,) = [i.value for i in at.info if i.value.startswith("Expected:")]
        assert f"`{shipped_run.filename}`" in text  # the same net, downsampling, batch, precision, lr and seed
        r = read_record(shipped_run.path)  # trained like the form's default: 10 epochs of the same images
        seconds = sum(h["seconds"] + h["eval_seconds"] for h in r.history) / r.epochs * 10
        assert text.startswith(f"Expected: **{duration_text(seconds)}** for 10 epochs")


@pytest.mark.slow
def test_every_arch_and_each_of_its_downsampling_options_shows_a_summary_totalling_count_params(runs_folder):
    at = open_page()
    shape = DATASETS["fashion-mnist"].shape
    for arch in list_archs():
        at.selectbox(key="t_arch").select(arch).run()
        spec = get_arch(arch)
        for ds in spec.downsamples or (None,):
            if ds is not None:
                box = at.selectbox(key=f"t_downsample_{arch}")
                assert len(box.options) == len(spec.downsamples)  # only the options this net accepts
                box.select(ds).run()
            assert not at.exception, (arch, ds, [e.message for e in at.exception])
            total = count_params(build_model(arch, shape, 10, ds))
            assert metric(at, "Total params") == f"{total:,}", (arch, ds)
            df = at.dataframe[0].value
            assert int(df["params"].sum()) == total, (arch, ds)


NUMBERS = ("t_epochs", "t_seed", "t_batch")


def _start(at, **choices) -> str:
    """Fill the Train form, click Train, and return the job id the page keeps."""
    for key, value in choices.items():
        if key in NUMBERS:
            at.number_input(key=key).set_value(value)
        else:
            at.selectbox(key=key).select(value)
        at.run()
    at.button(key="t_train").click().run()
    assert not at.exception, [e.message for e in at.exception]
    job_id = at.query_params["job"]
    assert at.session_state["train_job"] == job_id
    return job_id


@pytest.mark.slow
def test_a_tiny_training_job_shows_progress_then_the_finished_run(user_runs):
    folder, _ = user_runs
    at = open_page()
    job_id = _start(at, t_arch="learned_conv", t_epochs=1, t_subset=2048, t_batch=512)
    assert any(m.value.startswith("**fashion-mnist-learned_conv-max") for m in at.markdown)
    job = jobs.registry().get(job_id)
    snap = job.wait(WAIT)
    assert snap.state == "completed", snap.reason
    for _ in range(3):  # AppTest does not run `run_every` timers: poll by rerunning
        at.run()
    assert not at.exception
    assert any("Finished 1 epoch: final test accuracy" in s.value for s in at.success)
    assert metric(at, "Final test accuracy") == f"{100 * snap.history[-1]['test_acc']:.2f} %"
    assert snap.checkpoint.parent == folder and snap.checkpoint.exists()
    # Same config as the fixture's first run: a new file beside it, never over it.
    assert snap.checkpoint.name == f"{RUNS[0].name}-2.pt"
    assert len(read_meta(folder / f"{RUNS[0].name}.pt")["history"]) == 2
    assert at.get("download_button")[0].proto.label == "Download the checkpoint (.pt)"
    # "Compare it" opens the Compare tab with this run added to the default selection.
    at.button(key="t_compare").click().run()
    assert not at.exception
    run_id = f"yours/{snap.checkpoint.name}"
    chosen = at.multiselect(key="c_runs").value
    assert chosen[-1] == run_id and at.query_params["run"] == str(len(chosen))  # the link says its position
    assert at.selectbox(key="run").value == run_id
    # A reload (a new session with the job in the URL) re-attaches to the same run.
    again = open_page(job=job_id)
    assert any("Finished 1 epoch:" in s.value for s in again.success)


@pytest.mark.slow
def test_stop_ends_a_running_job_as_stopped_and_keeps_its_checkpoint(runs_folder):
    at = open_page()
    job_id = _start(at, t_arch="mlp", t_epochs=200, t_subset=2048, t_batch=256)
    job = jobs.registry().get(job_id)
    job.wait_for(lambda s: s.state == "running" and s.progress.batch > 0, WAIT)
    at.run()
    assert at.get("progress"), "a running job shows a progress bar"
    text = at.get("progress")[0].proto.text
    assert text.startswith("epoch ") and "/200, batch " in text, text
    at.button(key="t_stop").click().run()
    snap = job.wait(WAIT)
    assert snap.state == "stopped" and snap.reason.startswith("stopped after")
    at.run()
    assert not at.exception
    assert any("the checkpoint keeps what it learned" in w.value for w in at.warning)
    assert snap.checkpoint.exists()


@pytest.mark.slow
def test_continue_a_run_trains_more_epochs_into_a_new_file_with_the_history_carried_on(user_runs):
    folder, ids = user_runs
    at = open_page()
    at.selectbox(key="t_continue_run").select(ids[0]).run()
    assert at.number_input(key=f"t_continue_epochs_{ids[0]}").value == 2 + 5
    assert any("its Adam state" in c.value for c in at.caption)  # a user run keeps its optimizer state
    at.number_input(key=f"t_continue_epochs_{ids[0]}").set_value(3).run()
    at.button(key="t_continue").click().run()
    assert not at.exception, [e.message for e in at.exception]
    snap = jobs.registry().get(at.session_state["train_job"]).wait(WAIT)
    assert snap.state == "completed", snap.reason
    meta = read_meta(snap.checkpoint)
    original = read_meta(folder / ids[0].removeprefix("yours/"))
    assert snap.checkpoint.name != original and len(meta["history"]) == 3 and len(original["history"]) == 2
    assert meta["history"][:2] == original["history"]  # the first two epochs are the original's
    assert meta["resumed_from"] == {"file": ids[0].removeprefix("yours/"), "epochs": 2, "optimizer_state": True}
    # A shipped (compact) file says that its optimizer state is gone.
    at.selectbox(key="t_continue_run").select("fashion-mnist-mlp.pt").run()
    assert any("keeps no optimizer state" in c.value for c in at.caption)


def test_an_unknown_job_in_the_url_shows_a_notice(runs_folder):
    at = open_page(job="nope1234")
    assert any("not on this server" in i.value for i in at.info)
    assert "job" not in at.query_params


# ---- Compare ---------------------------------------------------------------------------------------

def compare(user_runs, **params) -> AppTest:
    return open_page(part="Compare", runs=",".join(user_runs[1]), **params)


def test_comparison_groups_seeds_into_a_mean_with_a_band_and_says_whether_the_gap_beats_the_spread(user_runs):
    at = compare(user_runs)
    acc = charts(at)["c_acc"]
    names = [t.get("name") for t in acc["data"] if t.get("name")]
    # The legend names what differs; what all runs share, and what the bands mean, is the subtitle.
    assert names == ["max (train, 2 seeds)", "max (test, 2 seeds)", "avg (train)", "avg (test)"]
    assert acc["layout"]["title"]["subtitle"]["text"] == ("learned_conv · fashion-mnist · lines: mean over seeds, "
                                                          "bands: min–max")
    assert sum(t.get("fill") == "toself" for t in acc["data"]) == 2  # bands only for the group of seeds
    colours = {t["line"]["color"] for t in acc["data"] if t.get("name")}
    assert len(colours) == 2
    groups = next(d.value for d in at.dataframe if "mean ± std" in d.value.columns)
    assert list(groups["runs"]) == [2, 1]
    assert any(m.value.startswith("**fashion-mnist:** learned_conv") and "points of final test accuracy" in m.value
               for m in at.markdown)


def test_without_grouping_every_run_is_its_own_line(user_runs):
    at = compare(user_runs)
    at.toggle(key="c_group").set_value(False).run()
    acc = charts(at)["c_acc"]
    assert len([t for t in acc["data"] if t.get("name")]) == 2 * len(RUNS)
    assert not any(t.get("fill") for t in acc["data"])


def test_the_comparison_table_and_its_csv_have_one_row_per_selected_run(user_runs, monkeypatch):
    sent = {}
    real = st.download_button

    def record(label, data, *args, **kwargs):
        sent[kwargs.get("key")] = data
        return real(label, data, *args, **kwargs)

    monkeypatch.setattr(st, "download_button", record)
    at = compare(user_runs)
    table = next(d.value for d in at.dataframe if "final_test_acc" in d.value.columns)
    assert len(table) == len(RUNS)
    csv = pd.read_csv(io.BytesIO(sent["c_csv"]))
    assert len(csv) == len(RUNS) and list(csv["file"]) == [f.split("/", 1)[1] for f in user_runs[1]]
    assert {"final_test_acc", "best_test_acc", "params", "seconds_per_epoch", "epochs", "complete",
            "source"} <= set(csv.columns)
    assert set(csv["source"]) == {"yours"}
    checkpoint = sent["c_download"]  # a callable: the file is read only when the button is clicked
    assert checkpoint()[:2] == b"PK"  # the selected run's checkpoint file (a torch zip)


def test_one_run_shows_per_class_accuracy_confusion_and_misclassified_images(user_runs):
    at = compare(user_runs)
    specs = charts(at)
    assert array(specs["c_per_class"]["data"][0]["y"]).shape == (10,)
    cm = array(specs["c_confusion"]["data"][0]["z"])
    assert cm.shape == (10, 10) and cm.sum() == 10_000
    wrong = at.image[0].captions  # the first gallery: misclassified images of the selected run
    assert 1 <= len(wrong) <= 12 and all(" → " in c for c in wrong)
    true, pred = wrong[0].split(": ", 1)[1].split(" → ")
    assert true != pred


def test_run_diff_compares_two_runs_on_the_same_dataset(user_runs):
    at = compare(user_runs)
    assert at.selectbox(key="a").value == user_runs[1][0] and at.selectbox(key="b").value == user_runs[1][2]
    assert (at.query_params["a"], at.query_params["b"]) == ("1", "2")  # positions: the second of the runs B may be
    specs = charts(at)
    delta = array(specs["c_diff_confusion"]["data"][0]["z"])
    assert delta.shape == (10, 10) and delta.sum() == 0  # both runs classify the same 10,000 images
    assert (delta != 0).any()  # max and avg pooling do not make the same mistakes
    assert any(m.value.startswith("**Right in A, wrong in B**") for m in at.markdown)
    right_a, right_b = at.image[1].captions, at.image[2].captions  # captions: "true: A pred, B pred"
    assert right_a and right_b and all(", B " in c for c in right_a + right_b)


def test_cost_against_accuracy_draws_each_seed_group_in_its_curves_colour(user_runs):
    at = compare(user_runs)
    specs = charts(at)
    for key in ("c_cost_params", "c_cost_macs"):
        traces = {t["name"]: t for t in specs[key]["data"]}
        assert set(traces) == {"max", "avg"}
        assert traces["max"]["marker"]["color"] == "#1f77b4" and len(traces["max"]["x"]) == 2


def test_unknown_runs_in_the_link_are_ignored_with_a_notice(user_runs):
    ids = user_runs[1]
    at = open_page(part="Compare", runs=",".join([ids[0], "no-such-run.pt"]))
    assert "Ignored runs in the link that are not here: no-such-run.pt." in [i.value for i in at.info]
    assert at.query_params["runs"] == ids[0] and at.multiselect(key="c_runs").value == [ids[0]]


def test_garbage_run_and_diff_pair_in_the_link_fall_back_with_a_notice(user_runs):
    ids = user_runs[1]
    at = compare(user_runs, run="../../etc/passwd", a="x.pt", b=ids[0])
    notices = [i.value for i in at.info]
    assert any("`run=../../etc/passwd`" in n for n in notices) and any("`a=x.pt`" in n for n in notices)
    assert at.selectbox(key="run").value == ids[0] and at.selectbox(key="a").value == ids[0]
    assert at.query_params["run"] == "1" and at.query_params["a"] == "1"  # by position among the runs compared
    assert any("`b=" in n for n in notices)  # B cannot be A: it falls back to another run, with a notice
    assert at.selectbox(key="b").value == ids[2] and at.query_params["b"] == "2"


class _RunsCode:
    def __reduce__(self):  # unpickling this would call print(...): a stand-in for any code
        return print, ("this ran",)


def _saved(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)  # a real torch file whose pickle would call code when loaded without weights_only
    return buf.getvalue()


def test_bad_uploads_show_one_error_line_each_not_an_exception(user_runs):
    folder, ids = user_runs
    real = (folder / ids[0].split("/", 1)[1]).read_bytes()
    at = compare(user_runs)
    at.file_uploader(key="c_upload").set_value([
        ("truncated.pt", real[: len(real) // 2], "application/octet-stream"),
        ("hostile.pt", _saved({"format": "cnnviz-checkpoint", "x": _RunsCode()}), "application/octet-stream"),
    ]).run()
    assert not at.exception
    assert [e.value for e in at.error] == [
        "truncated.pt: not a readable checkpoint (truncated, corrupt or another format)",
        "hostile.pt: refused: the file contains Python objects that could run code (only plain cnnviz "
        "checkpoints are accepted)"]
    assert len(next(d.value for d in at.dataframe if "final_test_acc" in d.value.columns)) == len(RUNS)


def test_an_uploaded_checkpoint_joins_the_comparison(user_runs):
    folder, ids = user_runs
    raw = (folder / ids[0].split("/", 1)[1]).read_bytes()
    at = open_page(part="Compare", runs=ids[2])
    at.file_uploader(key="c_upload").set_value(("mine.pt", raw, "application/octet-stream")).run()
    assert not at.exception and not at.error
    table = next(d.value for d in at.dataframe if "final_test_acc" in d.value.columns)
    assert list(table["source"]) == ["yours", "uploaded"]


def test_the_shipped_seed_grid_is_the_default_selection_and_opens_on_bands(user_runs):
    present = [r for r in shipped.runs_of_group("seeds", "fashion-mnist") if r.path.exists()]
    if not present:
        if os.environ.get("CI"):
            pytest.fail("the shipped fashion-mnist downsample_compare checkpoints are missing")
        pytest.skip("no shipped fashion-mnist downsample_compare checkpoint yet")
    at = open_page(part="Compare")
    assert at.multiselect(key="c_runs").value == [r.filename for r in present]
    methods = {r.config.downsample for r in present}
    traces = charts(at)["c_acc"]["data"]
    bands = [t for t in traces if t.get("fill")]
    assert len(bands) >= len(methods)  # one min-max band per method at least (test accuracy)
    text = " ".join(m.value for m in at.markdown)
    assert "have a single seed" not in text and "seed" in text


@pytest.mark.parametrize("group,dataset", [("architectures", "fashion-mnist"), ("baselines", "cifar10")])
def test_one_click_loads_a_shipped_comparison_group(group, dataset, runs_folder):
    present = [r.filename for r in shipped.runs_of_group(group, dataset) if r.path.exists()]
    if len(present) < len(shipped.runs_of_group(group, dataset)) and os.environ.get("CI"):
        pytest.fail(f"shipped {group} checkpoints on {dataset} are missing")
    if not present:
        pytest.skip(f"no shipped {group} checkpoint on {dataset} yet")
    at = open_page(part="Compare")
    at.selectbox(key="c_shipped_group").set_value(shipped.group_id(group, dataset)).run()
    at.button(key="c_load_group").click().run()
    assert not at.exception
    assert at.multiselect(key="c_runs").value == present
    table = next(d.value for d in at.dataframe if "final_test_acc" in d.value.columns)
    assert len(table) == len(present)
    assert at.query_params["group"] == shipped.group_id(group, dataset) and "runs" not in at.query_params
    shared = open_page(part="Compare", runs=",".join(present))  # an old link listing the group names it too
    assert shared.selectbox(key="c_shipped_group").value == shipped.group_id(group, dataset)


@pytest.mark.parametrize("dataset, differs", [("fashion-mnist", "lr 1e-05"), ("cifar10", "arch")])
def test_the_lectures_comparisons_set_its_settings_and_nets_side_by_side(dataset, differs, runs_folder):
    """lr 1e-5 (the slides) against cnnviz's 1e-3 on the same net; conv-only (case 2) and VGG16 beside the MLP."""
    runs = shipped.runs_of_group("lecture", dataset)
    present = [r.filename for r in runs if r.path.exists()]
    # VGG16 is planned but may not be trained yet (`train_all.py --group lecture`); the rest is shipped.
    required = [r.filename for r in runs if r.config.arch != "vgg16"]
    missing = sorted(set(required) - set(present))
    if missing:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"the lecture's {dataset} runs are missing: {missing}")
    at = open_page(part="Compare")
    at.selectbox(key="c_shipped_group").set_value(shipped.group_id("lecture", dataset)).run()
    at.button(key="c_load_group").click().run()
    assert not at.exception
    table = next(d.value for d in at.dataframe if "final_test_acc" in d.value.columns)
    assert sorted(table["file"]) == sorted(present)
    records = {f: read_meta(shipped.shipped_dir() / f) for f in present}
    for _, row in table.iterrows():  # every figure read from its file
        assert row["final_test_acc"] == pytest.approx(100 * records[row["file"]]["history"][-1]["test_acc"])
    if dataset == "fashion-mnist":
        lrs = {records[f]["train"]["lr"] for f in present}
        assert lrs == {1e-3, shipped.LECTURE_LR}
        assert any(differs in r for r in table["run"])  # the legend names what differs


def test_a_link_opens_the_train_form_with_its_net_and_the_sidebar_gives_the_link_back(runs_folder):
    at = open_page(arch="lenet5", downsample="avg", dataset="cifar10")
    assert at.selectbox(key="t_arch").value == "lenet5" and at.selectbox(key="t_dataset").value == "cifar10"
    assert at.selectbox(key="t_downsample_lenet5").value == "avg"
    assert not at.info or not any("in the link" in i.value for i in at.info)
    link = at.sidebar.code[0].value
    assert all(p in link for p in ("arch=lenet5", "downsample=avg", "dataset=cifar10"))
    at.selectbox(key="t_arch").select("conv_stride").run()  # the URL's downsample=avg no longer fits: no notice
    assert not any("in the link" in i.value for i in at.info)
    # conv_stride's only downsampling is its default: the link leaves it out, a fresh session picks it again
    assert "arch=conv_stride" in at.sidebar.code[0].value and "downsample=" not in at.sidebar.code[0].value


def test_a_link_with_garbage_opens_the_defaults_with_a_notice(runs_folder):
    at = open_page(arch="resnet9000", dataset="imagenet")
    assert at.selectbox(key="t_arch").value == "downsample_compare"
    notes = " ".join(i.value for i in at.info)
    assert "`arch=resnet9000` in the link is not a choice here" in notes and "`dataset=imagenet`" in notes
