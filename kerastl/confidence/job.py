"""The step `fit` runs after the last stage: fit the temperature on the validation split, the
detector on (a seeded share of) the training split, the gate's midpoint and the abstain threshold
on the validation split; measure on the test split and on pictures outside every class; return
the gated model that model.keras saves, and what metrics.json records under "confidence".

A run without a validation split fits none of it: calibrating or choosing a threshold on the
test split would report numbers the test split cannot check, and a made-up one would abstain at
random. Its model.keras outputs the trained probabilities, and nothing abstains."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from kerastl import runs
from kerastl.confidence import calibration, threshold
from kerastl.confidence.detector import GaussianDetector, auroc, energy
from kerastl.confidence.features import features_and_logits
from kerastl.confidence.model import Gate, gated_model
from kerastl.errors import first_line
from kerastl.log import Log

OUTSIDE_LIMIT = 2_000  # pictures per outside set a run measures (benchmarks/outside_pictures.py measures all)
DETECTOR_IMAGES = 20_000  # training pictures the detector's means and covariance are estimated on, at most
TAU_QUANTILE = 0.995  # the weight is 1/2 at this quantile of the validation pictures' smallest distances ...
SOFTNESS = 4.0  # ... and falls from about 0.98 to 0.02 over 2 x 4 scales, a scale = (tau - median) / SOFTNESS
NO_VALIDATION = ("confidence: no validation split, so no temperature, detector or abstain threshold is fitted "
                 "(none is made up); model.keras outputs the trained probabilities and nothing abstains")


@dataclass
class Fitted:
    model: Any  # the gated keras.Model
    gate: Gate
    threshold: float
    metrics: dict[str, Any]
    test_probabilities: np.ndarray  # the trained model's (uncalibrated) test probabilities, for the run's own scores
    test_logits: np.ndarray
    test_labels: np.ndarray
    top_scores: dict[str, np.ndarray]  # the gated top score of the test pictures ("test") and of each outside set


def write_figures(run_dir, fitted: Fitted, title: str, log: Log = print) -> None:
    """reliability.png and abstain_scores.png in the run folder (kerastl.confidence.figures)."""
    from kerastl.confidence import figures  # deferred: kerastl.plots imports kerastl.history, which imports Keras

    if len(fitted.test_labels) == 0:
        return
    try:  # a figure that fails to draw must not cost the trained run
        figures.reliability_diagram(calibration.softmax(fitted.test_logits), calibration.softmax(fitted.test_logits, fitted.gate.temperature),
                                    fitted.test_labels, Path(run_dir) / runs.RELIABILITY, title)
        figures.score_histograms(fitted.top_scores, fitted.threshold, Path(run_dir) / runs.ABSTAIN_SCORES, title)
    except Exception as exc:
        log(f"figures: confidence figures not drawn ({first_line(exc)})")


def fit(model, splits, config: Mapping[str, Any], outside_sets: Mapping[str, Any], log: Log = print) -> Fitted | None:
    """The gate and threshold of a trained model, measured on the test split and on `outside_sets`
    ({name: a function making uint8 pictures}); None (and a log line) without a validation split."""
    if len(splits.y_val) == 0:
        log(NO_VALIDATION)
        return None
    started = time.perf_counter()
    batch = config["batch_size"]
    keep = threshold.keep_of(config)
    val_features, val_logits = features_and_logits(model, splits.x_val, batch)
    temperature = calibration.fit_temperature(val_logits, splits.y_val)

    chosen = np.random.default_rng(config["seed"]).permutation(len(splits.y_train))[:DETECTOR_IMAGES]
    chosen.sort()  # file-backed folder images read in order
    subset = splits.x_train[chosen]
    if hasattr(subset, "cached_at"):  # an image folder's files: the run's cache holds every training image, not these
        subset = subset.cached_at(None)
    train_features, _ = features_and_logits(model, subset, batch)
    detector = GaussianDetector.fit(train_features, splits.y_train[chosen], len(val_logits[0]))
    gate = midpoint_gate(temperature, detector, detector.min_distance(val_features))
    val_top = gate.scores(val_logits, val_features).max(axis=1)
    chosen_threshold = threshold.choose(val_top, keep)

    test_features, test_logits = features_and_logits(model, splits.x_test, batch)
    top_scores = {"test": gate.scores(test_logits, test_features).max(axis=1)}
    metrics = {
        "temperature": round(temperature, 5),
        "validation_nll_before": calibration.nll(val_logits, splits.y_val),
        "validation_nll_after": calibration.nll(val_logits, splits.y_val, temperature),
        "detector": detector.describe(f"{len(chosen)} training pictures"),
        "tau": round(gate.tau, 4), "scale": round(gate.scale, 4),
        threshold.KEY: keep, "threshold": chosen_threshold,
        "validation_answered": float(threshold.answered(val_top, chosen_threshold).mean()),
        **(answer_metrics(test_logits, splits.y_test, temperature, gate.scores(test_logits, test_features).max(axis=1),
                          chosen_threshold) if len(splits.y_test) else {}),
    }
    log(f"confidence: temperature {temperature:.3f} (validation NLL {metrics['validation_nll_before']:.4f} -> "
        f"{metrics['validation_nll_after']:.4f}); abstain below {chosen_threshold:.4f} "
        f"(keeps {100 * keep:g} % of validation pictures); test ECE {100 * metrics['test_ece_before']:.2f} % -> "
        f"{100 * metrics['test_ece_after']:.2f} %, answered {100 * metrics['test_answered']:.2f} % of test pictures, "
        f"{100 * metrics['test_answered_accuracy']:.2f} % of them right")
    if outside_sets:
        metrics["outside"] = measure_outside(model, gate, chosen_threshold, outside_sets, test_logits, test_features, batch,
                                             top_scores)
        log("confidence: answered at the threshold (AUROC of the top score against the test pictures): " + "; ".join(
            f"{name} {100 * m['answered']:.1f} % ({m['auroc_gated']:.3f})" for name, m in metrics["outside"].items()))
    metrics["seconds"] = round(time.perf_counter() - started, 3)
    return Fitted(gated_model(model, gate), gate, chosen_threshold, metrics, calibration.softmax(test_logits).astype("float32"),
                  test_logits, np.asarray(splits.y_test), top_scores)


def midpoint_gate(temperature: float, detector: GaussianDetector, val_distances: np.ndarray) -> Gate:
    """The gate whose weight is 1/2 at TAU_QUANTILE of `val_distances` (smallest distances of
    pictures the detector did not see) and falls over SOFTNESS scales."""
    tau = float(np.quantile(val_distances, TAU_QUANTILE))
    scale = max((tau - float(np.median(val_distances))) / SOFTNESS, 1e-6 * max(tau, 1.0))
    return Gate(temperature, detector, tau, scale)


def answer_metrics(logits: np.ndarray, y: np.ndarray, temperature: float, top: np.ndarray, chosen: float) -> dict[str, float]:
    """Calibration before and after the temperature, and the share of pictures answered at the
    threshold (`top`: their gated top scores) and how many of those answers were right."""
    before, after = calibration.softmax(logits), calibration.softmax(logits, temperature)
    kept = threshold.answered(top, chosen)
    right = before.argmax(axis=1) == y
    return {
        "test_ece_before": calibration.expected_calibration_error(before, y),
        "test_ece_after": calibration.expected_calibration_error(after, y),
        "test_nll_before": calibration.nll(logits, y), "test_nll_after": calibration.nll(logits, y, temperature),
        "test_answered": float(kept.mean()),
        "test_answered_accuracy": float(right[kept].mean()) if kept.any() else 0.0,
    }


def measure_outside(model, gate: Gate, chosen: float, sets: Mapping[str, Any], inside_logits: np.ndarray,
                    inside_features: np.ndarray, batch_size: int, top_scores: dict | None = None) -> dict[str, dict[str, float]]:
    """Per outside set: the share answered at the threshold, and the AUROC of the gated top score
    against the inside pictures, beside the AUROC of the baselines (top softmax probability,
    energy, the Mahalanobis distance alone). `top_scores` (if given) receives each set's gated top scores."""
    inside = _scores(gate, inside_logits, inside_features)
    out = {}
    for name, make in sets.items():
        features, logits = features_and_logits(model, make(), batch_size)
        outside = _scores(gate, logits, features)
        if top_scores is not None:
            top_scores[name] = outside["gated"]
        out[name] = {"pictures": len(logits), "answered": float(threshold.answered(outside["gated"], chosen).mean()),
                     **{f"auroc_{score}": auroc(inside[score], outside[score]) for score in inside}}
    return out


def _scores(gate: Gate, logits: np.ndarray, features: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "gated": gate.scores(logits, features).max(axis=1),
        "max_softmax": calibration.softmax(logits, gate.temperature).max(axis=1),
        "energy": energy(logits, gate.temperature),
        "mahalanobis": -gate.detector.min_distance(features),
    }
