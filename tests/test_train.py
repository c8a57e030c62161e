"""The training loop learns real data, is reproducible, and hands back what it did when stopped or broken."""
from __future__ import annotations

import dataclasses
import itertools

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnviz.config import RunConfig
from cnnviz.models import build_model
from cnnviz.train import evaluate, train

pytestmark = pytest.mark.data
ROW_KEYS = {"epoch", "train_loss", "train_acc", "test_loss", "test_acc", "seconds", "images_per_second",
            "eval_seconds"}


def subset(data, n_train: int, n_test: int):
    """The first images of a real dataset, for tests that check the loop rather than the accuracy."""
    return dataclasses.replace(data, train_x=data.train_x[:n_train], train_y=data.train_y[:n_train],
                               test_x=data.test_x[:n_test], test_y=data.test_y[:n_test])


def fresh(arch: str, data, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(arch, data.shape, len(data.classes))


@pytest.fixture(scope="module")
def small_fmnist(fashion_mnist):
    return subset(fashion_mnist, 1024, 512)


# ---- learning on the full datasets -----------------------------------------------------------

@pytest.mark.slow
def test_lenet5_passes_80_percent_on_fashion_mnist_after_one_epoch(fashion_mnist):
    # batch 128 (469 Adam steps): the default 1024 gives only 59 steps, ~73% after one epoch.
    result = train(fresh("lenet5", fashion_mnist), fashion_mnist,
                   RunConfig(arch="lenet5", epochs=1, lr=1e-3, batch_size=128, device="cpu", seed=0))
    assert result.completed and result.reason == "completed"
    (row,) = result.history
    assert set(row) == ROW_KEYS and row["epoch"] == 1
    assert row["test_acc"] > 0.80, row
    assert row["train_loss"] < 1.0 and row["images_per_second"] > 0


@pytest.mark.slow
def test_mlp_passes_30_percent_on_cifar10_after_one_epoch(cifar10):
    result = train(fresh("mlp", cifar10), cifar10, RunConfig(arch="mlp", epochs=1, lr=1e-3, device="cpu", seed=0))
    assert result.completed
    assert result.history[0]["test_acc"] > 0.30, result.history  # chance is 10%


# ---- the loop's contract (small real subsets) ---------------------------------------------------

def test_same_seed_gives_identical_losses_and_another_seed_does_not(small_fmnist):
    def run(seed):
        r = train(fresh("lenet5", small_fmnist, seed), small_fmnist,
                  RunConfig(arch="lenet5", epochs=2, batch_size=256, device="cpu", seed=seed), snapshots=False)
        return [(h["train_loss"], h["train_acc"], h["test_loss"], h["test_acc"]) for h in r.history]

    first = run(0)
    assert len(first) == 2
    assert run(0) == first
    assert run(1) != first


def test_training_changes_only_trainable_weights_and_leaves_eval_mode(small_fmnist):
    model = fresh("engineered", small_fmnist)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train(model, small_fmnist, RunConfig(arch="lenet5", epochs=1, batch_size=256, device="cpu"))
    after = model.state_dict()
    assert torch.equal(after["front.kernels"], before["front.kernels"])  # fixed Sobel/Laplacian
    assert not torch.equal(after["fc1.weight"], before["fc1.weight"])
    assert not model.training


def test_should_stop_ends_the_run_after_the_batch_it_returns_true(small_fmnist):
    calls = itertools.count(1)
    last = []

    def stop_on_third():
        last.append(next(calls))
        return last[-1] >= 3

    # 1024 images / 128 = 8 batches per epoch: the third check is inside epoch 1.
    result = train(fresh("lenet5", small_fmnist), small_fmnist,
                   RunConfig(arch="lenet5", epochs=3, batch_size=128, device="cpu"), should_stop=stop_on_third)
    assert (result.completed, result.reason) == (False, "stopped")
    assert result.history == [] and last[-1] == 3


def test_stopping_in_a_later_epoch_keeps_the_finished_epochs(small_fmnist):
    calls = itertools.count(1)
    result = train(fresh("lenet5", small_fmnist), small_fmnist,  # 4 batches per epoch: stops in epoch 2
                   RunConfig(arch="lenet5", epochs=3, batch_size=256, device="cpu"), should_stop=lambda: next(calls) >= 6)
    assert (result.completed, result.reason) == (False, "stopped")
    assert [h["epoch"] for h in result.history] == [1]
    assert len(result.snapshots) == 2  # the initialisation + after epoch 1


class FailsOnThirdTrainingStep(nn.Module):
    """A real lenet5 whose third training forward pass raises, as a bug or a bad batch would."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner, self.steps = inner, 0

    def forward(self, x):
        if self.training:
            self.steps += 1
            if self.steps == 3:
                raise RuntimeError("boom on step 3")
        return self.inner(x)


def test_an_exception_in_a_training_step_returns_the_epochs_done_and_the_reason(small_fmnist):
    model = FailsOnThirdTrainingStep(fresh("lenet5", small_fmnist))
    # 1024 images / 512 = 2 steps per epoch: epoch 1 completes, epoch 2 fails on its first step.
    result = train(model, small_fmnist, RunConfig(arch="lenet5", epochs=4, batch_size=512, device="cpu"))
    assert result.completed is False
    assert result.reason == "RuntimeError: boom on step 3"
    assert [h["epoch"] for h in result.history] == [1]
    assert not model.training


def test_evaluate_equals_one_forward_pass_over_the_test_set(small_fmnist):
    model = fresh("lenet5", small_fmnist)
    train(model, small_fmnist, RunConfig(arch="lenet5", epochs=1, batch_size=128, device="cpu"))
    loss, acc = evaluate(model, small_fmnist, "test", "cpu", batch_size=100)
    x = (small_fmnist.test_x.float() / 255 - 0.5) / 0.5  # ToTensor + Normalize((0.5,), (0.5,))
    y = small_fmnist.test_y
    with torch.no_grad():
        logits = model(x)  # the whole test subset in one batch, not evaluate's batches of 100
    assert acc == pytest.approx((logits.argmax(1) == y).float().mean().item(), abs=1e-9)
    assert loss == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-4)
    _, _, pred = evaluate(model, small_fmnist, "test", "cpu", return_predictions=True)
    assert pred.shape == (512,) and pred.dtype == torch.int64
