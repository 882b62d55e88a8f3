"""The parity report: does each exported artifact classify the test set like the Keras model?

For every artifact: file size, test accuracy, its change against the Keras model in percentage
points, top-1 agreement with the Keras model, accuracy per class and median single-image latency.
Each LiteRT file is also run in MediaPipe's ImageClassifier, the API apps call (see
mediapipe_check): its accuracy, agreement and class names there, or why MediaPipe refused it. An
artifact more than `max_drop_pp` below the Keras model, in either runtime, or refused by MediaPipe,
is flagged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from kerastl.errors import ExportFailed, first_line
from kerastl.export import mediapipe_check
from kerastl.export.convert import SAVED_MODEL, tflite_name
from kerastl.litert import LATENCY_REPEATS, LiteRTModel, interpreter_class, median_latency_ms
from kerastl.log import Log
from kerastl.model_files import keras_predict, saved_model_predict

MAX_DROP_PP = 0.5
REPORT = "export_report.json"  # in export/: the report as JSON
GATED_LATENCY = ", the abstain gate included (kerastl's benchmarks/gate_latency.py times the files with and without it)"


@dataclass
class Candidate:
    """One artifact to measure: a batched predict function and a single-image call for timing."""
    name: str
    path: Path
    predict: Callable[[np.ndarray], np.ndarray]  # uint8 pixels [n, H, W, channels] -> probabilities [n, classes]
    predict_one: Callable[[np.ndarray], Any]  # uint8 pixels [1, H, W, channels] -> anything
    app_file: bool = False  # a file apps load: checked in MediaPipe too


def candidates(model, model_path: Path, folder: Path, formats: Sequence[str], quantize: Sequence[str],
               threads: int | None) -> tuple[Candidate, list[Candidate]]:
    """The Keras model (the reference) and every exported file in `folder`, each as a Candidate."""
    # timed as `predict` runs it (compiled, one batch): an eager `model(x)` call measures Python's
    # dispatch of every layer (EfficientNet-Lite0: 103 ms against 9 ms) and made a finetune export
    # spend half a minute timing the reference
    reference = Candidate("keras", model_path, keras_predict(model), lambda x: model.predict_on_batch(x.astype("float32")))
    artifacts = []
    if "saved_model" in formats:
        serve = saved_model_predict(folder / SAVED_MODEL)
        artifacts.append(Candidate("saved_model (uint8)", folder / SAVED_MODEL, serve, serve))
    if "tflite" in formats:
        for variant in quantize:
            lite = LiteRTModel(folder / tflite_name(variant), num_threads=threads)
            name = f"tflite {variant}" + (f" ({lite.input_dtype.name})" if variant == "int8" else "")
            artifacts.append(Candidate(name, lite.path, lite.predict, lite.predict, app_file=True))
    return reference, artifacts


def check_all(model, model_path: Path, folder: Path, formats: Sequence[str], quantize: Sequence[str], x_test, y_test,
              labels: Sequence[str], max_drop_pp: float, latency_repeats: int, threads: int | None,
              log: Log = print) -> dict[str, Any]:
    """Run every file in `folder` on the test images with the runtimes a device uses; the parity report."""
    version, not_checked = mediapipe_check.availability() if "tflite" in formats else (None, "no LiteRT files")
    try:
        reference, artifacts = candidates(model, model_path, folder, formats, quantize, threads)
        in_app = (lambda path, top1: in_mediapipe(path, x_test, y_test, top1, labels, log)) if version else None
        report = parity_report(reference, artifacts, x_test, y_test, max_drop_pp, latency_repeats, log, in_app)
    except Exception as exc:
        raise ExportFailed(f"running the exported files failed ({first_line(exc)})") from exc
    report["interpreter"] = interpreter_class()[1] if "tflite" in formats else None
    report["mediapipe"] = {"version": version, "not_checked": not_checked, "picture_scale": mediapipe_check.PICTURE_SCALE}
    return report


def in_mediapipe(path: Path, x, y, reference_top1: np.ndarray, labels: Sequence[str], log) -> dict[str, Any]:
    """One file in MediaPipe's ImageClassifier on the test images: accuracy, agreement with the
    Keras model, whether it names the classes as labels.txt does; or why it was refused."""
    log(f"parity: running {path.name} in MediaPipe's ImageClassifier on {len(x)} test images")
    try:
        top1, names = mediapipe_check.classify(path, x, mediapipe_check.ANSWER_EVERYTHING)  # every top class, as Keras gives it
    except mediapipe_check.Refused as exc:
        return {"refused": str(exc)}
    return {
        "refused": None,
        "accuracy": float(np.mean(top1 == y)),
        "agreement": float(np.mean(top1 == reference_top1)),
        "class_names_match": names == [labels[i] if i >= 0 else "" for i in top1],
        "per_class_accuracy": per_class_accuracy(top1, y, len(labels)),
    }


def size_bytes(path: Path) -> int:
    """A file's size, or the total size of the files in a folder (a SavedModel)."""
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size


def measure(
    candidate: Candidate, x: np.ndarray, y: np.ndarray, reference: np.ndarray | None, repeats: int
) -> tuple[dict[str, Any], np.ndarray]:
    """One candidate's report row (accuracy, agreement with `reference`, latency) and its probabilities."""
    probabilities = candidate.predict(x)
    if probabilities.shape != (len(x), probabilities.shape[-1]):
        raise RuntimeError(f"{candidate.name}: expected probabilities of shape [{len(x)}, classes], got {probabilities.shape}")
    if not np.all(np.isfinite(probabilities)):
        raise RuntimeError(f"{candidate.name}: the model produced NaN or infinite probabilities")
    top1 = probabilities.argmax(axis=1)
    row = {
        "artifact": candidate.name,
        "file": candidate.path.name,
        "size_bytes": size_bytes(candidate.path),
        "accuracy": float(np.mean(top1 == y)),
        "per_class_accuracy": per_class_accuracy(top1, y, probabilities.shape[-1]),
        "latency_ms": median_latency_ms(lambda: candidate.predict_one(x[:1]), repeats),
    }
    if reference is not None:
        row["agreement"] = float(np.mean(top1 == reference.argmax(axis=1)))
        row["max_abs_prob_diff"] = float(np.max(np.abs(probabilities - reference)))
    return row, probabilities


def per_class_accuracy(top1: np.ndarray, y: np.ndarray, classes: int) -> list[float | None]:
    """Accuracy on the test images of each class (None for a class with no test image)."""
    return [float(np.mean(top1[y == c] == c)) if np.any(y == c) else None for c in range(classes)]


def parity_report(
    keras_model: Candidate,
    artifacts: list[Candidate],
    x: np.ndarray,
    y: np.ndarray,
    max_drop_pp: float = MAX_DROP_PP,
    repeats: int = LATENCY_REPEATS,
    log: Log = print,
    in_app: Callable[[Path, np.ndarray], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Measure the Keras model, then every artifact against it (app files also with `in_app`, if
    given: path, the Keras model's top classes -> that runtime's results); the report as a dict."""
    reference_row, reference = measure(keras_model, x, y, None, repeats)
    reference_row.update(delta_pp=0.0, agreement=1.0, flagged=False, flags=[])
    rows = [reference_row]
    for candidate in artifacts:
        log(f"parity: running {candidate.name} on {len(x)} test images")
        row, _ = measure(candidate, x, y, reference, repeats)
        row["delta_pp"] = 100 * (row["accuracy"] - reference_row["accuracy"])
        if candidate.app_file and in_app is not None:
            row["mediapipe"] = in_app(candidate.path, reference.argmax(axis=1))
            if row["mediapipe"]["refused"] is None:
                row["mediapipe"]["delta_pp"] = 100 * (row["mediapipe"]["accuracy"] - reference_row["accuracy"])
        row["flags"] = _flags(row, max_drop_pp)
        row["flagged"] = bool(row["flags"])
        rows.append(row)
    return {"test_images": int(len(x)), "max_drop_pp": max_drop_pp, "latency_repeats": repeats, "rows": rows}


def _flags(row: dict[str, Any], max_drop_pp: float) -> list[str]:
    """Why a row is flagged: an accuracy drop in LiteRT or MediaPipe, a refusal, wrong class names."""
    flags = [f"{row['delta_pp']:+.2f} pp"] if row["delta_pp"] < -max_drop_pp else []
    app = row.get("mediapipe")
    if app and app["refused"]:
        flags.append("refused by MediaPipe")
    elif app:
        if app["delta_pp"] < -max_drop_pp:
            flags.append(f"{app['delta_pp']:+.2f} pp in MediaPipe")
        if not app["class_names_match"]:
            flags.append("MediaPipe returns other class names than labels.txt")
    return flags


def flagged(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [row for row in report["rows"] if row["flagged"]]


def format_table(report: dict[str, Any]) -> str:
    """The report as a fixed-width text table, one line per artifact; flagged ones marked `DROP`,
    then a line per MediaPipe refusal and the notes."""
    header = (f"{'artifact':<22}{'size':>10}{'accuracy':>10}{'change':>10}{'agree':>9}{'latency':>11}"
              f"{'MediaPipe':>12}{'agree':>9}")
    lines, refusals = [header, "-" * len(header)], []
    mediapipe = report.get("mediapipe") or {}
    for row in report["rows"]:
        app = row.get("mediapipe")
        if app and app["refused"]:
            in_app = f"{'refused':>12}{'':>9}"
            refusals.append(f"{row['artifact']}: refused by MediaPipe: {app['refused']}")
        elif app:
            in_app = f"{100 * app['accuracy']:>11.2f}%{100 * app['agreement']:>8.2f}%"
        else:
            in_app = f"{'not checked' if row['file'].endswith('.tflite') else '':>12}{'':>9}"
        line = (f"{row['artifact']:<22}{human_size(row['size_bytes']):>10}{100 * row['accuracy']:>9.2f}%"
                f"{row['delta_pp']:>+8.2f}pp{100 * row['agreement']:>8.2f}%{row['latency_ms']:>8.3f} ms{in_app}")
        lines.append(line.rstrip() + ("  DROP" if row["flagged"] else ""))
    lines += refusals
    lines.append(
        f"{report['test_images']} test images; latency: median of {report['latency_repeats']} single-image calls"
        f"{GATED_LATENCY if report.get('abstain') else ''}; "
        f"DROP: more than {report['max_drop_pp']} pp below the Keras model, or refused by MediaPipe"
    )
    if mediapipe.get("version"):
        lines.append(f"MediaPipe: mediapipe {mediapipe['version']} ImageClassifier, the test images as RGB pictures "
                     f"{mediapipe['picture_scale']}x the input size")
    elif mediapipe.get("not_checked"):
        lines.append(f"MediaPipe: not checked: {mediapipe['not_checked']}")
    return "\n".join(lines)


def human_size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    return f"{n / 1024:.1f} KB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MB"
