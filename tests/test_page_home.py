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
