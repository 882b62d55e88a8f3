"""Knowing when not to answer, for a teach session's transfer model: kerastl.confidence's gate
(temperature, class-conditional Gaussian detector, midpoint, abstain threshold), fitted on the
session's pictures alone, as `fit` fits it on a validation split (kerastl.confidence.job):

- the temperature on the held-out answers teach scored anyway (each picture answered by a head
  that did not train on it; their log-probabilities serve as logits: softmax forgets the constant);
- the detector on every picture's backbone features (the final head's features: the backbone is
  frozen, so the cached ones are exactly what the assembled model's classifier reads);
- the midpoint from held-out distances: per fold, a detector fitted on the fold's training
  pictures, the distances of its held-out pictures;
- the threshold keeping `keep_in_distribution` of the held-out pictures answered, their gated top
  scores made of those held-out answers and distances.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from kerastl.confidence import calibration, threshold
from kerastl.confidence.detector import GaussianDetector
from kerastl.confidence.job import answer_metrics, midpoint_gate
from kerastl.confidence.model import Gate

SMALLEST_PROBABILITY = 1e-12  # a held-out probability of 0 (float32 underflow) has no logarithm


@dataclass(frozen=True)
class FittedGate:
    gate: Gate
    threshold: float
    metrics: dict[str, Any]  # what metrics.json records under "confidence" (kerastl.confidence.threshold.of_run reads it)


def held_out_distances(features: np.ndarray, targets: np.ndarray, classes: int, train: np.ndarray, held: np.ndarray) -> np.ndarray:
    """The smallest distances of the pictures `held` to the classes of a detector fitted on the pictures `train`."""
    return GaussianDetector.fit(features[train], targets[train], classes).min_distance(features[held])


def fit(features: np.ndarray, targets: np.ndarray, classes: int, score, distances: np.ndarray, keep: float) -> FittedGate:
    """The gate of a model whose features of every picture are `features` (labels `targets`), from
    its held-out answers `score` (a kerastl.teach.training.Score) and the held-out `distances` of
    the same pictures, in the score's order (score.scored)."""
    logits = np.log(np.maximum(np.asarray(score.probabilities, "float64"), SMALLEST_PROBABILITY))
    labels = np.asarray(score.labels)
    temperature = calibration.fit_temperature(logits, labels)
    detector = GaussianDetector.fit(features, targets, classes)
    gate = midpoint_gate(temperature, detector, distances)
    top = (calibration.softmax(logits, temperature) * gate.weight(distances)[:, None]).max(axis=1)
    chosen = threshold.choose(top, keep)
    metrics = {
        "temperature": round(temperature, 5),
        "fitted_on": f"kerastl.teach: {len(labels)} held-out answers ({score.scored_by}), the session's pictures only",
        "detector": detector.describe(f"{len(targets)} pictures"),
        "tau": round(gate.tau, 4), "scale": round(gate.scale, 4),
        threshold.KEY: keep, "threshold": chosen,
        **answer_metrics(logits, labels, temperature, top, chosen),
    }
    return FittedGate(gate, chosen, metrics)
