"""Pictures whose folder is probably wrong, and the floor: what a linear model reaches.

Out-of-sample probabilities come from cheap heads fitted out of fold: `FOLDS` stratified folds, a
multinomial logistic regression (scikit-learn) on standardised inputs fitted on the other folds
predicts each fold. Two heads are fitted: on the raw pixels and on the frozen backbone's features.
Their out-of-fold accuracy is the floor any trained run should beat; the features' probabilities
feed confident learning (Northcutt, Jiang and Chuang 2021), written small here rather than taken
from cleanlab (the rule is a dozen lines, and cleanlab's extra machinery is not needed for it):

- each class's threshold is the mean probability of that class over the pictures labelled with it
  (its "self-confidence");
- a picture's likely class is the most probable of the classes whose probability reaches their
  threshold; where that is not its given class, its label is an issue;
- issues are ranked by how little probability the given class gets (the score is 1 minus it).
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass

import numpy as np

from kerastl.inspection.findings import Finding

FOLDS = 5
MAX_ITER = 300
COMPONENTS = 128  # principal components the head sees: a fit in seconds, not minutes, on MNIST's 784 pixels
C = 1.0


@dataclass(frozen=True)
class LabelIssue:
    index: int
    suggested: int  # the class confident learning puts it in
    self_confidence: float  # the out-of-fold probability of its given class
    suggested_probability: float


def linear_head(width: int, samples: int, seed: int = 0):
    """Standardise, keep the first `COMPONENTS` principal components, multinomial logistic regression:
    a scikit-learn pipeline for `samples` training rows of `width` numbers."""
    from sklearn.decomposition import PCA  # scikit-learn: deferred, as everywhere in kerastl
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), PCA(min(COMPONENTS, width, samples), random_state=seed),
                         LogisticRegression(max_iter=MAX_ITER, C=C))


@contextlib.contextmanager
def _converged_enough():
    from sklearn.exceptions import ConvergenceWarning  # scikit-learn: deferred

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the last iterations barely move the probabilities
        yield


def fitted_head(inputs: np.ndarray, labels: np.ndarray, seed: int = 0):
    """`linear_head` fitted on `inputs` [n, ...]."""
    inputs = inputs.reshape(len(inputs), -1).astype("float32")
    head = linear_head(inputs.shape[1], len(inputs), seed)
    with _converged_enough():
        return head.fit(inputs, labels)


def out_of_fold_probabilities(inputs: np.ndarray, labels: np.ndarray, seed: int = 0) -> np.ndarray | None:
    """float [n, classes]: each picture's probabilities from a head that never saw it; None where a
    class has fewer than 2 pictures (no fold could hold one out)."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict  # scikit-learn: deferred

    counts = np.bincount(labels)
    folds = min(FOLDS, int(counts[counts > 0].min()))
    if folds < 2 or (counts == 0).any():
        return None
    inputs = inputs.reshape(len(inputs), -1).astype("float32")
    head = linear_head(inputs.shape[1], len(inputs) * (folds - 1) // folds, seed)
    with _converged_enough():
        return cross_val_predict(head, inputs, labels, cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
                                 method="predict_proba")


def confident_learning(probabilities: np.ndarray, labels: np.ndarray) -> list[LabelIssue]:
    """The pictures whose likely class is not their given one, least self-confident first."""
    classes = probabilities.shape[1]
    thresholds = np.array([probabilities[labels == c, c].mean() if (labels == c).any() else 1.0 for c in range(classes)])
    above = probabilities >= thresholds[None, :]
    likely = np.where(above.any(axis=1), np.where(above, probabilities, -1.0).argmax(axis=1), labels)
    self_confidence = probabilities[np.arange(len(labels)), labels]
    issues = [LabelIssue(int(i), int(likely[i]), float(self_confidence[i]), float(probabilities[i, likely[i]]))
              for i in np.flatnonzero(likely != labels)]
    return sorted(issues, key=lambda issue: issue.self_confidence)


def accuracy(probabilities: np.ndarray | None, labels: np.ndarray) -> float | None:
    return None if probabilities is None else float((probabilities.argmax(axis=1) == labels).mean())


def label_findings(found, probabilities: np.ndarray | None) -> list[Finding]:
    """`label` rows for `found` (kerastl.inspection.pictures.Pictures) from out-of-fold probabilities, worst first."""
    if probabilities is None:
        return []
    rows = []
    for issue in confident_learning(probabilities, found.labels):
        given, suggested = found.class_names[found.labels[issue.index]], found.class_names[issue.suggested]
        rows.append(Finding("label", str(found.names[issue.index]), suggested, round(1 - issue.self_confidence, 4),
                            f"in {given}; a head that never saw it gives {given} {issue.self_confidence:.0%} and "
                            f"{suggested} {issue.suggested_probability:.0%}"))
    return rows
