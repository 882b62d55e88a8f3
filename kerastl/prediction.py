"""Classify pictures with a kerastl model: `kerastl.predict(model, images)` and the command
`python -m kerastl.predict MODEL IMAGE [IMAGE ...]` (its entry is kerastl/predict.py).

MODEL is a run folder, a `.keras` file, a SavedModel folder or a `.tflite` file. For a model of
MNIST or Fashion-MNIST, each image (PNG, JPEG, BMP, ... of any size, colour or grey) is made into
a 28x28 MNIST-style picture first (see kerastl.digit_image); a model trained on an image folder
gets the images decoded and resized exactly as its training images were (kerastl.data.folders).
One line per image: its name, the top class and its probability, then the rest of the top k; or
`unknown` with the top guess and its score, when the score is below the model's abstain
threshold (the run's, kerastl.confidence; `--threshold` overrides it, 0 answers everything).
A file that cannot be read gets one line on stderr and the others still run.

Exit status: 0 all images classified, 1 some images failed, 2 bad flags or an unusable model.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from kerastl import runs
from kerastl.cli import OneLineParser, run_cli
from kerastl.confidence import threshold
from kerastl.confidence.threshold import abstains  # by name: predict() has an argument called threshold
from kerastl.data import DATASETS, IMAGE_SHAPE
from kerastl.data.folders import check_image, load_images
from kerastl.digit_image import INVERT_CHOICES, ImageError, to_mnist
from kerastl.errors import UserError
from kerastl.export.metadata import read_score_threshold
from kerastl.log import Log
from kerastl.model_files import load_predict_function, model_kind

PROG = "kerastl.predict"
EXIT_SOME_FAILED = 1



# Load the model, whatever its format


@dataclass
class Classifier:
    predict: Callable[[np.ndarray], np.ndarray]  # uint8 pixels [n, height, width, channels] -> probabilities [n, classes]
    labels: list[str]
    kind: str
    image_shape: tuple[int, int, int]
    threshold: float | None = None  # the top score below which the model abstains (None: it never does)

    @property
    def mnist_style(self) -> bool:
        """A model of a built-in dataset (28x28, its class names): pictures are made MNIST-like. Its
        LiteRT files take RGB, and turn the grey digit (given as RGB by LiteRTModel) back to grey."""
        return self.image_shape[:2] == IMAGE_SHAPE[:2] and tuple(self.labels) in [d.class_names for d in DATASETS.values()]

    def pixels(self, image, invert: str) -> np.ndarray:
        """One image file as this model's input pixels; ImageError if it cannot be read."""
        if self.mnist_style:
            return to_mnist(image, invert)
        return _decoded(image, self.image_shape)


def load_classifier(model: str | Path, warn: Log = print) -> Classifier:
    """A run folder, `.keras` file, SavedModel folder or `.tflite` file, ready to classify pixels."""
    path = Path(model).expanduser()
    model_kind(path)
    labels = find_labels(path, warn)  # before the model: a damaged run folder fails before a framework loads
    predict_fn, kind, image_shape = load_predict_function(path)
    return Classifier(predict_fn, labels, kind, image_shape, find_threshold(path))


def find_threshold(model: Path) -> float | None:
    """The abstain threshold: a `.tflite` file's own (its metadata), else the one in the metrics.json
    of the run the model belongs to (the run folder, the folder of its model.keras, or above export/)."""
    if model.suffix == ".tflite":
        return read_score_threshold(model)
    folder = model if model.is_dir() else model.parent
    for run_dir in (folder, folder.parent):
        if (run_dir / runs.METRICS).is_file():
            return threshold.of_run(runs.read_metrics(run_dir))
    return None


def _decoded(image, shape: tuple[int, int, int]) -> np.ndarray:
    """Decoded and resized as the model's training images were (one TensorFlow function for both)."""
    path = Path(image)
    if not path.is_file():
        raise ImageError("no such file" if not path.exists() else "not a file")
    info, reason = check_image(str(path))
    if info is None:
        raise ImageError(reason)
    return load_images([str(path)], shape[:2], shape[2])[0]


def find_labels(model: Path, warn: Log = print) -> list[str]:
    """Class names: a labels.txt beside the model (or in a run's export/), else the dataset named in
    the run's config.yaml, else the digits 0-9 (with a warning)."""
    folder = model if model.is_dir() else model.parent
    for candidate in (folder, folder / runs.EXPORT_DIR, folder.parent):
        labels = runs.read_labels(candidate)
        if labels is not None:
            return labels
    for run_dir in (folder, folder.parent):
        if (run_dir / runs.CONFIG).is_file():
            dataset = runs.read_config(run_dir)["dataset"]
            if dataset not in DATASETS:
                raise UserError(f"{run_dir} has no {runs.LABELS} with the class names of {dataset}; re-train the run")
            return list(DATASETS[dataset].class_names)
    warn(f"no {runs.LABELS} or {runs.CONFIG} beside {model}: labelling the classes as the digits 0-9")
    return list(DATASETS["mnist"].class_names)


# Classify


def top_classes(probabilities: np.ndarray, labels: list[str], k: int) -> list[dict]:
    order = np.argsort(-probabilities)[:k]
    return [{"label": labels[i] if i < len(labels) else str(i), "probability": float(probabilities[i])} for i in order]


def predict(model, images: list[str | Path], top_k: int = 3, invert: str = "auto", warn: Log = print,
            threshold: float | None = None) -> list[dict]:
    """Classify image files (PNG, JPEG, ...; any size, colour or grey) with a model: a run folder
    (or a kerastl Run), a `.keras` file, a SavedModel folder or a `.tflite` file.

    One result per image: {"file", "predictions": [{"label", "probability"}, ... top_k],
    "abstained", "threshold"}, or {"file", "error"} for a file that cannot be read. "abstained" is
    True when the top score is below the threshold: the model's own (the run's metrics.json, a
    .tflite file's metadata), or `threshold` when given (0: never abstain); "threshold" is the one
    used (None: the model has none). Raises kerastl.UserError for a bad model or argument. The
    package exports it as `kerastl.predict(...)`.
    """
    if not 1 <= top_k <= 10:
        raise UserError(f"top_k must be between 1 and 10, got {top_k}")
    if threshold is not None and not 0 <= threshold <= 1:
        raise UserError(f"threshold must be between 0 and 1, got {threshold}")
    if invert not in INVERT_CHOICES:
        raise UserError(f"invert must be one of {', '.join(INVERT_CHOICES)}, got {invert!r}")
    if isinstance(images, (str, Path)):
        images = [images]
    classifier = load_classifier(model, warn)
    used = classifier.threshold if threshold is None else threshold
    results, pixels, ok = [], [], []
    for image in images:
        try:
            pixels.append(classifier.pixels(image, invert))
            ok.append(len(results))
            results.append({"file": str(image)})
        except ImageError as exc:
            results.append({"file": str(image), "error": str(exc)})
    if pixels:
        probabilities = classifier.predict(np.stack(pixels))
        for index, row in zip(ok, probabilities):
            results[index]["predictions"] = top_classes(row, classifier.labels, top_k)
            results[index]["abstained"] = abstains(row, used)
            results[index]["threshold"] = used
    return results


def format_result(result: dict) -> str:
    if "error" in result:
        return f"{result['file']}: error: {result['error']}"
    best, *rest = result["predictions"]
    if result.get("abstained"):
        return (f"{result['file']}: unknown (top guess {best['label']}, {100 * best['probability']:.1f}%, "
                f"below the threshold {100 * result['threshold']:.1f}%)")
    line = f"{result['file']}: {best['label']} ({100 * best['probability']:.1f}%)"
    if rest:
        line += "; next: " + ", ".join(f"{p['label']} ({100 * p['probability']:.1f}%)" for p in rest)
    return line


# The command line


def parse_args(argv=None):
    p = OneLineParser(prog=PROG, description="Classify images with a kerastl model (digits, clothes, or the classes of your own folder).")
    p.add_argument("model", help="a run folder, a .keras file, a SavedModel folder or a .tflite file")
    p.add_argument("images", nargs="+", help="image files (PNG, JPEG, BMP, ...), any size, colour or grey")
    p.add_argument("--top-k", type=int, default=3, help="classes shown per image (default: 3)")
    p.add_argument("--invert", default="auto", choices=INVERT_CHOICES,
                   help="MNIST-style models: yes: dark digit on light paper; no: light on dark; auto: decide from the border (default)")
    p.add_argument("--threshold", type=float, metavar="X",
                   help="answer unknown below this top score, 0-1 (default: the model's own, chosen when it was "
                        "trained; 0: always answer)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text lines")
    args = p.parse_args(argv)
    if not 1 <= args.top_k <= 10:
        p.error("--top-k must be between 1 and 10")
    if args.threshold is not None and not 0 <= args.threshold <= 1:
        p.error("--threshold must be between 0 and 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    results = predict(args.model, args.images, args.top_k, args.invert,
                      warn=lambda message: print(f"{PROG}: warning: {message}", file=sys.stderr), threshold=args.threshold)
    if args.json:
        print(json.dumps({"model": args.model, "results": results}, indent=2))
    else:
        for result in results:
            print(format_result(result), file=sys.stderr if "error" in result else sys.stdout)
    return EXIT_SOME_FAILED if any("error" in r for r in results) else 0


def cli() -> int:
    return run_cli(PROG, main)
