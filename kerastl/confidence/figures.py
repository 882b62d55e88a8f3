"""The run folder's two figures of confidence: the reliability diagram (accuracy against the top
probability, before and after temperature scaling) and the histograms of the top score (what
the saved model outputs) for the test pictures and each set of pictures outside every class,
with the abstain threshold."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from kerastl.confidence.calibration import ECE_BINS, expected_calibration_error, reliability
from kerastl.plots import pyplot, save_figure


def reliability_diagram(before: np.ndarray, after: np.ndarray, y: np.ndarray, path: Path, title: str) -> None:
    """Accuracy per bin of the top probability against its mean, for the trained and the calibrated
    probabilities of the test split; the diagonal is perfect calibration."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 5.2))
    ax.plot([0, 100], [0, 100], color="grey", lw=1, ls="--", label="perfectly calibrated")
    for probabilities, name, style in ((before, "trained", "-o"), (after, "temperature-scaled", "-s")):
        bins = reliability(probabilities, y)
        ece = 100 * expected_calibration_error(probabilities, y)
        ax.plot([100 * b["confidence"] for b in bins], [100 * b["accuracy"] for b in bins], style, ms=4,
                label=f"{name} (ECE {ece:.2f} %)")
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.set_xlabel("mean top probability in the bin (%)")
    ax.set_ylabel("accuracy in the bin (%)")
    ax.set_title(f"{title}\nreliability on {len(y):,} test pictures, {ECE_BINS} bins of the top probability")
    ax.legend(loc="upper left")
    fig.tight_layout()
    save_figure(fig, path)


def score_histograms(top_scores: Mapping[str, np.ndarray], threshold: float, path: Path, title: str,
                     inside: str = "test") -> None:
    """The saved model's top score for the test pictures and each outside set, one histogram each
    (share of the set per bin), with the threshold: below it the app answers "not sure"."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 4.4))
    edges = np.linspace(0, 1, 41)
    colours = iter(plt.get_cmap("tab10").colors)
    for name, scores in top_scores.items():
        share = np.histogram(np.clip(scores, 0, 1), edges)[0] / max(len(scores), 1) * 100
        answered = 100 * float(np.mean(scores >= threshold))
        label = f"{name} ({len(scores):,}; answered {answered:.1f} %)"
        ax.stairs(share, 100 * edges, lw=2.4 if name == inside else 1.5, label=label,
                  color="black" if name == inside else next(colours))
    ax.axvline(100 * threshold, color="red", ls="--", lw=1.2, label=f"threshold {100 * threshold:.1f} %")
    ax.set_yscale("log")
    ax.set_xlabel("top score of the saved model (%)")
    ax.set_ylabel("share of the set in the bin (%, log scale)")
    ax.set_title(f"{title}\ntop score, pictures of the classes ({inside}) against pictures of none")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
