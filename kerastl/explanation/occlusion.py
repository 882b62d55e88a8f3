"""Where a model looks, by occlusion sensitivity (Zeiler & Fergus 2014): cover one patch of the image
at a time and measure how much the model's confidence in a class drops. Forward passes only, so
the map is the same on every backend (no gradients, unlike Grad-CAM).

Confidence is measured in log-odds, log(p / (1 - p)): a confident model's probability barely moves
(0.9999 -> 0.999 is a drop of 0.0009) while its log-odds fall by 2.3, so the map shows what a
correct, confident prediction rests on too."""

from __future__ import annotations

from typing import Callable

import numpy as np

Predict = Callable[[np.ndarray], np.ndarray]  # raw pixels [n, h, w, c] -> probabilities [n, classes]


def occlusion_map(predict: Predict, image: np.ndarray, target: int, patch: int = 6, stride: int = 2,
                  fill: float = 0.0) -> np.ndarray:
    """[h, w]: for every pixel, the mean drop in the log-odds of `target` over the patches that
    cover it (positive: covering it hides evidence for `target`). `fill` is the covering value
    (0: the black background of MNIST digits)."""
    height, width = image.shape[:2]
    tops = list(range(0, height - patch + 1, stride))
    lefts = list(range(0, width - patch + 1, stride))
    covered = np.repeat(image[None].astype("float32"), len(tops) * len(lefts), axis=0)
    boxes = [(top, left) for top in tops for left in lefts]
    for k, (top, left) in enumerate(boxes):
        covered[k, top : top + patch, left : left + patch] = fill
    base = log_odds(np.asarray(predict(image[None].astype("float32")))[:, target])[0]
    drops = base - log_odds(np.asarray(predict(covered))[:, target])
    total = np.zeros((height, width), "float64")
    counts = np.zeros((height, width), "float64")
    for drop, (top, left) in zip(drops, boxes):
        total[top : top + patch, left : left + patch] += drop
        counts[top : top + patch, left : left + patch] += 1
    return np.divide(total, counts, out=np.zeros_like(total), where=counts > 0).astype("float32")


def log_odds(p: np.ndarray) -> np.ndarray:
    p = np.clip(p.astype("float64"), 1e-7, 1 - 1e-7)  # as Keras clips probabilities in its cross-entropy
    return np.log(p) - np.log1p(-p)


def chosen_images(y_true: np.ndarray, probabilities: np.ndarray, mistakes: int, correct: int) -> list[int]:
    """The most confident mistakes, then `correct` confidently right images of different classes."""
    predicted = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    wrong = np.flatnonzero(predicted != y_true)
    wrong = wrong[np.argsort(-confidence[wrong], kind="stable")][:mistakes]
    right = np.flatnonzero(predicted == y_true)
    right = right[np.argsort(-confidence[right], kind="stable")]
    shown, classes = [], set()
    for i in right:
        if len(shown) == correct:
            break
        if y_true[i] not in classes:
            shown.append(int(i))
            classes.add(y_true[i])
    return [int(i) for i in wrong] + shown
