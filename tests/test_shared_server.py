"""A whole class on one process, through the app's own navigation (AppTest): a shared link shows a job but
cannot stop it, the owner keeps Stop across a reload, a teacher can stop any job, one session's submits
are capped, over-budget settings are refused with one line, uploads are freed with their session and
capped together, and a finished run names its file, not the server's path."""
from __future__ import annotations

import gc
import tempfile
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import torch

import cnnviz.jobs as jobs_mod
from cnnviz.checkpoints import make_meta, save_checkpoint
from cnnviz.models import build_model
from cnnviz.train import TrainResult
from pages.ui import nav

ROOT = Path(__file__).resolve().parent.parent
PAGE = nav.lesson("train_compare").path
WAIT = 300


def _one_line(msg: str, limit: int = 300) -> None:
    assert msg and "\n" not in msg and len(msg) < limit, msg
    assert "Traceback" not in msg and "File \"" not in msg, msg


@pytest.fixture
def page_registry(tmp_path, monkeypatch):
    """A fresh process-wide registry of the app (cap 1, its default limits) writing to a temporary folder."""
    from pages.ui import catalog, jobs

    monkeypatch.setenv("CNNVIZ_MAX_JOBS", "1")
    monkeypatch.setattr(catalog, "USER_RUNS", tmp_path)
    jobs.registry.clear()
    reg = jobs.registry()
    assert reg.folder == tmp_path and reg.max_per_owner == 2 and reg.memory_mb == 1024
    yield reg
    reg.shutdown(timeout=WAIT)
    jobs.registry.clear()


@pytest.fixture
def blocked(monkeypatch):
    """Jobs that train nothing and run until released or stopped: the panels are under test, not training."""
    gate, entered = threading.Event(), threading.Event()

    def run(cfg, *, out, should_stop, **kwargs):
        entered.set()
        while not gate.wait(0.02) and not should_stop():
            pass
        return out, TrainResult([], False, "stopped")

    monkeypatch.setattr(jobs_mod, "run_training", run)
    yield gate, entered
    gate.set()


def _open(params: dict | None = None):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=WAIT)
    for k, v in (params or {}).items():
        at.query_params[k] = v
    at.switch_page(PAGE).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _params(at) -> dict[str, str]:
    return {k: v[0] if isinstance(v, list) else v for k, v in at.query_params.items()}


def _train(at, **numbers):
    at.selectbox(key="t_arch").select("mlp").run()
    for key, value in {"t_epochs": 1, **numbers}.items():
        at.number_input(key=key).set_value(value)
    at.button(key="t_train").click().run()
    assert not at.exception, [e.value for e in at.exception]


def _buttons(at) -> set[str]:
    return {b.key for b in at.button}


def _share_link_params(at) -> dict[str, str]:
    link = at.sidebar.code[0].value
    return {k: v[0] for k, v in parse_qs(urlsplit(link).query).items()}


@pytest.mark.slow
def test_a_shared_link_shows_the_job_read_only_and_the_owner_keeps_stop_after_a_reload(page_registry, blocked):
    gate, entered = blocked
    first = _open()
    _train(first)
    job_id = _params(first)["job"]
    assert entered.wait(60)
    first.run()
    assert "t_stop" in _buttons(first)
    link = _share_link_params(first)
    assert link["job"] == job_id and "owner_key" not in link and "owner_key" in _params(first)

    second = _open(link)  # a classmate opens the shared link: watches the job, cannot stop it
    assert any(m.value.startswith("**") and "running" in m.value for m in second.markdown)
    assert "t_stop" not in _buttons(second)
    assert any("Another session started this run" in c.value for c in second.caption)
    assert page_registry.get(job_id).state == "running"

    reloaded = _open(_params(first))  # the owner reloads: a new session with the tab's own URL
    assert "t_stop" in _buttons(reloaded)
    # The owner goes to another page, whose URL the browser starts without parameters (AppTest keeps them:
    # cleared here), and reloads there: the app wrote the owner's key back, not the job id.
    key = _params(first)["owner_key"]
    first.query_params.clear()
    first.switch_page(nav.lesson("architectures").path).run()
    assert "job" not in _params(first) and _params(first)["owner_key"] == key == _params(reloaded)["owner_key"]
    elsewhere = _open({"owner_key": _params(first)["owner_key"]})
    assert "t_stop" in _buttons(elsewhere) and any(job_id in str(m.value) or "running" in m.value
                                                   for m in elsewhere.markdown)
    assert _params(elsewhere)["job"] == job_id
    elsewhere.button(key="t_stop").click().run()
    assert page_registry.wait(job_id, WAIT).state == "stopped"


@pytest.mark.slow
def test_a_teacher_with_the_key_can_stop_any_job(page_registry, blocked, monkeypatch):
    monkeypatch.setenv("CNNVIZ_TEACHER_KEY", "open-sesame-2718")
    gate, entered = blocked
    student = _open()
    _train(student)
    job_id = _params(student)["job"]
    assert entered.wait(60)
    teacher = _open(_share_link_params(student))
    assert "t_stop" not in _buttons(teacher)
    teacher.text_input(key="teacher_typed").set_value("open-sesame").run()  # a wrong key changes nothing
    assert "t_stop" not in _buttons(teacher)
    teacher.text_input(key="teacher_typed").set_value("open-sesame-2718").run()
    assert "t_stop" in _buttons(teacher)
    teacher.button(key="t_stop").click().run()
    assert page_registry.wait(job_id, WAIT).state == "stopped"


@pytest.mark.slow
def test_fifteen_submits_from_one_session_are_capped_with_one_line_each(page_registry, blocked):
    at = _open()
    _train(at)
    for i in range(14):
        at.button(key="t_train").click().run()
        assert not at.exception
        if i == 0:
            assert not at.error, [e.value for e in at.error]
        else:
            assert len(at.error) == 1, [e.value for e in at.error]
            _one_line(at.error[0].value)
            assert "you already have 2 runs waiting or running" in at.error[0].value
    assert len(page_registry.jobs()) == 2
    assert {j.state for j in page_registry.jobs()} == {"running", "queued"}


@pytest.mark.slow
@pytest.mark.parametrize("settings, says", [
    ({"t_dataset": "cifar10", "t_arch": "vgg16", "t_batch": 8192}, "the largest batch that fits"),
    ({"t_dataset": "cifar10", "t_arch": "vgg16", "t_batch": 64, "t_epochs": 200}, "at most 12 epochs fit"),
], ids=["memory", "compute"])
def test_an_over_budget_setting_is_refused_with_one_line_and_nothing_is_queued(page_registry, blocked,
                                                                               settings, says, monkeypatch):
    from cnnviz import data

    monkeypatch.setattr(data, "in_memory", lambda name: False)  # the figure below counts CIFAR-10 as not loaded
    at = _open()
    for key, value in settings.items():
        if key in ("t_batch", "t_epochs"):
            at.number_input(key=key).set_value(value)
        else:
            at.selectbox(key=key).select(value)
        at.run()
    at.selectbox(key="t_device").select("cpu").run()
    at.button(key="t_train").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.error) == 1, [e.value for e in at.error]
    _one_line(at.error[0].value)
    if says == "the largest batch that fits":  # the library's own figure for the page's config (precision auto)
        from cnnviz import budget
        from cnnviz.config import RunConfig

        cfg = RunConfig("vgg16", dataset="cifar10", batch_size=8192, device="cpu").resolved()
        says = f"batch {budget.estimate(cfg).largest_batch(1024 * 2**20):,} fits"
        assert says != "batch 0 fits"
    assert says in at.error[0].value
    assert page_registry.jobs() == [] and "job" not in _params(at)


def _checkpoint_bytes(seed: int) -> bytes:
    """A real checkpoint of an untrained MLP for Fashion-MNIST (the seed makes each file different)."""
    torch.manual_seed(seed)
    model = build_model("mlp", (1, 28, 28), 10, None)
    meta = make_meta(arch="mlp", downsample=None, dataset={"name": "fashion-mnist", "source": "test"},
                     in_shape=(1, 28, 28), num_classes=10, train={"seed": seed}, history=[], complete=True,
                     reason="completed", model=model)
    with tempfile.TemporaryDirectory() as folder:
        return save_checkpoint(Path(folder) / "up.pt", meta, model).read_bytes()


def test_uploads_are_shared_once_freed_with_the_last_holder_and_capped_together():
    from cnnviz.checkpoints import CheckpointError
    from pages.ui import loaders

    cache = loaders.SharedUploads(limit_mb=3)  # one untrained MLP holds 2.0 MB of float32 weights
    a, b = _checkpoint_bytes(0), _checkpoint_bytes(1)
    first = cache.get(loaders.digest(a), a)
    assert cache.get(loaders.digest(a), a) is first and len(cache) == 1  # a second session: the same copy
    assert cache.held() == loaders.held_bytes(first) == 535_818 * 4
    with pytest.raises(CheckpointError) as e:  # a second file would go over the cap while the first is held
        cache.get(loaders.digest(b), b)
    _one_line(str(e.value))
    assert "at most 3 MB for everyone together" in str(e.value)
    del first
    gc.collect()
    assert len(cache) == 0 and cache.held() == 0  # nobody holds it: freed
    assert cache.get(loaders.digest(b), b) is not None


@pytest.mark.slow
def test_an_upload_is_freed_when_the_session_that_uploaded_it_ends(page_registry):
    from pages.ui import loaders

    loaders.shared_uploads.clear()
    at = _open({"part": "Compare"})
    at.file_uploader(key="c_upload").set_value(("mine.pt", _checkpoint_bytes(0), "application/octet-stream")).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert len(loaders.shared_uploads()) == 1
    at.file_uploader(key="c_upload").set_value([]).run()  # removed from the uploader: let go at once
    assert len(loaders.shared_uploads()) == 0
    at.file_uploader(key="c_upload").set_value(("mine.pt", _checkpoint_bytes(0), "application/octet-stream")).run()
    assert len(loaders.shared_uploads()) == 1
    del at  # the tab is closed and Streamlit drops its session
    gc.collect()
    assert len(loaders.shared_uploads()) == 0


@pytest.mark.slow
@pytest.mark.data
def test_the_finished_run_names_its_file_not_the_servers_path(page_registry):
    at = _open()
    at.selectbox(key="t_subset").select(2048).run()
    _train(at)
    job = page_registry.jobs()[-1]
    snap = page_registry.wait(job.id, WAIT)
    assert snap.state == "completed", snap.reason
    at.run()
    shown = [c.value for c in at.caption if c.value.startswith("Checkpoint: ")]
    assert shown == [f"Checkpoint: `{snap.checkpoint.name}` (in your runs, on the Compare tab)"]
    assert str(snap.checkpoint.parent) not in " ".join(c.value for c in at.caption)


def _polling_intervals(monkeypatch) -> list[list[float]]:
    """Per script run, the `run_every` intervals its fragments asked the browser for (auto_rerun messages)."""
    from streamlit.testing.v1 import local_script_runner

    runs: list[list[float]] = []
    real = local_script_runner.parse_tree_from_messages

    def recording(msgs):
        runs.append([m.auto_rerun.interval for m in msgs if m.WhichOneof("type") == "auto_rerun"])
        return real(msgs)

    monkeypatch.setattr(local_script_runner, "parse_tree_from_messages", recording)
    return runs


@pytest.mark.slow
def test_a_queued_job_polls_every_5_s_a_running_one_every_second_and_a_finished_one_not_at_all(
        page_registry, blocked, monkeypatch):
    from cnnviz.config import RunConfig

    runs = _polling_intervals(monkeypatch)
    someone_else = page_registry.submit(RunConfig("mlp"), owner="another student")  # holds the only slot
    at = _open()
    _train(at)
    mine = next(j for j in page_registry.jobs() if j.id != someone_else.id)
    assert mine.state == "queued" and runs[-1] == [5.0]
    page_registry.cancel(someone_else.id)
    assert mine.wait_for(lambda s: s.state == "running", 60).state == "running"
    at.run()
    assert runs[-1] == [1.0]
    page_registry.cancel(mine.id)
    assert mine.wait(60).done
    at.run()
    assert runs[-1] == [] and any("Stopped after 0 of 1 epochs" in w.value for w in at.warning)
