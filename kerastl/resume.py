"""What `--resume` needs to continue a stage where it stopped, committed once per epoch.

Per stage, `<run>/backup/<stage>/` holds:

    state.json              the commit record: epochs finished, the weight files to load, the
                            memory of the callbacks, seconds per epoch; once the stage is done,
                            its result
    epoch-NNN.weights.h5    model and optimizer state after epoch NNN
    best-NNN.weights.h5     ModelCheckpoint's file of the best epoch so far

After every epoch the weights go to a new file, then state.json is replaced atomically, then files
it no longer names are deleted. Nothing that state.json does not name is ever read, so a process
killed at any moment, even halfway through writing a file, resumes from the last committed epoch.
(Keras' BackupAndRestore overwrites its weights and then its epoch counter in place and keeps no
other callback's memory, so it cannot promise that.) The memory of EarlyStopping, ModelCheckpoint
and ReduceLROnPlateau (best value, best epoch, wait counters) is part of the record: after a
resume the best epoch from before the interruption is still the one to beat, and patience goes on
counting where it stopped.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import keras

from kerastl.errors import UserError
from kerastl.files import atomic_path, atomic_write_text

STATE = "state.json"
EPOCH_WEIGHTS = "epoch-{epoch:03d}.weights.h5"
BEST_WEIGHTS = "best-{epoch:03d}.weights.h5"  # the template ModelCheckpoint fills in (epoch from 1)

# The attributes that carry a callback's memory from one epoch to the next; each of these
# callbacks resets them in on_train_begin, and ResumePoint (after them in the list) sets them back.
MEMORY = {
    keras.callbacks.EarlyStopping: ("best", "best_epoch", "wait"),
    keras.callbacks.ModelCheckpoint: ("best",),
    keras.callbacks.ReduceLROnPlateau: ("best", "wait", "cooldown_counter"),
}


@dataclass
class StageState:
    epochs_done: int = 0
    weights: str | None = None  # file with the model (and optimizer) to continue from
    best_weights: str | None = None  # ModelCheckpoint's file of the best epoch so far
    callbacks: dict[str, dict[str, Any]] = field(default_factory=dict)  # class name -> memory
    epoch_seconds: list[float] = field(default_factory=list)
    finished: dict[str, Any] | None = None  # the stage's result, once it is done


def read_state(folder: Path) -> StageState:
    """The stage's last commit, or a fresh state if it never finished an epoch."""
    path = folder / STATE
    if not path.is_file():
        return StageState()
    try:
        return StageState(**json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise UserError(f"the resume state {path} is damaged ({exc}); delete {folder} to redo this stage") from None


def write_state(folder: Path, state: StageState) -> None:
    """Commit `state`, then delete the weight files it no longer names."""
    atomic_write_text(folder / STATE, json.dumps(asdict(state), indent=1) + "\n")
    keep = {STATE, state.weights, state.best_weights}
    for path in folder.glob("*.weights.h5"):
        if path.name not in keep:
            path.unlink(missing_ok=True)


def best_checkpoint(folder: Path, monitor: str) -> keras.callbacks.ModelCheckpoint:
    """ModelCheckpoint writing each new best epoch to its own file (so a torn write never
    damages the committed one)."""
    escaped = str(folder).replace("{", "{{").replace("}", "}}")  # ModelCheckpoint calls str.format
    return keras.callbacks.ModelCheckpoint(
        f"{escaped}/{BEST_WEIGHTS}", monitor=monitor, save_best_only=True, save_weights_only=True
    )


class ResumePoint(keras.callbacks.Callback):
    """Commits the stage's state after every epoch and restores it when fit starts again.

    Put it after the callbacks whose memory it keeps and after the history logger: it commits
    the epoch once they have seen it, and restores their memory after their own on_train_begin
    has reset it. `timer` is any callback with a `seconds` list (kerastl.train.EpochTimer).
    """

    def __init__(self, folder: Path, state: StageState, memory_of: list[keras.callbacks.Callback], timer):
        super().__init__()
        self.folder, self.state, self.memory_of, self.timer = folder, state, memory_of, timer
        self.folder.mkdir(parents=True, exist_ok=True)
        self._checkpoint = next((c for c in memory_of if isinstance(c, keras.callbacks.ModelCheckpoint)), None)

    def on_train_begin(self, logs=None):
        if self.state.weights:
            if self.model.optimizer is not None and not self.model.optimizer.built:
                self.model.optimizer.build(self.model.trainable_variables)
            self.model.load_weights(self.folder / self.state.weights)
        for callback in self.memory_of:
            for name, value in self.state.callbacks.get(type(callback).__name__, {}).items():
                setattr(callback, name, value)
        self.timer.seconds = list(self.state.epoch_seconds)
        self._best = self._checkpoint.best if self._checkpoint else None

    def on_epoch_end(self, epoch, logs=None):
        weights = EPOCH_WEIGHTS.format(epoch=epoch + 1)
        with atomic_path(self.folder / weights, suffix=".weights.h5") as tmp:
            self.model.save_weights(tmp)
        if self._checkpoint is not None and self._checkpoint.best != self._best:
            self._best = self._checkpoint.best
            self.state.best_weights = BEST_WEIGHTS.format(epoch=epoch + 1)
        self.state.epochs_done = epoch + 1
        self.state.weights = weights
        self.state.callbacks = {type(c).__name__: _memory(c) for c in self.memory_of}
        self.state.epoch_seconds = [round(s, 3) for s in self.timer.seconds]
        write_state(self.folder, self.state)


def _memory(callback: keras.callbacks.Callback) -> dict[str, Any]:
    names = next(attrs for kind, attrs in MEMORY.items() if isinstance(callback, kind))
    return {name: _plain(getattr(callback, name)) for name in names}


def _plain(value: Any) -> Any:
    """A JSON-ready copy of a callback attribute (Keras keeps numpy or backend scalars)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return float(value)
