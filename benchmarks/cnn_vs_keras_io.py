"""kerastl's CNN (`--mode cnn`, its default config) beside the keras.io "Simple MNIST convnet", in one run.

    python benchmarks/cnn_vs_keras_io.py [--output-dir DIR]

Both train on the same machine, one after the other, on the full MNIST training split and are
scored on the whole test set; the script prints each one's test accuracy and training seconds
and the ratio of the two times (timings on a shared machine are noisy: compare the ratio).
The keras.io model is the example's own: two conv layers, max pooling, dropout 0.5, 15 epochs at
batch 128, Adam, 10 % of the training data held out for validation, pixels divided by 255.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def keras_io_convnet(x_train, y_train, x_test, y_test) -> dict:
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(),
        layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(),
        layers.Flatten(), layers.Dropout(0.5), layers.Dense(10, activation="softmax"),
    ])
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    x, xt = x_train.astype("float32") / 255, x_test.astype("float32") / 255
    y, yt = keras.utils.to_categorical(y_train, 10), keras.utils.to_categorical(y_test, 10)
    start = time.perf_counter()
    model.fit(x, y, batch_size=128, epochs=15, validation_split=0.1, verbose=0)
    seconds = time.perf_counter() - start
    return {"test_accuracy": float(model.evaluate(xt, yt, verbose=0)[1]), "train_seconds": seconds, "epochs": 15}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", help="where the kerastl run folder goes (default: a temporary folder)")
    args = parser.parse_args()
    import kerastl
    from kerastl.data import load_arrays

    arrays = load_arrays("mnist", log=lambda _: None)
    with tempfile.TemporaryDirectory() as tmp:
        run = kerastl.run(mode="cnn", output_dir=args.output_dir or tmp, log=lambda _: None)
        ours = {"test_accuracy": run.metrics["test_accuracy"], "train_seconds": run.metrics["train_seconds"],
                "epochs": sum(run.metrics["epochs_run"].values())}
    theirs = keras_io_convnet(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"])
    print(f"{'model':<28} {'epochs':>6} {'test accuracy':>14} {'train seconds':>14}")
    for name, r in (("kerastl --mode cnn", ours), ("keras.io simple convnet", theirs)):
        print(f"{name:<28} {r['epochs']:>6} {100 * r['test_accuracy']:>13.2f}% {r['train_seconds']:>14.0f}")
    print(f"time ratio kerastl / keras.io: {ours['train_seconds'] / theirs['train_seconds']:.2f}")
    print(json.dumps({"kerastl_cnn": ours, "keras_io_convnet": theirs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
