"""Shared fixtures: the real datasets, loaded once per test session.

A test that needs data must not pass vacuously in CI: under `CI` (set by every CI service) a missing
dataset fails the test with the loader's message (which says how to get the data); on a developer's
machine it skips instead.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the tests run from a checkout, cnnviz is not pip-installed
    sys.path.insert(0, str(ROOT))

from cnnviz.data import DataUnavailable, load_dataset  # noqa: E402
from cnnviz.device import configure_threads  # noqa: E402

configure_threads()  # torch would otherwise start one thread per host core, not per usable core
# What "auto" precision means in the suite's own runs: fixed, not a probe of a machine busy running the suite
# (two seeds of one experiment must not get two precisions). tests/test_precision.py tests the probe itself.
os.environ.setdefault("CNNVIZ_AUTO_PRECISION", "fp32")


def _load_or_give_up(name: str):
    try:
        # No download: tests read what the set-up script put on the machine, never the network.
        return load_dataset(name, download=False)
    except DataUnavailable as e:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing on a CI machine: {e}", pytrace=False)
        pytest.skip(f"{name} not available here: {e}")


@pytest.fixture(scope="session")
def fashion_mnist():
    """The real Fashion-MNIST as a `cnnviz.data.Dataset` (uint8, 60000 + 10000 images)."""
    return _load_or_give_up("fashion-mnist")


@pytest.fixture(scope="session")
def cifar10():
    """The real CIFAR-10 as a `cnnviz.data.Dataset` (uint8, 50000 + 10000 images)."""
    return _load_or_give_up("cifar10")


@pytest.fixture
def seeded():
    """Seed torch's global generator so random test tensors are the same on every run."""
    torch.manual_seed(0)
    return torch.Generator().manual_seed(0)
