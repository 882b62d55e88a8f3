"""The models a demo page shows: run folders (or a study's best runs), loaded once, each classifying
one picture with the preprocessing `kerastl.predict` uses (`Classifier.pixels`, one function).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kerastl import runs
from kerastl.confidence.threshold import abstains
from kerastl.digit_image import ImageError
from kerastl.errors import UserError
from kerastl.log import Log
from kerastl.model_files import model_kind
from kerastl.plots import run_title as describe_config
from kerastl.prediction import load_classifier, top_classes
from kerastl.study import results
from kerastl.study.folder import is_study  # this module starts Keras: nothing here defers it
from kerastl.text import percent
from kerastl.web.pictures import as_file, png_data_url

STUDY_CONTENDERS = ("mlp", "cnn", "finetune")  # the runs a study folder puts side by side
TOP_K = 3


@dataclass
class DemoModel:
    """One model of the page: its name, a line saying what it is, and the loaded classifier."""

    name: str
    title: str
    classifier: object  # kerastl.prediction.Classifier

    def describe(self) -> dict:
        return {"name": self.name, "title": self.title, "labels": list(self.classifier.labels)}


# Which models


def best_study_runs(study_dir: Path, contenders=STUDY_CONTENDERS) -> list[tuple[Path, str]]:
    """(run folder, title) of the study's best finished run of each contender, by test accuracy
    (on a tie, the run with more labelled images). A study without any of them is a UserError."""
    try:
        rows = results.read(study_dir)["runs"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"cannot read the study's {results.RESULTS_JSON} in {study_dir} ({exc})") from None
    chosen = []
    for contender in contenders:
        finished = [r for r in rows if r.get("contender") == contender and r.get("status") == "ok"
                    and r.get("test_accuracy") is not None and (study_dir / r["run"] / runs.MODEL).is_file()]
        if finished:
            best = max(finished, key=lambda r: (r["test_accuracy"], r.get("train_images") or 0))
            chosen.append((study_dir / best["run"], f"{best['label']}, {_data_label(best['per_class'])}: "
                                                    f"{percent(best['test_accuracy'])} on {best['test_images']:,} test images"))
    if not chosen:
        raise UserError(f"the study {study_dir} has no finished {', '.join(contenders)} run with a model")
    return chosen


def run_title(folder: Path) -> str:
    """What a run folder holds, from its own files: `cnn on mnist, all images: 99.49 % on 10,000 test images`."""
    if not (folder.is_dir() and runs.is_complete(folder)):
        return folder.name  # a .keras, SavedModel or .tflite file
    metrics = runs.read_metrics(folder)
    title = describe_config(runs.read_config(folder))
    if metrics.get("test_accuracy") is not None:
        title += f": {percent(metrics['test_accuracy'])} on {metrics.get('test_images', 0):,} test images"
    return title


def _data_label(per_class) -> str:
    return "all images" if per_class == "all" else f"{per_class} per class"


def models_to_show(paths: list[str | Path]) -> list[tuple[Path, str]]:
    """(model path, title) for every argument: a study folder becomes its best runs. Checked
    without loading anything, so a folder with no model is refused before a framework starts."""
    chosen = []
    for given in paths:
        path = Path(given).expanduser()
        if is_study(path):  # its best runs; a study still without results is refused by best_study_runs
            chosen.extend(best_study_runs(path))
        else:
            model_kind(path)  # a UserError names what is missing
            chosen.append((path, run_title(path)))
    return chosen


def load_models(chosen: list[tuple[Path, str]], warn: Log = print) -> list[DemoModel]:
    names = _unique_names([path for path, _ in chosen])
    return [DemoModel(name, title, load_classifier(path, warn)) for name, (path, title) in zip(names, chosen)]


def _unique_names(paths: list[Path]) -> list[str]:
    """Each model's folder or file name; the parent folder is added where two would read the same."""
    names = [p.name for p in paths]
    return [f"{p.parent.name}/{p.name}" if names.count(p.name) > 1 else p.name for p in paths]


# Classify one picture


def classify(models: list[DemoModel], image: bytes) -> list[dict]:
    """Every model's top classes for one picture (PNG, JPEG, ... bytes), each with the input
    pixels it saw as a PNG data URL, or the reason it could not read the picture."""
    with as_file(image, prefix="kerastl-demo-") as path:
        answers = []
        for model in models:
            try:
                pixels = model.classifier.pixels(path, "auto")
            except ImageError as exc:
                answers.append({"name": model.name, "error": str(exc)})
                continue
            probabilities = model.classifier.predict(pixels[None])[0]
            threshold = model.classifier.threshold  # the run's abstain threshold (kerastl.confidence), or None
            answers.append({"name": model.name, "predictions": top_classes(probabilities, model.classifier.labels, TOP_K),
                            "abstained": abstains(probabilities, threshold),
                            "threshold": threshold, "input": png_data_url(pixels)})
    return answers
