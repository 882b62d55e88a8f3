"""What the abstain gate costs at prediction time: LiteRT latency of each variant with and without it.

    python benchmarks/gate_latency.py RUN_DIR [--repeats 300] [--rounds 5]

Converts the run's gated model.keras and the same model without the gate
(kerastl.confidence.model.ungated: the same trained layers, softmax of the logits) with the
export's own conversion (kerastl.export.convert.convert_all, every LiteRT variant, int8 calibrated
on training pictures), then times single-image calls in the LiteRT interpreter with 1 thread (a
phone-class proxy, as the export's parity table does). Gated and ungated files are timed in
alternating rounds, so that a shared machine's load falls on both alike: each round gives each
file the median of REPEATS calls, and the figures are the medians over the rounds (the difference
too). Prints a table and writes RUN_DIR/gate_latency.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CALIBRATION = 200  # training pictures for the int8 files' ranges (they do not change the timing)


def convert_both(run_dir: Path, work: Path, variants: list[str]) -> tuple[np.ndarray, dict[str, dict[str, Path]]]:
    """(one test picture, {variant: {"gated": path, "ungated": path}})."""
    from kerastl import runs
    from kerastl.confidence import outside
    from kerastl.confidence.model import is_gated, ungated
    from kerastl.data.folders import FileImages
    from kerastl.export.convert import DEFAULT_INT8_IO, convert_all, tflite_name
    from kerastl.export.job import run_images
    from kerastl.model_files import load_keras_model

    config = runs.read_config(run_dir)
    model = load_keras_model(run_dir / runs.MODEL)
    if not is_gated(model):
        raise SystemExit(f"{run_dir}'s model.keras has no gate (a run without a validation split?)")
    shape = tuple(model.input_shape[1:])
    x_test, _, x_train = run_images(run_dir, config, shape, log=lambda _: None)
    pick = np.random.default_rng(0).choice(len(x_train), size=min(CALIBRATION, len(x_train)), replace=False)
    calibration = x_train[np.sort(pick)]
    if isinstance(calibration, FileImages):
        calibration, x_test = calibration.load(), x_test[:1].load()
    calibration = np.concatenate([calibration, outside.calibration_extras(shape)])
    files = {}
    for name, keras_model in (("gated", model), ("ungated", ungated(model))):
        folder = work / name
        folder.mkdir(parents=True)
        convert_all(keras_model, folder, ["tflite"], variants, calibration, DEFAULT_INT8_IO, log=lambda _: None)
        for variant in variants:
            files.setdefault(variant, {})[name] = folder / tflite_name(variant)
    return np.asarray(x_test[:1]), files


def time_pairs(picture: np.ndarray, files: dict[str, dict[str, Path]], repeats: int, rounds: int) -> dict[str, dict]:
    """Per variant: the gated and ungated median latency (ms, median over rounds), the median
    per-round difference, and the file sizes."""
    from kerastl.litert import LiteRTModel, median_latency_ms

    models = {v: {k: LiteRTModel(p, num_threads=1) for k, p in pair.items()} for v, pair in files.items()}
    per_round = {v: {"gated": [], "ungated": []} for v in files}
    for _ in range(rounds):
        for variant, pair in models.items():
            for name in ("ungated", "gated"):
                per_round[variant][name].append(median_latency_ms(lambda: pair[name].predict(picture), repeats))
    out = {}
    for variant, times in per_round.items():
        differences = [g - u for g, u in zip(times["gated"], times["ungated"])]
        out[variant] = {"gated_ms": statistics.median(times["gated"]), "ungated_ms": statistics.median(times["ungated"]),
                        "difference_ms": statistics.median(differences),
                        "rounds_ms": times, "gated_bytes": files[variant]["gated"].stat().st_size,
                        "ungated_bytes": files[variant]["ungated"].stat().st_size}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", help="a finished run whose model.keras has the gate")
    parser.add_argument("--repeats", type=int, default=300, help="single-image calls per file and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quantize", default="float32,float16,dynamic,int8")
    args = parser.parse_args()
    run_dir = Path(args.run_dir)
    with tempfile.TemporaryDirectory(prefix="kerastl-gate-latency-") as work:
        picture, files = convert_both(run_dir, Path(work), args.quantize.split(","))
        result = time_pairs(picture, files, args.repeats, args.rounds)
    (run_dir / "gate_latency.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"{run_dir}: LiteRT, 1 thread, batch 1, median of {args.repeats} calls per round, median over {args.rounds} rounds\n")
    print("| file | without the gate | with the gate | difference | size without / with |")
    print("| --- | --- | --- | --- | --- |")
    for variant, r in result.items():
        share = 100 * r["difference_ms"] / r["ungated_ms"]
        print(f"| {variant} | {r['ungated_ms']:.3f} ms | {r['gated_ms']:.3f} ms | {r['difference_ms']:+.3f} ms ({share:+.1f} %) | "
              f"{r['ungated_bytes'] / 1e6:.2f} / {r['gated_bytes'] / 1e6:.2f} MB |")


if __name__ == "__main__":
    main()
