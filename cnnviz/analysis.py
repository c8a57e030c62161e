"""What a trained run gets right and wrong on the real test set: predictions, confusion, diffs."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import derived
from .data import Dataset
from .train import evaluate


@dataclass
class Predictions:
    pred: np.ndarray  # (N,) predicted class per test image
    true: np.ndarray  # (N,)
    classes: tuple[str, ...]

    @property
    def accuracy(self) -> float:
        return float((self.pred == self.true).mean())

    def confusion(self) -> np.ndarray:
        """(K, K) counts: row = true class, column = predicted class."""
        k = len(self.classes)
        return np.bincount(self.true * k + self.pred, minlength=k * k).reshape(k, k)

    def per_class_accuracy(self) -> np.ndarray:
        cm = self.confusion()
        return cm.diagonal() / np.maximum(cm.sum(1), 1)

    def misclassified(self, limit: int = 36) -> np.ndarray:
        return np.flatnonzero(self.pred != self.true)[:limit]


def predict(model: torch.nn.Module, data: Dataset, device: str = "cpu") -> Predictions:
    _, _, pred = evaluate(model, data, "test", device, return_predictions=True)
    return Predictions(pred.numpy(), data.test_y.numpy(), data.classes)


def predictions_of(path, data: Dataset) -> Predictions:
    """The test-set predictions of a checkpoint file: stored ones (`cnnviz.derived`) when they were made from
    this very file and test set, else computed now."""
    value, _ = derived.get("predictions", [path], data, {})
    return Predictions(derived.decode_classes(value["pred"]), data.test_y.numpy(), data.classes)


@dataclass
class RunDiff:
    confusion_delta: np.ndarray  # B - A counts
    per_class_delta: np.ndarray  # B - A accuracy per class
    a_right_b_wrong: np.ndarray  # test indices
    b_right_a_wrong: np.ndarray


def run_diff(a: Predictions, b: Predictions) -> RunDiff:
    """How run B differs from run A on the same test set (all zeros for a run against itself)."""
    if len(a.true) != len(b.true) or not np.array_equal(a.true, b.true):
        raise ValueError("the two runs were evaluated on different test sets")
    ra, rb = a.pred == a.true, b.pred == b.true
    return RunDiff(b.confusion() - a.confusion(), b.per_class_accuracy() - a.per_class_accuracy(),
                   np.flatnonzero(ra & ~rb), np.flatnonzero(rb & ~ra))
