"""`python -m kerastl.predict MODEL IMAGE [IMAGE ...]`: classify pictures of digits.

MODEL is a run folder, a `.keras` file, a SavedModel folder or a `.tflite` file. Each image (PNG,
JPEG, BMP, ... of any size, colour or grey) is made into a 28x28 MNIST-style digit first (see
kerastl.digit_image). One line per image: its name, the top class and its probability, then the
rest of the top k. A file that cannot be read gets one line on stderr and the others still run.

Exit status: 0 all images classified, 1 some images failed, 2 bad flags or an unusable model.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from kerastl.cli import OneLineParser, run_cli
from kerastl.digit_image import INVERT_CHOICES, ImageError, to_mnist
from kerastl.errors import UserError, first_line

PROG = "kerastl.predict"
EXIT_SOME_FAILED = 1
DIGITS = [str(d) for d in range(10)]


# Load the model, whatever its format


@dataclass
class Classifier:
    predict: Callable[[np.ndarray], np.ndarray]  # uint8 pixels [n, 28, 28, 1] -> probabilities [n, classes]
    labels: list[str]
    kind: str


def load_classifier(model: str | Path) -> Classifier:
    """A run folder, `.keras` file, SavedModel folder or `.tflite` file, ready to classify pixels."""
    path = Path(model).expanduser()
    if not path.exists():
        raise UserError(f"no model at {path}; pass a run folder, a .keras file, a SavedModel folder or a .tflite file")
    if path.is_dir() and (path / "model.keras").is_file():
        return Classifier(_keras_predict(path / "model.keras"), find_labels(path), "keras")
    if path.is_dir() and (path / "saved_model.pb").is_file():
        return Classifier(_saved_model_predict(path), find_labels(path), "saved_model")
    if path.is_file() and path.suffix == ".keras":
        return Classifier(_keras_predict(path), find_labels(path), "keras")
    if path.is_file() and path.suffix == ".tflite":
        from kerastl.litert import LiteRTModel

        return Classifier(LiteRTModel(path).predict, find_labels(path), "tflite")
    raise UserError(f"{path} is not a run folder, .keras file, SavedModel folder or .tflite file")


def _keras_predict(path: Path):
    import keras

    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as exc:
        raise UserError(f"cannot load {path} ({first_line(exc)})") from None
    return lambda pixels: np.asarray(model.predict(pixels.astype("float32"), verbose=0))


def _saved_model_predict(path: Path):
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as exc:
        raise UserError(f"cannot load the SavedModel {path} ({type(exc).__name__})") from None
    signatures = loaded.signatures
    uint8 = "serve_uint8" in signatures
    serve = signatures["serve_uint8" if uint8 else "serving_default"]
    (input_name,) = serve.structured_input_signature[1].keys()

    def predict(pixels: np.ndarray) -> np.ndarray:
        outputs = serve(**{input_name: tf.constant(pixels if uint8 else pixels.astype("float32"))})
        return (outputs["probabilities"] if "probabilities" in outputs else next(iter(outputs.values()))).numpy()

    return predict


def find_labels(model: Path) -> list[str]:
    """Class names: a labels.txt beside the model (or in a run's export/), else the dataset named in
    the run's config.yaml, else the digits 0-9."""
    folder = model if model.is_dir() else model.parent
    for candidate in (folder / "labels.txt", folder / "export" / "labels.txt", folder.parent / "labels.txt"):
        if candidate.is_file():
            return [line.strip() for line in candidate.read_text().splitlines() if line.strip()]
    for config in (folder / "config.yaml", folder.parent / "config.yaml"):
        if config.is_file():
            import yaml

            from kerastl.data import CLASS_NAMES

            dataset = (yaml.safe_load(config.read_text()) or {}).get("dataset", "mnist")
            return CLASS_NAMES.get(dataset, DIGITS)
    return DIGITS


# Classify


def top_k(probabilities: np.ndarray, labels: list[str], k: int) -> list[dict]:
    order = np.argsort(-probabilities)[:k]
    return [{"label": labels[i] if i < len(labels) else str(i), "probability": float(probabilities[i])} for i in order]


def classify(model: str | Path, images: list[str | Path], top: int = 3, invert: str = "auto") -> list[dict]:
    """One result per image: {"file", "predictions": [{"label", "probability"}, ...]} or {"file", "error"}."""
    classifier = load_classifier(model)
    results, pixels, ok = [], [], []
    for image in images:
        try:
            pixels.append(to_mnist(image, invert))
            ok.append(len(results))
            results.append({"file": str(image)})
        except ImageError as exc:
            results.append({"file": str(image), "error": str(exc)})
    if pixels:
        probabilities = classifier.predict(np.stack(pixels))
        for index, row in zip(ok, probabilities):
            results[index]["predictions"] = top_k(row, classifier.labels, top)
    return results


def format_result(result: dict) -> str:
    if "error" in result:
        return f"{result['file']}: error: {result['error']}"
    best, *rest = result["predictions"]
    line = f"{result['file']}: {best['label']} ({100 * best['probability']:.1f}%)"
    if rest:
        line += "; next: " + ", ".join(f"{p['label']} ({100 * p['probability']:.1f}%)" for p in rest)
    return line


# The command line


def parse_args(argv=None):
    p = OneLineParser(prog=PROG, description="Classify images of handwritten digits with a kerastl model.")
    p.add_argument("model", help="a run folder, a .keras file, a SavedModel folder or a .tflite file")
    p.add_argument("images", nargs="+", help="image files (PNG, JPEG, BMP, ...), any size, colour or grey")
    p.add_argument("--top-k", type=int, default=3, help="classes shown per image (default: 3)")
    p.add_argument("--invert", default="auto", choices=INVERT_CHOICES,
                   help="yes: dark digit on light paper; no: light on dark; auto: decide from the border (default)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text lines")
    args = p.parse_args(argv)
    if not 1 <= args.top_k <= 10:
        p.error("--top-k must be between 1 and 10")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    results = classify(args.model, args.images, args.top_k, args.invert)
    if args.json:
        print(json.dumps({"model": args.model, "results": results}, indent=2))
    else:
        for result in results:
            print(format_result(result), file=sys.stderr if "error" in result else sys.stdout)
    return EXIT_SOME_FAILED if any("error" in r for r in results) else 0


def cli() -> int:
    return run_cli(PROG, main)


if __name__ == "__main__":
    sys.exit(cli())
