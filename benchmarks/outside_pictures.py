"""Does a kerastl model say "not sure" to pictures of no class, in Keras and in the app files?

    python benchmarks/outside_pictures.py [RUN_DIR] [--mode cnn] [--mediapipe-limit 2000]
    python benchmarks/outside_pictures.py --folder [--per-class 40] [--mode finetune]
    python benchmarks/outside_pictures.py RUN_DIR --regate   # refit the gate on the same weights, re-export

Without RUN_DIR it trains `kerastl.run(mode=MODE)` with no other option (the default run of
`python -m kerastl.fit --mode MODE` on MNIST) and exports it (every LiteRT variant). With
`--folder` the data is instead a photo-like colour folder of 4 Fashion-MNIST classes
(benchmarks/small_data.py's photo_like_folder: t-shirt, trouser, sneaker, bag; PER_CLASS
training pictures a class, 250 test pictures a class) and the run gets `outside=` a second such
folder of the 6 other Fashion-MNIST classes (100 pictures each), as `fit --dataset FOLDER
--outside OTHER` would. Then, for the test pictures and each outside set of
kerastl.confidence.outside (MNIST: 10,000 Fashion-MNIST test pictures, 384 rendered capital
letters, 1,000 noise pictures, blank, white; a folder: the --outside folder, noise, blank):
- the saved model.keras, opened in plain Keras: the share answered at the run's threshold, the
  accuracy of the answered test pictures, the AUROC of the top score against the test pictures;
- every .tflite file in the LiteRT interpreter at the threshold in its own metadata;
- every .tflite file in MediaPipe's ImageClassifier with an app's default options (the first
  `--mediapipe-limit` pictures of each set): the share it returns a class for.
It prints the tables for the README and writes RUN_DIR/outside_pictures.json.

`--regate` (a finished MNIST or Fashion-MNIST run) first refits the temperature, gate and threshold
with this checkout's kerastl on the run's own trained weights and splits (kerastl.confidence.job,
as `fit` runs it), saves model.keras and metrics.json, and re-exports: the figures of a change to
the gate, without training again.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


TEST = "test pictures"  # the row of the run's own test split
OTHER_CLASSES = {2: "pullover", 3: "dress", 4: "coat", 5: "sandal", 6: "shirt", 9: "ankle boot"}  # --folder's outside pictures


def pictures(run_dir: Path, config: dict, image_shape: tuple) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(x_test, y_test, {set name: uint8 pictures}): the run's test split (a built-in dataset's
    arrays or the image folder's test files, as the export reads them) and every outside set."""
    from kerastl.confidence import outside
    from kerastl.data.folders import FileImages
    from kerastl.export.job import run_images

    x_test, y_test, _ = run_images(run_dir, config, image_shape, log=lambda _: None)
    x_test = x_test.load() if isinstance(x_test, FileImages) else x_test
    made = outside.sets_for(config["dataset"], image_shape, config.get("outside"), limit=10_000,
                            data_dir=config.get("data_dir"), log=lambda _: None)
    return x_test, np.asarray(y_test), {TEST: x_test, **{name: make() for name, make in made.items()}}


def per_subfolder(model, folder: str, image_shape: tuple, chosen: float) -> dict[str, float]:
    """The share of each subfolder of an --outside folder the Keras model answers (which other classes get through)."""
    from kerastl.confidence import outside

    shares = {}
    for sub in sorted(p for p in Path(folder).iterdir() if p.is_dir()):
        x = outside.image_folder(sub, image_shape, 10_000)
        shares[sub.name] = float((np.asarray(model.predict(x.astype("float32"), verbose=0)).max(axis=1) >= chosen).mean())
    return shares


def measure(run_dir: Path, mediapipe_limit: int) -> dict:
    import keras

    from kerastl import runs
    from kerastl.confidence import threshold
    from kerastl.confidence.detector import auroc
    from kerastl.export import mediapipe_check, metadata
    from kerastl.litert import LiteRTModel

    config, metrics = runs.read_config(run_dir), runs.read_metrics(run_dir)
    model = keras.saving.load_model(run_dir / runs.MODEL)
    image_shape = tuple(model.input_shape[1:])
    x_test, y_test, sets = pictures(run_dir, config, image_shape)
    chosen = threshold.of_run(metrics)
    rows = {}

    def scored(name: str, top: np.ndarray, answered: np.ndarray, predicted: np.ndarray | None, reference_top):
        row = {"answered": float(answered.mean()), "pictures": int(len(answered))}
        if name == TEST and predicted is not None:
            row["answered_right"] = float((predicted[answered] == y_test[: len(answered)][answered]).mean())
        elif reference_top is not None:
            row["auroc"] = auroc(reference_top, top)
        return row

    start = time.perf_counter()
    keras_rows, reference_top = {}, None
    for name, x in sets.items():
        p = np.asarray(model.predict(x.astype("float32"), batch_size=500, verbose=0))
        top = p.max(axis=1)
        reference_top = top if name == TEST else reference_top
        keras_rows[name] = scored(name, top, top >= chosen, p.argmax(axis=1), reference_top)
    rows["keras"] = keras_rows
    by_class = per_subfolder(model, config["outside"], image_shape, chosen) if config.get("outside") else None
    print(f"keras: {time.perf_counter() - start:.0f} s", flush=True)

    export_dir = run_dir / runs.EXPORT_DIR
    mediapipe_ok = mediapipe_check.availability()[0] is not None
    for path in sorted(export_dir.glob("*.tflite")):
        start = time.perf_counter()
        file_threshold = metadata.read_score_threshold(path)
        lite = LiteRTModel(path)
        lite_rows, lite_reference = {}, None
        for name, x in sets.items():
            p = lite.predict(x)
            top = p.max(axis=1)
            lite_reference = top if name == TEST else lite_reference
            lite_rows[name] = scored(name, top, top >= file_threshold, p.argmax(axis=1), lite_reference)
        rows[f"litert {path.stem}"] = lite_rows
        if mediapipe_ok:
            app_rows = {}
            for name, x in sets.items():
                indices, _ = mediapipe_check.classify(path, x[:mediapipe_limit])
                answered = indices >= 0
                app_rows[name] = {"answered": float(answered.mean()), "pictures": int(len(answered))}
                if name == TEST:
                    app_rows[name]["answered_right"] = float((indices[answered] == y_test[: len(indices)][answered]).mean())
            rows[f"mediapipe {path.stem}"] = app_rows
        print(f"{path.name}: threshold {file_threshold}, {time.perf_counter() - start:.0f} s", flush=True)
    report = json.loads((export_dir / "export_report.json").read_text()) if (export_dir / "export_report.json").is_file() else {}
    return {"run": str(run_dir), "dataset": config["dataset"], "mode": config["mode"], "threshold": chosen,
            "confidence": metrics.get("confidence"), "test_accuracy": metrics["test_accuracy"],
            "wall_seconds": metrics["wall_seconds"], "train_images": metrics.get("train_images"),
            "validation_images": metrics.get("validation_images"), "outside_per_class": by_class,
            "latency_ms": {row["artifact"]: row["latency_ms"] for row in report.get("rows", [])}, "rows": rows}


def regate(run_dir: Path) -> None:
    """Refit the confidence step on the run's trained weights (its splits rebuilt from the config), then re-export."""
    import kerastl
    from kerastl import runs
    from kerastl.confidence import job
    from kerastl.confidence.model import ungated
    from kerastl.data import load_arrays, make_splits
    from kerastl.model_files import load_keras_model, save_keras_model

    config, metrics = runs.read_config(run_dir), runs.read_metrics(run_dir)
    trained = ungated(load_keras_model(run_dir / runs.MODEL))  # the trained probabilities, without the old gate
    splits = make_splits(load_arrays(config["dataset"], config.get("data_dir")), config["validation_fraction"],
                         config.get("limit"), config.get("test_limit"), config["seed"], config.get("per_class"))
    fitted = job.fit(trained, splits, config, {}, print)
    print(f"regated: threshold {fitted.threshold} (recorded {metrics['confidence']['threshold']})", flush=True)
    fitted.model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")  # as fit saves it: plain Keras opens it
    save_keras_model(fitted.model, run_dir / runs.MODEL)
    runs.write_metrics(run_dir, {**metrics, "confidence": {**metrics["confidence"], **fitted.metrics}})
    kerastl.export_run(run_dir, force=True)


def photo_folders(work: Path, per_class: int) -> tuple[Path, Path]:
    """(the dataset folder, the --outside folder): benchmarks/small_data.py's photo-like colour
    JPEGs, 4 Fashion-MNIST classes in the first (PER_CLASS a class in train/, 250 in test/), 100
    test pictures of each of the 6 other classes in the second."""
    from benchmarks.small_data import photo_like_folder

    dataset = photo_like_folder(work / "clothes", train_per_class=per_class)
    other = photo_like_folder(work / "other_clothes", train_per_class=0, test_per_class=100, seed=1, classes=OTHER_CLASSES)
    return dataset, other / "test"


def table(result: dict) -> str:
    names = list(next(iter(result["rows"].values())))
    lines = ["| runtime | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    for runtime, cells in result["rows"].items():
        texts = []
        for name in names:
            cell = cells[name]
            text = f"{100 * cell['answered']:.1f} %"
            if "answered_right" in cell:
                text += f" ({100 * cell['answered_right']:.2f} % right)"
            elif "auroc" in cell:
                text += f" (AUROC {cell['auroc']:.3f})"
            texts.append(text)
        lines.append(f"| {runtime} | " + " | ".join(texts) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", nargs="?", help="a finished, exported run (default: train and export one)")
    parser.add_argument("--mode", default="cnn")
    parser.add_argument("--mediapipe-limit", type=int, default=2000)
    parser.add_argument("--folder", action="store_true", help="train on a photo-like colour folder with --outside pictures")
    parser.add_argument("--per-class", type=int, default=40, help="--folder: training pictures a class")
    parser.add_argument("--regate", action="store_true", help="RUN_DIR: refit the gate on its trained weights and re-export first")
    parser.add_argument("--work", default=None, help="--folder: where the folders and the run go (default: a new temporary folder)")
    args = parser.parse_args()
    import kerastl

    if args.run_dir:
        run_dir = Path(args.run_dir)
        if args.regate:
            regate(run_dir)
    else:
        options = {}
        if args.folder:
            work = Path(args.work or tempfile.mkdtemp(prefix="kerastl-outside-"))
            dataset, other = photo_folders(work, args.per_class)
            options = {"dataset": str(dataset), "outside": str(other), "output_dir": str(work / "runs")}
        start = time.perf_counter()
        run = kerastl.run(mode=args.mode, **options)
        print(f"trained in {time.perf_counter() - start:.0f} s", flush=True)
        kerastl.export_run(run)
        run_dir = run.folder
    result = measure(run_dir, args.mediapipe_limit)
    (run_dir / "outside_pictures.json").write_text(json.dumps(result, indent=2) + "\n")
    c = result["confidence"] or {}
    print(f"\n{run_dir}: {result['mode']} on {result['dataset']} ({result['train_images']} training, "
          f"{result['validation_images']} validation pictures): test accuracy {100 * result['test_accuracy']:.2f} %, "
          f"threshold {result['threshold']}, temperature {c.get('temperature')}, test ECE {100 * c.get('test_ece_before', 0):.2f} % -> "
          f"{100 * c.get('test_ece_after', 0):.2f} %, NLL {c.get('test_nll_before', 0):.4f} -> {c.get('test_nll_after', 0):.4f}; "
          f"confidence step {c.get('seconds')} s of the run's {result['wall_seconds']:.0f} s")
    print("share answered (Keras and LiteRT: at the run's threshold; MediaPipe: default options, the file's own threshold)\n")
    print(table(result))
    if result["outside_per_class"]:
        print("\nKeras, share of each --outside class answered:",
              ", ".join(f"{name} {100 * share:.1f} %" for name, share in result["outside_per_class"].items()))
    print("\nLiteRT latency, median single-image call (ms):", result["latency_ms"])
    if c.get("outside"):
        print("\nAUROC against the test pictures, per score (the run's own measurement, at most 2,000 pictures a set):")
        for name, m in c["outside"].items():
            print(f"  {name}: " + ", ".join(f"{k[6:]} {v:.4f}" for k, v in m.items() if k.startswith("auroc_")))


if __name__ == "__main__":
    main()
