"""A finished run: written once training ends, and opened again as a `Run`.

`write` saves what a finished run keeps (kerastl.runs names every file): the model, the test
predictions and the figures, then metrics.json, which marks the run finished, and drops the resume
scaffolding. `load_run` opens a finished folder; `Run` is what `kerastl.run` returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from kerastl import evaluation, history, plots, runs
from kerastl.errors import UserError, first_line
from kerastl.files import atomic_path
from kerastl.log import Log
from kerastl.model_files import load_keras_model, save_keras_model


def write(run_dir: Path, config: Mapping[str, Any], model, metrics: dict[str, Any], epochs: list[dict[str, Any]],
          test, class_names, backbone=None, log: Log = print) -> "Run":
    """Write what a finished run keeps, metrics.json last, and drop the resume scaffolding.
    `test`: (labels, probabilities) of the test split, or None in a multi-process run, whose
    processes hold only their shard; `backbone`: pretrain's, saved for `--weights` of a later
    transfer run."""
    save_keras_model(model, run_dir / runs.MODEL)
    if backbone is not None:
        with atomic_path(run_dir / runs.BACKBONE_WEIGHTS, suffix=".weights.h5") as tmp:
            backbone.save_weights(tmp)
        log(f"pretrain: backbone weights saved; transfer them with --weights {run_dir / runs.BACKBONE_WEIGHTS}")
    if test is None:
        log("figures: not drawn in a multi-process run (its processes hold only their shard of the test set)")
    else:
        y_true, probabilities = test
        evaluation.save_predictions(run_dir, y_true, probabilities)
        try:  # a figure that fails to draw must not cost the trained run
            plots.write_run_figures(run_dir, epochs, y_true, probabilities.argmax(axis=1), config, class_names)
        except Exception as exc:
            log(f"figures: not drawn ({first_line(exc)})")
    runs.write_metrics(run_dir, metrics)
    runs.remove_scaffolding(run_dir)
    return Run(run_dir, dict(config), metrics, history.read_history(run_dir / runs.HISTORY), model)


@dataclass
class Run:
    """A finished run: its folder, resolved config, metrics, per-epoch history and trained model.

    `os.fspath(run)` is the folder, so a Run can be passed wherever a run folder is expected
    (`kerastl.export_run(run)`, `kerastl.predict(run, images)`).
    """

    folder: Path
    config: dict[str, Any]
    metrics: dict[str, Any]
    history: list[dict[str, Any]]  # one dict per epoch, keyed by history.csv's columns
    _model: Any = None  # a keras.Model; loaded from model.keras on first use
    export_report: dict[str, Any] | None = None

    @property
    def model(self):
        """The trained keras.Model."""
        if self._model is None:
            self._model = load_keras_model(self.folder / runs.MODEL)
        return self._model

    def __fspath__(self) -> str:
        return str(self.folder)

    def __repr__(self) -> str:
        return f"Run({str(self.folder)!r}, test_accuracy={self.metrics.get('test_accuracy')})"


def load_run(run_dir: str | Path) -> Run:
    """A finished run folder as a Run (its model is loaded when first used)."""
    folder = Path(run_dir).expanduser()
    if not folder.is_dir():
        raise UserError(f"no run folder {folder}")
    if not runs.is_complete(folder):
        raise UserError(f"{folder} is not a finished run (no {runs.METRICS}); resume it first")
    return Run(folder, runs.read_config(folder), runs.read_metrics(folder), history.read_history(folder / runs.HISTORY))
