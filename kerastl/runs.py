"""Run folders: `saved_models/<run-name>/`, the name of every file in them, and their small files.

A leaf every module may import: it names the files, creates, finds and locks run folders, and reads
and writes config.yaml, labels.txt and metrics.json. Writing a finished run (the model, predictions,
figures) and opening one again (`Run`) is kerastl.finished_run's.

A finished run folder holds only what a user needs (every name is declared here, once):

    model.keras           the trained model; takes raw pixels (28x28x1 for MNIST), returns class
                          probabilities; opens with plain `keras.saving.load_model`
    config.yaml           the run's config, resolved and sized to the data and devices before the
                          folder was made, written once, first (a resume continues with it)
    history.csv           one row per epoch
    labels.txt            the class names, one per line, in the order of the model's outputs
    dataset_split.csv     image folders only: every image's split, class and path
    test_predictions.npz  the test labels, predicted classes and confidences
    curves.png            accuracy and loss by epoch, per stage
    confusion.png         the test confusion matrix
    metrics.json          test accuracy, timings, the schedule, ...; written last, it marks the run finished
    backbone.weights.h5   pretrain only: the backbone for `--weights` of a later transfer run
    lr_find.json          --lr find: each swept stage's learning rates and losses (kerastl.lr_finder)
    lr_find.png           --lr find: the sweeps drawn, the suggestions marked
    export/               after `kerastl.export` (its files: kerastl.export)

While a run trains it also holds `backup/` (what `--resume` needs, see kerastl.resume) and `.lock`
(held by the training process, so a second one cannot resume or write a live run). Both are
removed when the run finishes. Every file is written to a temporary name and renamed into place.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

import yaml

from kerastl.config import DEFAULTS, read_yaml
from kerastl.errors import UserError
from kerastl.files import atomic_write_text

MODEL = "model.keras"
CONFIG = "config.yaml"
HISTORY = "history.csv"
METRICS = "metrics.json"
BACKBONE_WEIGHTS = "backbone.weights.h5"
SPLIT_FILE = "dataset_split.csv"
PREDICTIONS = "test_predictions.npz"
CURVES = "curves.png"
CONFUSION = "confusion.png"
RELIABILITY = "reliability.png"  # kerastl.confidence: calibration before and after temperature scaling
ABSTAIN_SCORES = "abstain_scores.png"  # kerastl.confidence: top scores of the test pictures and of pictures of no class
LR_FIND = "lr_find.json"  # --lr find (kerastl.lr_finder)
LR_FIND_FIGURE = "lr_find.png"
EXPORT_DIR = "export"
LABELS = "labels.txt"  # in the run folder and export/: one class name per line, in output order
TENSORBOARD = "tensorboard"  # --tensorboard: one folder of logs per stage
BACKUP = "backup"
IMAGE_CACHE = f"{BACKUP}/image-cache"  # an image folder's decoded training images, while the run trains
LOCK = ".lock"


def report_folder(output_dir: str | Path | None, kind: str, dataset: str) -> Path:
    """Where a report command writes (`explain`, `inspect`): `output_dir` if new or empty, else by
    default saved_models/<kind>-<dataset>-<time>."""
    if output_dir is None:
        return Path(DEFAULTS["output_dir"]) / f"{kind}-{Path(dataset).name}-{time.strftime('%Y%m%d-%H%M%S')}"
    folder = Path(output_dir).expanduser()
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise UserError(f"--output-dir {folder} already exists and is not an empty folder; choose a new one")
    return folder


def is_complete(run_dir: Path) -> bool:
    return (run_dir / METRICS).is_file()


def default_name(mode: str, dataset: str) -> str:
    return f"{mode}-{Path(dataset).name}-{time.strftime('%Y%m%d-%H%M%S')}"


# Create, find and lock a run folder


def create_run_dir(output_dir: str | Path, run_name: str | None, mode: str, dataset: str) -> Path:
    """Make a new, empty run folder. `mkdir` is atomic, so two processes never share one: a
    default name that is taken (two runs started in the same second) gets a suffix -2, -3, ..."""
    root = Path(output_dir).expanduser()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the output folder {root}: {exc.strerror or exc}") from None
    name = run_name or default_name(mode, dataset)
    for attempt in range(1, 1000):
        run_dir = root / (name if attempt == 1 else f"{name}-{attempt}")
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            if run_name:
                hint = "" if is_complete(run_dir) else " (it is unfinished: add --resume to continue it)"
                raise UserError(f"run folder {run_dir} already exists{hint}; choose another --run-name") from None
        except OSError as exc:
            raise UserError(f"cannot write in the output folder {root}: {exc.strerror or exc}") from None
    raise UserError(f"too many runs named {name} in {root}; choose a --run-name")


def find_resumable(output_dir: str | Path, run_name: str | None, mode: str) -> Path:
    """The run to resume: `run_name`, else the newest unfinished run of `mode`."""
    root = Path(output_dir).expanduser()
    if run_name:
        run_dir = root / run_name
        if not (run_dir / CONFIG).is_file():
            raise UserError(f"--resume: no run folder {run_dir}")
        return run_dir
    candidates = [
        d for d in root.glob(f"{mode}-*") if (d / CONFIG).is_file() and not is_complete(d)
    ] if root.is_dir() else []
    if not candidates:
        raise UserError(f"--resume: no unfinished {mode} run in {root}")
    return max(candidates, key=lambda d: (d / CONFIG).stat().st_mtime)


@contextlib.contextmanager
def lock(run_dir: Path) -> Iterator[None]:
    """Hold the run folder's lock: a second process (or a second call in this one) that tries to
    resume, train or export into the folder meanwhile gets a UserError. The kernel releases the
    lock when the process dies, even by SIGKILL; the lock file is removed when the block ends."""
    path = run_dir / LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise UserError(f"cannot write in the run folder {run_dir}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip()
            pid = f" (pid {owner})" if owner.isdigit() else ""
            raise UserError(f"{run_dir} is in use by another kerastl process{pid}; wait for it to finish") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
    finally:
        os.close(fd)


def remove_scaffolding(run_dir: Path) -> None:
    """Delete what only a resume needs, once the run is finished."""
    shutil.rmtree(run_dir / BACKUP, ignore_errors=True)


def remove_run(run_dir: Path) -> None:
    shutil.rmtree(run_dir, ignore_errors=True)


# The files of a run


def write_config(run_dir: Path, config: Mapping[str, Any]) -> None:
    atomic_write_text(run_dir / CONFIG, yaml.safe_dump(dict(config), sort_keys=True))


def labels_text(class_names) -> str:
    """The text of labels.txt: one class name per line, in output order."""
    return "".join(f"{name}\n" for name in class_names)


def write_labels(run_dir: Path, class_names) -> None:
    atomic_write_text(run_dir / LABELS, labels_text(class_names))


def read_labels(folder: Path) -> list[str] | None:
    path = folder / LABELS
    if not path.is_file():
        return None
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def read_config(run_dir: Path, required: tuple[str, ...] = ("mode", "dataset")) -> dict[str, Any]:
    """The run's config.yaml, checked like any config; a damaged file is a one-line UserError."""
    path = run_dir / CONFIG
    config = read_yaml(path)
    missing = [key for key in required if key not in config]
    if missing:
        raise UserError(f"config {path} lacks {', '.join(missing)}; the run folder is damaged")
    return config


def write_metrics(run_dir: Path, metrics: dict[str, Any]) -> None:
    atomic_write_text(run_dir / METRICS, json.dumps(metrics, indent=2, sort_keys=True) + "\n")


def read_metrics(run_dir: Path) -> dict[str, Any]:
    path = run_dir / METRICS
    try:
        metrics = json.loads(path.read_text())
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UserError(f"{path} is not valid JSON ({exc}); the run folder is damaged") from None
    if not isinstance(metrics, dict):
        raise UserError(f"{path} is not a JSON object; the run folder is damaged")
    return metrics
