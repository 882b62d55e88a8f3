"""The parity report: does each exported artifact classify the test set like the Keras model?

For every artifact: file size, test accuracy, its change against the Keras model in percentage
points, top-1 agreement with the Keras model, and median single-image latency. An artifact more
than `max_drop_pp` below the Keras model is flagged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from kerastl.errors import ExportFailed, first_line
from kerastl.export.convert import SAVED_MODEL, tflite_name
from kerastl.litert import median_latency_ms

MAX_DROP_PP = 0.5


@dataclass
class Candidate:
    """One artifact to measure: a batched predict function and a single-image call for timing."""

    name: str
    path: Path
    predict: Callable[[np.ndarray], np.ndarray]  # uint8 pixels [n, 28, 28, 1] -> probabilities [n, classes]
    predict_one: Callable[[np.ndarray], Any]  # uint8 pixels [1, 28, 28, 1] -> anything


def candidates(model, model_path: Path, folder: Path, formats: Sequence[str], quantize: Sequence[str],
               threads: int | None) -> tuple[Candidate, list[Candidate]]:
    """The Keras model (the reference) and every exported file in `folder`, each as a Candidate."""
    from kerastl.litert import LiteRTModel
    from kerastl.model_files import keras_predict, saved_model_predict

    reference = Candidate("keras", model_path, keras_predict(model), lambda x: model(x.astype("float32"), training=False))
    artifacts = []
    if "saved_model" in formats:
        serve = saved_model_predict(folder / SAVED_MODEL)
        artifacts.append(Candidate("saved_model (uint8)", folder / SAVED_MODEL, serve, serve))
    if "tflite" in formats:
        for variant in quantize:
            lite = LiteRTModel(folder / tflite_name(variant), num_threads=threads)
            name = f"tflite {variant}" + (f" ({lite.input_dtype.name})" if variant == "int8" else "")
            artifacts.append(Candidate(name, lite.path, lite.predict, lite.predict))
    return reference, artifacts


def check_all(model, model_path: Path, folder: Path, formats: Sequence[str], quantize: Sequence[str], x_test, y_test,
              max_drop_pp: float, latency_repeats: int, threads: int | None, log: Callable[[str], None] = print,
              ) -> dict[str, Any]:
    """Run every file in `folder` on the test images with the runtime a device uses; the parity report."""
    from kerastl.litert import interpreter_class

    try:
        reference, artifacts = candidates(model, model_path, folder, formats, quantize, threads)
        report = parity_report(reference, artifacts, x_test, y_test, max_drop_pp, latency_repeats, log)
    except Exception as exc:
        raise ExportFailed(f"running the exported files failed ({first_line(exc)})") from exc
    report["interpreter"] = interpreter_class()[1] if "tflite" in formats else None
    return report


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
        "latency_ms": median_latency_ms(lambda: candidate.predict_one(x[:1]), repeats),
    }
    if reference is not None:
        row["agreement"] = float(np.mean(top1 == reference.argmax(axis=1)))
        row["max_abs_prob_diff"] = float(np.max(np.abs(probabilities - reference)))
    return row, probabilities


def parity_report(
    keras_model: Candidate,
    artifacts: list[Candidate],
    x: np.ndarray,
    y: np.ndarray,
    max_drop_pp: float = MAX_DROP_PP,
    repeats: int = 200,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Measure the Keras model, then every artifact against it; returns the report as a dict."""
    reference_row, reference = measure(keras_model, x, y, None, repeats)
    reference_row.update(delta_pp=0.0, agreement=1.0, flagged=False)
    rows = [reference_row]
    for candidate in artifacts:
        log(f"parity: running {candidate.name} on {len(x)} test images")
        row, _ = measure(candidate, x, y, reference, repeats)
        row["delta_pp"] = 100 * (row["accuracy"] - reference_row["accuracy"])
        row["flagged"] = row["delta_pp"] < -max_drop_pp
        rows.append(row)
    return {"test_images": int(len(x)), "max_drop_pp": max_drop_pp, "latency_repeats": repeats, "rows": rows}


def flagged(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [row for row in report["rows"] if row["flagged"]]


def format_table(report: dict[str, Any]) -> str:
    """The report as a fixed-width text table, one line per artifact; flagged ones marked `DROP`."""
    header = f"{'artifact':<22}{'size':>10}{'accuracy':>10}{'change':>10}{'agree':>9}{'latency':>11}"
    lines = [header, "-" * len(header)]
    for row in report["rows"]:
        lines.append(
            f"{row['artifact']:<22}{_human_size(row['size_bytes']):>10}{100 * row['accuracy']:>9.2f}%"
            f"{row['delta_pp']:>+8.2f}pp{100 * row['agreement']:>8.2f}%{row['latency_ms']:>8.3f} ms"
            + ("  DROP" if row["flagged"] else "")
        )
    lines.append(
        f"{report['test_images']} test images; latency: median of {report['latency_repeats']} single-image calls; "
        f"DROP: more than {report['max_drop_pp']} pp below the Keras model"
    )
    return "\n".join(lines)


def _human_size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    return f"{n / 1024:.1f} KB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MB"
