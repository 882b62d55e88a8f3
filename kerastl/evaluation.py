"""Scoring on the test split from one pass of predictions, kept with the run for its figures.

One `predict` gives the accuracy, the loss and the confusion matrix, instead of an `evaluate` for
the numbers and a second pass for the figures (on a CPU, a backbone's pass over 10,000 test images
costs as much as a small-data training run).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kerastl import runs
from kerastl.data import pipeline
from kerastl.files import atomic_path


def predict_probabilities(model, x: np.ndarray, batch_size: int) -> np.ndarray:
    """Class probabilities for `x`, shape (N, classes), float32 (batches padded to split over the
    devices of a distributed run, and trimmed again)."""
    return np.asarray(pipeline.predict_in_batches(model, x, batch_size), "float32")


def score(probabilities: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(accuracy, mean cross-entropy), as Keras computes them (probabilities clipped to [1e-7, 1-1e-7])."""
    p = np.clip(probabilities[np.arange(len(y)), y], 1e-7, 1 - 1e-7)
    accuracy = float(np.mean(np.argmax(probabilities, axis=1) == y)) if len(y) else 0.0
    return accuracy, float(-np.mean(np.log(p))) if len(y) else 0.0


def save_predictions(run_dir: Path, y_true: np.ndarray, probabilities: np.ndarray) -> None:
    labels = "uint8" if probabilities.shape[-1] <= 256 else "int32"
    with atomic_path(Path(run_dir) / runs.PREDICTIONS, suffix=".npz") as tmp:
        np.savez_compressed(
            tmp, y_true=y_true.astype(labels), y_pred=np.argmax(probabilities, axis=1).astype(labels),
            confidence=probabilities.max(axis=1).astype("float16"),
        )


def load_predictions(run_dir: Path) -> dict[str, np.ndarray]:
    """{"y_true", "y_pred", "confidence"} for the first N test images the run scored."""
    with np.load(Path(run_dir) / runs.PREDICTIONS) as data:
        return {k: data[k] for k in data.files}


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, classes: int = 10) -> np.ndarray:
    """Counts, rows = true class, columns = predicted class."""
    matrix = np.zeros((classes, classes), "int64")
    np.add.at(matrix, (y_true.astype("int64"), y_pred.astype("int64")), 1)
    return matrix
