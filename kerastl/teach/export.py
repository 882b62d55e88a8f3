"""Take it home: a teach session's last training as ordinary kerastl run folders, and the transfer
model's app-ready files.

Each model becomes a finished run folder in OUTPUT/runs/ (`feature-pictures-TIME`, or
`finetune-pictures-TIME` when the transfer model was fine-tuned, and `cnn-pictures-TIME`), written
by kerastl's own run writing (kerastl.finished_run): model.keras, config.yaml (the `fit` config
sized to these pictures, its dataset the session's pictures folder), labels.txt,
dataset_split.csv, test_predictions.npz, confusion.png and metrics.json, so `kerastl.export`,
`predict`, `demo` and `explain` take it as they take a `fit` run. The transfer run (the fine-tuned
one when there is one) is then exported by `kerastl.export` (SavedModel, the LiteRT files with
TFLite metadata and the class names, each checked in LiteRT and MediaPipe, MODEL_CARD.md).

What the run calls its test split is what teach scored: with cross-validation every picture (each
scored by a model that did not train on it), else the held-out share. The exported model then
trained once more on every picture, so the export's LiteRT table checks the conversion on pictures
the model has seen; MODEL_CARD.md gets a section that says so, with the scored accuracy.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

from kerastl import finished_run, runs  # finished_run starts Keras: teacher.py imports this module when it exports
from kerastl.confidence.model import gated_model
from kerastl.data import folders
from kerastl.data.datasets import DataInfo
from kerastl.export import export_run
from kerastl.log import Log
from kerastl.modes import MODES
from kerastl.teach.session import RUNS
from kerastl.teach.training import FINETUNED, SCRATCH, TRANSFER
from kerastl.text import percent

CARD = "MODEL_CARD.md"


def export_session(session, trained, extractor, quantize=None, log: Log = print) -> dict[str, Any]:
    """Write both runs, export the transfer run (fine-tuned if it was); {"run", "runs", "files", "folder",
    "mediapipe"}, paths relative to OUTPUT."""
    started = time.perf_counter()
    output = session.output_dir
    if FINETUNED in trained.models:
        transfer, transfer_dir = FINETUNED, write_run(output / RUNS, "finetune", trained, FINETUNED, compiled(trained.models[FINETUNED]), session.root)
    else:
        transfer, transfer_dir = TRANSFER, write_run(output / RUNS, "feature", trained, TRANSFER, transfer_model(trained, extractor), session.root)
    scratch_dir = write_run(output / RUNS, "cnn", trained, SCRATCH, trained.models[SCRATCH], session.root)
    log(f"export: wrote {transfer_dir.relative_to(output)} and {scratch_dir.relative_to(output)}; exporting the transfer model")
    report = export_run(transfer_dir, **({"quantize": quantize} if quantize else {}), log=lambda line: log(f"  {line}"))
    add_scoring_note(transfer_dir / runs.EXPORT_DIR / CARD, trained.scores[transfer])
    files = sorted(str(p.relative_to(output)) for p in (transfer_dir / runs.EXPORT_DIR).iterdir()
                   if p.is_file() and p.suffix in (".tflite", ".md", ".txt", ".json"))
    log(f"export: done in {time.perf_counter() - started:.0f} s")
    return {"run": str(transfer_dir.relative_to(output)), "runs": [str(transfer_dir.relative_to(output)), str(scratch_dir.relative_to(output))],
            "files": files, "folder": str(output), "mediapipe": (report.get("mediapipe") or {}).get("version")}


def transfer_model(trained, extractor):
    """The whole transfer model (pixels in, probabilities out), as `fit --mode feature` builds it,
    with the head that teach trained, gated as teach's own (kerastl.teach.gate) when it has a gate."""
    from kerastl.models import build_transfer_model  # Keras, when a model is exported

    size = extractor.size
    data = DataInfo("teach", tuple(trained.labels), (size, size, 3))
    config = trained.configs[TRANSFER]
    built = build_transfer_model(extractor.backbone, size, "imagenet", dropout=config["dropout"], data=data, log=lambda _: None)
    built.model.get_layer("classifier").set_weights(trained.models[TRANSFER].get_layer("classifier").get_weights())
    return compiled(gated_model(built.model, trained.gates[TRANSFER].gate) if TRANSFER in trained.gates else built.model)


def compiled(model):
    """`model`, compiled if it is not (a gated model is a new keras.Model): model.keras records a compiled model."""
    if getattr(model, "optimizer", None) is None:
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def write_run(runs_dir: Path, mode: str, trained, name: str, model, pictures_root: Path) -> Path:
    """A finished kerastl run folder of one of teach's models."""
    score, config = trained.scores[name], dict(trained.configs[name])
    side = int(model.input_shape[1])
    config.update(stored_size=side, run_name=None, output_dir=str(runs_dir))
    run_dir = runs.create_run_dir(runs_dir, None, mode, config["dataset"])
    runs.write_config(run_dir, config)
    runs.write_labels(run_dir, trained.labels)
    paths = np.array([str(p) for p in trained.paths], dtype=object)
    none = (np.array([], dtype=object), np.array([], dtype="int64"))
    split = folders.FolderData(pictures_root, list(trained.labels),
                               {"train": (paths, trained.targets), "val": none, "test": (paths[score.scored], score.labels)},
                               (side, side), 3, False, [], (0.5,) * 3, (0.25,) * 3)
    (run_dir / runs.SPLIT_FILE).write_text(folders.split_text(split))
    metrics = {
        "test_accuracy": score.accuracy, "test_images": score.held_out, "train_images": len(paths), "validation_images": 0,
        "scored_by": f"{score.scored_by} in kerastl.teach: each scored picture answered by a model that did not train on it; "
                     "this model then trained on every picture",
        "backend": keras.backend.backend(), "wall_seconds": score.seconds,
        "taught_with": "kerastl.teach",
    }
    if name in trained.gates:  # kerastl.confidence.threshold.of_run reads it: the export's threshold, the card's "not sure"
        metrics["confidence"] = trained.gates[name].metrics
    if score.epochs:
        metrics["epochs_run"] = {last_stage(mode): score.epochs}
    if mode == "feature":
        metrics.update(backbone=config["backbone"], img_size=side, head="a multinomial logistic regression on the frozen features")
    if mode == "finetune":
        metrics.update(backbone=config["backbone"], img_size=side,
                       head="a multinomial logistic regression on the frozen features, then the whole model fine-tuned (batch norm frozen)")
    finished_run.write(run_dir, config, model, metrics, [], (score.labels, score.probabilities), trained.labels, log=lambda _: None)
    return run_dir


def last_stage(mode: str) -> str:
    """The stage that trained last (teach fits the finetune mode's head on the features, not as a stage)."""
    return MODES[mode].stages[-1].name


def add_scoring_note(card: Path, score) -> None:
    """A section of MODEL_CARD.md on how teach scored the model (the LiteRT table's pictures were seen in training)."""
    if not card.is_file():
        return
    note = (f"\n\n## How kerastl.teach scored it\n\n{percent(score.accuracy)} of {score.held_out} pictures were classified "
            f"correctly by models that did not train on them ({score.scored_by}). The model in these files then trained "
            f"on every picture, so the accuracy table above, measured on those same pictures, checks the conversion "
            f"(LiteRT and MediaPipe against Keras), not how well it does on new pictures. Take new pictures and run "
            f"`python -m kerastl.predict` to see that. There is no validation split: the temperature, the detector's "
            f"midpoint and the \"not sure\" threshold (\"When it says not sure\") were fitted on those held-out answers, "
            f"and the threshold's \"test\" shares are measured on them too.\n")
    card.write_text(card.read_text().rstrip("\n") + note)
