"""The home page in AppTest: what it says about this machine is what the library finds on it."""
from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from cnnviz.data import available_sources
from cnnviz.models import list_archs

ROOT = Path(__file__).resolve().parent.parent


def test_home_page_counts_the_shipped_files_and_names_each_datasets_source(fashion_mnist, cifar10):
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120).run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Shipped checkpoints"] == str(len(list((ROOT / "checkpoints").glob("*.pt"))))
    assert metrics["Architectures"] == str(len(list_archs()))
    found = [s.value for s in at.success]
    for name, ds in (("fashion-mnist", fashion_mnist), ("cifar10", cifar10)):
        line = f"{name}: {available_sources()[name]}"
        assert line in found
        assert line.startswith(f"{name}: {ds.source}")  # the original source, also when read from the cache


def test_home_gives_the_lesson_order_with_what_a_student_does_and_the_lectures_part(monkeypatch):
    import torch

    import cnnviz.data
    from pages.ui import nav

    def refuse(*a, **k):
        raise AssertionError("the home page must not load a checkpoint, a model or a dataset")

    monkeypatch.setattr(torch, "load", refuse)  # every checkpoint read goes through torch.load
    monkeypatch.setattr(cnnviz.data, "load_dataset", refuse)
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120).run()
    assert not at.exception, [e.message for e in at.exception]
    assert any(h.value.startswith("Start here") for h in at.subheader)
    links = [(el.proto.label, el.proto.page) for el in at.get("page_link")]
    assert [label for label, _ in links] == [f"{i}. {p.title}" for i, p in enumerate(nav.PAGES, 1)]
    text = [m.value for m in at.markdown]
    for lesson in nav.PAGES:  # its line, and its place in the lecture, from the one page list
        line = next(t for t in text if t.startswith(lesson.does))
        assert all(f"*{part}*" in line for part in lesson.lecture) and (lesson.lecture or "Beyond" in line)
    covered = {part for lesson in nav.PAGES for part in lesson.lecture}
    assert set(nav.OUTLINE) <= covered  # every part of the lecture's outline has its page
