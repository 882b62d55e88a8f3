"""Does a kerastl model say "not sure" to pictures of no class, in Keras and in the app files?

    python benchmarks/outside_pictures.py [RUN_DIR] [--mode cnn] [--mediapipe-limit 2000]

Without RUN_DIR it trains `kerastl.run(mode=MODE)` with no other option (the default run of
`python -m kerastl.fit --mode MODE` on MNIST) and exports it (every LiteRT variant). Then, for
the MNIST test digits and each outside set of kerastl.confidence.outside (all of them: 10,000
Fashion-MNIST test pictures, 384 rendered capital letters, 1,000 noise pictures, blank, white):
- the saved model.keras, opened in plain Keras: the share answered at the run's threshold, the
  accuracy of the answered digits, the AUROC of the top score against the test digits;
- every .tflite file in the LiteRT interpreter at the threshold in its own metadata;
- every .tflite file in MediaPipe's ImageClassifier with an app's default options (the first
  `--mediapipe-limit` pictures of each set): the share it returns a class for.
It prints the tables for the README and writes RUN_DIR/outside_pictures.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def measure(run_dir: Path, mediapipe_limit: int) -> dict:
    import keras

    from kerastl import runs
    from kerastl.confidence import outside, threshold
    from kerastl.confidence.detector import auroc
    from kerastl.data import load_arrays
    from kerastl.export import mediapipe_check, metadata
    from kerastl.litert import LiteRTModel

    config, metrics = runs.read_config(run_dir), runs.read_metrics(run_dir)
    test = load_arrays(config["dataset"], config.get("data_dir"), log=lambda _: None)
    x_test, y_test = test["x_test"], test["y_test"]
    sets = {"test digits": x_test, **{name: make() for name, make in
                                      outside.sets_for(config["dataset"], x_test.shape[1:], limit=10_000).items()}}
    chosen = threshold.of_run(metrics)
    rows = {}

    def scored(name: str, top: np.ndarray, answered: np.ndarray, predicted: np.ndarray | None, reference_top):
        row = {"answered": float(answered.mean()), "pictures": int(len(answered))}
        if name == "test digits" and predicted is not None:
            row["answered_right"] = float((predicted[answered] == y_test[: len(answered)][answered]).mean())
        elif reference_top is not None:
            row["auroc"] = auroc(reference_top, top)
        return row

    start = time.perf_counter()
    model = keras.saving.load_model(run_dir / runs.MODEL)
    keras_rows, reference_top = {}, None
    for name, x in sets.items():
        p = np.asarray(model.predict(x.astype("float32"), batch_size=500, verbose=0))
        top = p.max(axis=1)
        reference_top = top if name == "test digits" else reference_top
        keras_rows[name] = scored(name, top, top >= chosen, p.argmax(axis=1), reference_top)
    rows["keras"] = keras_rows
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
            lite_reference = top if name == "test digits" else lite_reference
            lite_rows[name] = scored(name, top, top >= file_threshold, p.argmax(axis=1), lite_reference)
        rows[f"litert {path.stem}"] = lite_rows
        if mediapipe_ok:
            app_rows = {}
            for name, x in sets.items():
                indices, _ = mediapipe_check.classify(path, x[:mediapipe_limit])
                answered = indices >= 0
                app_rows[name] = {"answered": float(answered.mean()), "pictures": int(len(answered))}
                if name == "test digits":
                    app_rows[name]["answered_right"] = float((indices[answered] == y_test[: len(indices)][answered]).mean())
            rows[f"mediapipe {path.stem}"] = app_rows
        print(f"{path.name}: threshold {file_threshold}, {time.perf_counter() - start:.0f} s", flush=True)
    report = json.loads((export_dir / "export_report.json").read_text()) if (export_dir / "export_report.json").is_file() else {}
    return {"run": str(run_dir), "threshold": chosen, "confidence": metrics.get("confidence"),
            "test_accuracy": metrics["test_accuracy"], "wall_seconds": metrics["wall_seconds"],
            "latency_ms": {row["artifact"]: row["latency_ms"] for row in report.get("rows", [])}, "rows": rows}


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
    args = parser.parse_args()
    import kerastl

    if args.run_dir:
        run_dir = Path(args.run_dir)
    else:
        start = time.perf_counter()
        run = kerastl.run(mode=args.mode)
        print(f"trained in {time.perf_counter() - start:.0f} s", flush=True)
        kerastl.export_run(run)
        run_dir = run.folder
    result = measure(run_dir, args.mediapipe_limit)
    (run_dir / "outside_pictures.json").write_text(json.dumps(result, indent=2) + "\n")
    c = result["confidence"] or {}
    print(f"\n{run_dir}: test accuracy {100 * result['test_accuracy']:.2f} %, threshold {result['threshold']}, "
          f"temperature {c.get('temperature')}, test ECE {100 * c.get('test_ece_before', 0):.2f} % -> "
          f"{100 * c.get('test_ece_after', 0):.2f} %, NLL {c.get('test_nll_before', 0):.4f} -> {c.get('test_nll_after', 0):.4f}; "
          f"confidence step {c.get('seconds')} s of the run's {result['wall_seconds']:.0f} s")
    print("share answered (Keras and LiteRT: at the run's threshold; MediaPipe: default options, the file's own threshold)\n")
    print(table(result))
    print("\nLiteRT latency, median single-image call (ms):", result["latency_ms"])
    if c.get("outside"):
        print("\nAUROC against the test digits, per score (the run's own measurement, 2,000 pictures a set):")
        for name, m in c["outside"].items():
            print(f"  {name}: " + ", ".join(f"{k[6:]} {v:.4f}" for k, v in m.items() if k.startswith("auroc_")))


if __name__ == "__main__":
    main()
