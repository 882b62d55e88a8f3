"""Per-epoch history of a run, written so plots and milestones can be read from it.

`history.csv` has one row per finished epoch, across all stages of the run:

    stage, epoch, stage_epoch, seconds, loss, accuracy, val_loss, val_accuracy, lr

`epoch` counts from 1 across stages (a finetune run's head epoch is epoch 1, its first fine-tuning
epoch epoch 2), `stage_epoch` counts from 1 within the stage, `seconds` is the wall time since the
run started (data loading and model building included, so it is the time a user waits), cumulative
across stages and across a `--resume`. The whole file is rewritten atomically after every epoch,
keyed by (stage, stage_epoch): an epoch run again after a resume replaces its row and the rows
after it, so the file always tells one timeline.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import math
import time
from pathlib import Path
from typing import Any

import keras

from kerastl import runs
from kerastl.errors import UserError
from kerastl.files import atomic_write_text

COLUMNS = ("stage", "epoch", "stage_epoch", "seconds", "loss", "accuracy", "val_loss", "val_accuracy", "lr")
TARGET_ACCURACY = 0.95  # the lesson's milestone: "epochs to 95 %"


class RunClock:
    """Wall time since the run started, shared by the history writers of all its stages.

    After a resume the clock continues from the last epoch the file kept (`base`), so `seconds`
    never goes backwards; the time lost to the interruption itself is not counted.
    """

    def __init__(self, start: float | None = None) -> None:
        self.start = time.perf_counter() if start is None else start
        self.base: float | None = None  # set at this process's first write

    def seconds(self, kept_rows: list[dict[str, Any]]) -> float:
        if self.base is None:
            self.base = float(kept_rows[-1]["seconds"]) if kept_rows else 0.0
        return self.base + time.perf_counter() - self.start


_CLOCKS: dict[str, RunClock] = {}


def start_clock(run_dir: Path, start: float | None = None) -> RunClock:
    """Start the clock of the run in `run_dir` (at `start`, a time.perf_counter(), or now); its
    history writers find it with `clock_of`."""
    clock = _CLOCKS[str(Path(run_dir).resolve())] = RunClock(start)
    return clock


def clock_of(run_dir: Path) -> RunClock:
    """The run's clock (started by `start_clock`; a fresh one for a stage fitted on its own)."""
    return _CLOCKS.setdefault(str(Path(run_dir).resolve()), RunClock())


def tensorboard_callbacks(run_dir: Path, stage: str, enabled: bool) -> list[keras.callbacks.Callback]:
    """`--tensorboard`: Keras' TensorBoard callback logging into `<run>/tensorboard/<stage>`."""
    if not enabled:
        return []
    if importlib.util.find_spec("tensorboard") is None:  # TensorFlow writes summaries only with it
        raise UserError("--tensorboard needs the tensorboard package: pip install tensorboard (or kerastl[tensorboard])")
    return [keras.callbacks.TensorBoard(log_dir=str(Path(run_dir) / runs.TENSORBOARD / stage))]


def read_history(path: Path) -> list[dict[str, Any]]:
    """The rows of a history.csv, numbers parsed (empty cells become None); [] if there is none."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [_parse(row) for row in rows]


def _parse(row: dict[str, str]) -> dict[str, Any]:
    parsed: dict[str, Any] = {"stage": row["stage"]}
    for key in COLUMNS[1:]:
        value = row.get(key, "")
        parsed[key] = None if value in ("", None) else (int(value) if key in ("epoch", "stage_epoch") else float(value))
    return parsed


def _format(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in COLUMNS})
    return out.getvalue()


class HistoryWriter(keras.callbacks.Callback):
    """Writes `history.csv` (see the module docstring) at the end of every epoch of one stage."""

    def __init__(self, path: Path, stage: str, clock: RunClock) -> None:
        super().__init__()
        self.path, self.stage, self.clock = Path(path), stage, clock

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        stage_epoch = epoch + 1  # fit(initial_epoch=...) passes the real epoch index after a resume
        rows = read_history(self.path)
        # Keep the timeline up to this epoch: a re-run epoch replaces its row and everything after.
        for i, row in enumerate(rows):
            if row["stage"] == self.stage and row["stage_epoch"] >= stage_epoch:
                rows = rows[:i]
                break
        rows.append({
            "stage": self.stage,
            "epoch": len(rows) + 1,
            "stage_epoch": stage_epoch,
            "seconds": round(self.clock.seconds(rows), 3),
            **{k: _number(logs.get(k)) for k in ("loss", "accuracy", "val_loss", "val_accuracy")},
            "lr": _number(self._learning_rate()),
        })
        atomic_write_text(self.path, _format(rows))

    def _learning_rate(self) -> float | None:
        try:  # the rate in use now; a schedule is evaluated at the current step
            return float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        except Exception:
            return None


def _number(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else float(f"{value:.6g}")


def milestones(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Global epoch and seconds at which validation accuracy first reached 95 % (None if never)."""
    for row in rows:
        if row["val_accuracy"] is not None and row["val_accuracy"] >= TARGET_ACCURACY:
            return {"epochs_to_95": row["epoch"], "seconds_to_95": row["seconds"]}
    return {"epochs_to_95": None, "seconds_to_95": None}
