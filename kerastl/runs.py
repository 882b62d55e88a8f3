"""Run folders: `saved_models/<run-name>/` with model.keras, history.csv, metrics.json, config.yaml.

A run folder is complete once `metrics.json` exists; it is written last. Every file is written to
a temporary name and renamed into place, so an interrupted run never leaves a half-written file.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import yaml

from kerastl.errors import UserError
from kerastl.files import atomic_write_text

METRICS = "metrics.json"
CONFIG = "config.yaml"
MODEL = "model.keras"
HISTORY = "history.csv"
BACKUP = "backup"


def is_complete(run_dir: Path) -> bool:
    return (run_dir / METRICS).is_file()


def new_run_dir(output_dir: str, run_name: str | None, mode: str, dataset: str) -> Path:
    root = Path(output_dir).expanduser()
    name = run_name or f"{mode}-{dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = root / name
    if run_dir.exists():
        hint = "" if is_complete(run_dir) else " (it is unfinished: add --resume to continue it)"
        raise UserError(f"run folder {run_dir} already exists{hint}; choose another --run-name")
    return run_dir


def find_resumable(output_dir: str, run_name: str | None, mode: str) -> Path:
    """The run to resume: `--run-name`, else the newest unfinished run of this mode."""
    root = Path(output_dir).expanduser()
    if run_name:
        run_dir = root / run_name
        if not (run_dir / CONFIG).is_file():
            raise UserError(f"--resume: no run folder {run_dir}")
        if is_complete(run_dir):
            raise UserError(f"--resume: {run_dir} already finished")
        return run_dir
    candidates = [
        d for d in root.glob(f"{mode}-*") if (d / CONFIG).is_file() and not is_complete(d)
    ] if root.is_dir() else []
    if not candidates:
        raise UserError(f"--resume: no unfinished {mode} run in {root}")
    return max(candidates, key=lambda d: (d / CONFIG).stat().st_mtime)


def write_config(run_dir: Path, config: dict[str, Any]) -> None:
    atomic_write_text(run_dir / CONFIG, yaml.safe_dump(config, sort_keys=True))


def read_config(run_dir: Path) -> dict[str, Any]:
    return yaml.safe_load((run_dir / CONFIG).read_text())


def write_metrics(run_dir: Path, metrics: dict[str, Any]) -> None:
    atomic_write_text(run_dir / METRICS, json.dumps(metrics, indent=2, sort_keys=True) + "\n")


def remove_run(run_dir: Path) -> None:
    shutil.rmtree(run_dir, ignore_errors=True)
