"""The abstain threshold: the top score below which an app answers "not sure", chosen on the
validation split so that a stated share of in-distribution pictures is still answered."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from kerastl.config import SCHEMA

KEY = "keep_in_distribution"  # the config key and flag
DEFAULT_KEEP = SCHEMA[KEY].default  # for runs recorded before the key existed


def choose(top_scores: np.ndarray, keep: float) -> float:
    """The largest threshold t with at least `keep` of `top_scores` >= t (a score equal to t is answered)."""
    if len(top_scores) == 0:
        raise ValueError("no validation pictures to choose the threshold on")
    ranked = np.sort(np.asarray(top_scores, "float64"))
    return float(ranked[int(np.floor((1.0 - keep) * len(ranked)))])


def answered(top_scores: np.ndarray, threshold: float) -> np.ndarray:
    """Which pictures get an answer: their top score reaches the threshold."""
    return np.asarray(top_scores) >= threshold


def abstains(probabilities: np.ndarray, threshold: float | None) -> bool:
    """Whether one picture's answer is withheld ("not sure"): a threshold is set and its top score
    does not reach it (the complement of `answered`)."""
    return threshold is not None and not bool(answered(np.max(probabilities), threshold))


def keep_of(config: Mapping[str, Any]) -> float:
    """The share of in-distribution pictures a run's threshold keeps answering (its config's, or the default)."""
    return config.get(KEY) or DEFAULT_KEEP


def of_run(metrics: Mapping[str, Any]) -> float | None:
    """The threshold a finished run recorded in metrics.json, or None (a run without a validation
    split, or one trained before kerastl abstained)."""
    confidence = metrics.get("confidence") or {}
    return confidence.get("threshold")
