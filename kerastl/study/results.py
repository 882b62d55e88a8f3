"""The study's results: one row per run, read only from the run folders' own files.

`results.json` = {"study": settings and machine, "runs": [row, ...]} and `results.csv` (the same
rows; per-epoch lists as space-separated numbers). Every number in a row comes from the run's
`metrics.json`, `history.csv` or `config.yaml`; the report is then built from `results.json` alone.
"""

from __future__ import annotations

import csv
import io
import json
import platform
from pathlib import Path
from typing import Any

from kerastl import runs
from kerastl.backbones.registry import label as backbone_label
from kerastl.modes import BACKBONE_MODES
from kerastl.files import atomic_write_text
from kerastl.history import read_history
from kerastl.study.plan import CONTENDERS, FASHION_PRETRAIN, RunSpec
from kerastl.study.runner import Outcome

RESULTS_JSON = "results.json"
RESULTS_CSV = "results.csv"
COLUMNS = (
    "contender", "label", "per_class", "seed", "status", "reason", "run", "mode", "dataset", "backbone", "weights", "img_size",
    "train_images", "validation_images", "test_images", "epochs", "epochs_to_95", "seconds_to_95", "test_accuracy", "test_loss",
    "train_seconds", "wall_seconds", "images_per_second", "trainable_parameters", "parameters", "val_accuracy", "val_seconds",
)


def label(contender: str, backbone: str | None) -> str:
    if contender == FASHION_PRETRAIN:
        return f"{backbone_label(backbone)} pretrained on Fashion-MNIST"
    return CONTENDERS[contender].label.format(backbone=backbone_label(backbone))


def row(spec: RunSpec, run_dir: Path, outcome: Outcome) -> dict[str, Any]:
    """One run's row; a failed run keeps its identity, status and one-line reason."""
    config = spec.config
    base = {
        "contender": spec.contender, "label": label(spec.contender, config.get("backbone") if config["mode"] in BACKBONE_MODES else None),
        "per_class": spec.size, "seed": spec.seed, "status": "ok" if outcome.status != "failed" else "failed",
        "reason": outcome.reason, "run": spec.name, "mode": config["mode"], "dataset": config["dataset"],
    }
    if outcome.status == "failed" or not runs.is_complete(run_dir):
        return {**{k: None for k in COLUMNS}, **base, "status": "failed", "reason": outcome.reason or "no metrics.json"}
    metrics = runs.read_metrics(run_dir)
    recorded = runs.read_config(run_dir)
    epochs = read_history(run_dir / runs.HISTORY)
    transfer = config["mode"] in BACKBONE_MODES
    return {
        **base,
        "backbone": metrics.get("backbone") if transfer else None,
        "weights": _weights_label(recorded.get("weights")) if transfer else None,
        "img_size": metrics.get("img_size", 28),
        **{k: metrics.get(k) for k in (
            "train_images", "validation_images", "test_images", "epochs_to_95", "seconds_to_95", "test_accuracy", "test_loss",
            "train_seconds", "wall_seconds", "images_per_second", "trainable_parameters", "parameters",
        )},
        "epochs": len(epochs),
        "val_accuracy": [r["val_accuracy"] for r in epochs],
        "val_seconds": [r["seconds"] for r in epochs],
    }


def _weights_label(weights: str | None) -> str | None:
    """imagenet / none, or the run folder a weights file came from (e.g. fashion-pretrain)."""
    if weights in (None, "none", "imagenet"):
        return weights
    return Path(weights).parent.name


def collect(specs: list[RunSpec], study_dir: Path, outcomes: dict[str, Outcome]) -> list[dict[str, Any]]:
    return [row(spec, study_dir / spec.name, outcomes.get(spec.name, Outcome("failed", "not run"))) for spec in specs]


def machine() -> dict[str, Any]:
    """Where the study ran: machine, backend, device and library versions."""
    import os

    import keras

    from kerastl import runtime

    versions = {"python": platform.python_version(), "keras": keras.__version__}
    for module in ("tensorflow", "jax", "torch", "numpy"):
        try:
            versions[module] = __import__(module).__version__
        except Exception:
            continue
    return {
        "platform": platform.platform(), "processor": platform.machine(), "cpu_count": os.cpu_count(),
        "backend": runtime.backend(), "device": runtime.device_description(), "versions": versions,
    }


def write(study_dir: Path, study: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """results.json and results.csv, each written atomically."""
    atomic_write_text(study_dir / RESULTS_JSON, json.dumps({"study": study, "runs": rows}, indent=1) + "\n")
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: _cell(r.get(k)) for k in COLUMNS})
    atomic_write_text(study_dir / RESULTS_CSV, out.getvalue())


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return " ".join("" if v is None else f"{v:g}" for v in value)
    return str(value)


def read(study_dir: Path) -> dict[str, Any]:
    return json.loads((Path(study_dir) / RESULTS_JSON).read_text())
