"""Seeded train / validation / test splits. Validation is carved from the train split, never test."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kerastl.errors import UserError


@dataclass
class Splits:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.y_train), "validation": len(self.y_val), "test": len(self.y_test)}


def make_splits(
    arrays: dict[str, np.ndarray],
    validation_fraction: float = 0.1,
    limit: int | None = None,
    test_limit: int | None = None,
    seed: int = 0,
    per_class: int | None = None,
) -> Splits:
    """Shuffle the official train split with `seed`, carve validation, then keep `limit` train images.

    With `limit`, validation shrinks in proportion (`validation_fraction` of limit, at least 10) so a
    quick run stays quick. `per_class` instead draws a class-balanced subset (see `balanced_indices`).
    `test_limit` keeps the first N test images (for smoke tests only; the
    metrics of a run record how many test images were scored). Where `arrays` has its own
    validation images ("x_val", "y_val": an image folder's), they validate and nothing is carved.
    """
    if "x_val" in arrays:
        return _with_given_validation(arrays, limit, test_limit, seed, per_class)
    y = arrays["y_train"]
    if per_class is not None:
        if limit is not None:
            raise UserError("use --limit or --per-class, not both")
        val_idx, train_idx = balanced_indices(y, per_class, validation_fraction, seed)
        return _split(arrays, train_idx, val_idx, test_limit)
    order = np.random.default_rng(seed).permutation(len(y))
    if limit is None:
        n_val = int(round(len(y) * validation_fraction))
        n_train = len(y) - n_val
    else:
        def validation_size(n_train: int) -> int:
            return max(10, int(round(n_train * validation_fraction))) if validation_fraction > 0 else 0

        n_val = validation_size(limit)
        n_train = limit
        if n_val + n_train > len(y):
            most = next(n for n in range(len(y), 0, -1) if n + validation_size(n) <= len(y))
            raise UserError(
                f"--limit {limit} plus {n_val} validation images exceeds the {len(y)} training images; "
                f"use --limit {most} or less"
            )
    return _split(arrays, order[n_val : n_val + n_train], order[:n_val], test_limit)


def balanced_indices(y: np.ndarray, per_class: int, validation_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(validation, train) indices: `per_class` labelled images of every class, seeded.

    Validation comes out of the same budget: `validation_fraction` of it per class, at least one
    image per class (none if the fraction is 0), so a study at N images per class never sees more
    than N labels of a class. Both index arrays are shuffled.
    """
    classes, counts = np.unique(y, return_counts=True)
    smallest = int(counts.min())
    if per_class > smallest:
        raise UserError(
            f"--per-class {per_class} is more than class {classes[counts.argmin()]} has ({smallest} training images); "
            f"use at most {smallest}, or leave --per-class out to train on all images"
        )
    n_val = max(1, int(round(per_class * validation_fraction))) if validation_fraction > 0 else 0
    if per_class - n_val < 1:
        raise UserError(f"--per-class {per_class} leaves no training image once {n_val} per class go to validation; use at least {n_val + 1}")
    rng = np.random.default_rng(seed)
    val, train = [], []
    for c in classes:
        chosen = rng.permutation(np.flatnonzero(y == c))[:per_class]
        val.append(chosen[:n_val])
        train.append(chosen[n_val:])
    return rng.permutation(np.concatenate(val)), rng.permutation(np.concatenate(train))


def _with_given_validation(arrays, limit, test_limit, seed, per_class) -> Splits:
    y = arrays["y_train"]
    if per_class is not None and limit is not None:
        raise UserError("use --limit or --per-class, not both")
    if per_class is not None:
        _, train_idx = balanced_indices(y, per_class, 0.0, seed)
    elif limit is not None:
        if limit > len(y):
            raise UserError(f"--limit {limit} exceeds the {len(y)} training images; use --limit {len(y)} or less")
        train_idx = np.random.default_rng(seed).permutation(len(y))[:limit]
    else:
        train_idx = np.arange(len(y))
    x_test, y_test = arrays["x_test"], arrays["y_test"]
    if test_limit is not None:
        x_test, y_test = x_test[:test_limit], y_test[:test_limit]
    return Splits(arrays["x_train"][train_idx], y[train_idx], arrays["x_val"], arrays["y_val"], x_test, y_test)


def _split(arrays: dict[str, np.ndarray], train_idx: np.ndarray, val_idx: np.ndarray, test_limit: int | None) -> Splits:
    x, y = arrays["x_train"], arrays["y_train"]
    x_test, y_test = arrays["x_test"], arrays["y_test"]
    if test_limit is not None:
        x_test, y_test = x_test[:test_limit], y_test[:test_limit]
    return Splits(x[train_idx], y[train_idx], x[val_idx], y[val_idx], x_test, y_test)
