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
) -> Splits:
    """Shuffle the official train split with `seed`, carve validation, then keep `limit` train images.

    With `limit`, validation shrinks in proportion (`validation_fraction` of limit, at least 10) so a
    quick run stays quick. `test_limit` keeps the first N test images (for smoke tests only; the
    metrics of a run record how many test images were scored).
    """
    x, y = arrays["x_train"], arrays["y_train"]
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
    val_idx, train_idx = order[:n_val], order[n_val : n_val + n_train]
    x_test, y_test = arrays["x_test"], arrays["y_test"]
    if test_limit is not None:
        x_test, y_test = x_test[:test_limit], y_test[:test_limit]
    return Splits(x[train_idx], y[train_idx], x[val_idx], y[val_idx], x_test, y_test)
