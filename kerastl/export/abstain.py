"""How often each LiteRT file answers, at the threshold in its own metadata: on the test images
and on pictures of no class (kerastl.confidence.outside), in the LiteRT interpreter and in
MediaPipe's ImageClassifier with an app's default options (which applies the file's threshold
itself and returns no class below it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from kerastl.confidence.detector import auroc
from kerastl.export import mediapipe_check, metadata
from kerastl.export.convert import tflite_name
from kerastl.litert import LiteRTModel
from kerastl.log import Log

MEDIAPIPE_PICTURES = 500  # per set: MediaPipe classifies one picture per call


def measure(folder: Path, quantize: Sequence[str], x_test: np.ndarray, sets: Mapping[str, Callable[[], np.ndarray]],
            use_mediapipe: bool, log: Log = print) -> dict[str, Any]:
    """Per file: the share of each set answered (and the AUROC of the top score against the test
    images) in LiteRT, and the share MediaPipe returns a class for."""
    pictures = {"test": x_test, **{name: make() for name, make in sets.items()}}
    rows = []
    for variant in quantize:
        path = folder / tflite_name(variant)
        threshold = metadata.read_score_threshold(path)
        log(f"abstain: {path.name} at its threshold {threshold:.4f} on the test images and {', '.join(sets)}")
        lite = LiteRTModel(path)
        tops = {name: lite.predict(x).max(axis=1) for name, x in pictures.items()}
        litert = {name: {"answered": float(np.mean(top >= threshold))} for name, top in tops.items()}
        for name in sets:
            litert[name]["auroc"] = auroc(tops["test"], tops[name])
        row = {"file": path.name, "threshold": threshold, "litert": litert}
        if use_mediapipe:
            row["mediapipe"] = {name: float(np.mean(mediapipe_check.classify(path, x[:MEDIAPIPE_PICTURES])[0] >= 0))
                                for name, x in pictures.items()}
        rows.append(row)
    return {"pictures": {name: int(len(x)) for name, x in pictures.items()}, "mediapipe_pictures": MEDIAPIPE_PICTURES,
            "rows": rows}


def format_table(abstain: dict[str, Any]) -> str:
    """Share answered per file and set: LiteRT (AUROC), then MediaPipe."""
    names = list(abstain["pictures"])
    header = f"{'answered at the threshold':<26}" + "".join(f"{name[:14]:>16}" for name in names)
    lines = [header, "-" * len(header)]
    for row in abstain["rows"]:
        cells = [f"{100 * row['litert'][n]['answered']:.1f}%" + (f" ({row['litert'][n]['auroc']:.3f})" if "auroc" in row["litert"][n] else "")
                 for n in names]
        lines.append(f"{row['file'] + ' LiteRT':<26}" + "".join(f"{c:>16}" for c in cells))
        if "mediapipe" in row:
            lines.append(f"{'  in MediaPipe':<26}" + "".join(f"{100 * row['mediapipe'][n]:>15.1f}%" for n in names))
    counts = ", ".join(f"{name} {count:,}" for name, count in abstain["pictures"].items())
    lines.append(f"pictures: {counts}; LiteRT (AUROC of the top score against the test images); MediaPipe with an "
                 f"app's default options, the first {abstain['mediapipe_pictures']} of each set")
    return "\n".join(lines)
