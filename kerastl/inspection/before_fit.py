"""What `fit` checks on an image folder before it trains: how many validation and test pictures have
a copy in train (exact, or a near copy found from the pictures' own pixels: no backbone, so it costs
seconds; `kerastl.inspect` looks harder), and the floor: a linear model on the raw pixels, fitted on
the training pictures and scored on the test pictures, the accuracy the run should beat."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kerastl.inspection import copies, labels, pictures
from kerastl.log import Log


@dataclass(frozen=True)
class FolderHealth:
    leaked: tuple[str, ...]  # validation/test pictures (paths relative to the folder) with a copy in train
    pixel_floor: float | None  # test accuracy of a linear model on the raw pixels
    seconds: float

    def metrics(self) -> dict:
        return {"copies_in_train": len(self.leaked), "pixel_floor_accuracy": self.pixel_floor,
                "data_check_seconds": round(self.seconds, 2)}


def check_folder(folder, log: Log = print) -> FolderHealth:
    """`folder`: the FolderData of `fit`'s scan, split as the run will use it."""
    start = time.perf_counter()
    entries = [(split, int(label), str(path)) for split, (paths, split_labels) in folder.files.items()
               for path, label in zip(paths, split_labels)]
    found = pictures.from_files(folder.root, folder.class_names, entries, folder.given_splits)
    leaked = copies.find_copies(found).leaked
    train, test = found.splits == "train", found.splits == "test"
    floor = None
    if test.any():
        head = labels.fitted_head(pictures.pixel_inputs(found.thumbs[train]), found.labels[train])
        floor = float((head.predict(pictures.pixel_inputs(found.thumbs[test])) == found.labels[test]).mean())
    health = FolderHealth(tuple(leaked), floor, time.perf_counter() - start)
    root = folder.root
    log(f"data: {len(leaked)} validation/test pictures have a copy in train"
        + (f"; python -m kerastl.inspect {root} lists them" if leaked else f" (checked in {health.seconds:.1f} s)"))
    if floor is not None:
        log(f"data: a linear model on the raw pixels scores {100 * floor:.1f} % on test: the floor this run should beat")
    return health


def accuracy_without(leaked: tuple[str, ...], root, test_paths: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray) -> float | None:
    """Test accuracy over the test pictures that have no copy in train (None if none is left)."""
    relative = np.array([str(Path(p).relative_to(root)) for p in test_paths])
    clean = ~np.isin(relative, list(leaked))
    return float((y_true[clean] == y_pred[clean]).mean()) if clean.any() else None
