"""A linear probe after every block of a backbone (after Yosinski et al. 2014, "How transferable are
features in deep neural networks?").

Each block's output is global-average-pooled into one vector per image, standardised, and a
multinomial logistic regression (scikit-learn) learns the classes from the probe's training images;
its accuracy on the test images says how linearly separable the classes are at that depth. Three
sets of weights are probed: ImageNet's, random initialisation and, given a run, its fine-tuned
weights. A random backbone's batch norm keeps the statistics it was initialised with (mean 0,
variance 1), which suit no real activations: its features collapse and a probe on them scores
chance. So its statistics are re-estimated first, on the probe's training images (momentum 0, one
batch in training mode), as a fair control.

`depth` counts the blocks an image has passed: 0 is the raw pixels (a baseline row), 1 the stem.
The blocks are those of `kerastl.backbones.backbone_blocks`, the ones `--unfreeze N` counts from
the top, so "the blocks after the best one" is an `--unfreeze` value.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Sequence

import keras
import numpy as np

from kerastl.backbones import Backbone, backbone_blocks
from kerastl.files import atomic_write_text

PROBE_CSV = "probe.csv"
IMAGENET, RANDOM, FINE_TUNED, PIXELS = "imagenet", "random", "fine-tuned", "pixels"
WEIGHT_LABELS = {
    IMAGENET: "ImageNet weights (frozen)",
    RANDOM: "random weights, batch norm re-estimated",
    FINE_TUNED: "the run's fine-tuned weights",
    PIXELS: "raw pixels",
}
BATCH_NORM_BATCH = 512  # images whose statistics a random backbone's batch norm takes
PREDICT_BATCH = 128


@dataclass(frozen=True)
class ProbeRow:
    block: str
    depth: int
    width: int
    weights: str
    train_images: int
    test_images: int
    test_accuracy: float


# The blocks and their pooled outputs -----------------------------------------------------------


def block_outputs(spec: Backbone, backbone: keras.Model) -> list[tuple[str, keras.layers.Layer]]:
    """(block name, the layer whose output ends the block), stem to top.

    A block ends at the last layer, in model order, that belongs to it and still has a feature map
    (4-D output): the residual add or activation after its last weighted layer, never the pooling.
    """
    blocks = [name for name, _ in backbone_blocks(spec, backbone)]
    last: dict[str, keras.layers.Layer] = {}
    current = None
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.InputLayer) or len(layer.output.shape) != 4:
            continue
        block = spec.block_of(layer.name)
        if block in blocks and (current is None or blocks.index(block) >= blocks.index(current)):
            current = block
        if current is not None:
            last[current] = layer
    return [(name, last[name]) for name in blocks if name in last]


def pooled_block_model(spec: Backbone, backbone: keras.Model, adapter: keras.Model) -> keras.Model:
    """Raw pixels -> [the global average of each block's output], one vector per image and block."""
    ends = block_outputs(spec, backbone)
    taps = keras.Model(backbone.input, [layer.output for _, layer in ends])
    pooled = [keras.layers.GlobalAveragePooling2D(name=f"pool_{name}")(t) for (name, _), t in zip(ends, taps(adapter.output))]
    return keras.Model(adapter.input, pooled, name=f"{backbone.name}_blocks")


def block_features(spec: Backbone, backbone: keras.Model, adapter: keras.Model, images: np.ndarray) -> dict[str, np.ndarray]:
    """{block: pooled features [n, width]} of `images` (raw pixels), stem to top."""
    model = pooled_block_model(spec, backbone, adapter)
    outputs = model.predict(images, batch_size=PREDICT_BATCH, verbose=0)
    names = [name for name, _ in block_outputs(spec, backbone)]
    return {name: np.asarray(out, "float32") for name, out in zip(names, outputs)}


# A fair random control ----------------------------------------------------------------------------


def _batch_norm_layers(model) -> list[keras.layers.BatchNormalization]:
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
        elif hasattr(layer, "layers"):
            found += _batch_norm_layers(layer)
    return found


def reestimate_batch_norm(backbone: keras.Model, inputs: np.ndarray) -> int:
    """Set every batch-norm layer's moving mean and variance to those of `inputs` (backbone input
    space, one batch), layer after layer in one training-mode pass with momentum 0; returns the
    number of layers set."""
    layers = _batch_norm_layers(backbone)
    momenta = [layer.momentum for layer in layers]
    try:
        for layer in layers:
            layer.momentum = 0.0
        backbone(keras.ops.convert_to_tensor(inputs), training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    return len(layers)


# The probe ------------------------------------------------------------------------------------------


def linear_probe(train: np.ndarray, y_train: np.ndarray, seed: int = 0):
    """A multinomial logistic regression on standardised features, fitted (a scikit-learn pipeline)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a few deep, wide blocks stop at max_iter; the score stands
        classifier.fit(train.reshape(len(train), -1), y_train)
    return classifier


def linear_probe_accuracy(train: np.ndarray, y_train: np.ndarray, test: np.ndarray, y_test: np.ndarray, seed: int = 0) -> float:
    """Test accuracy of `linear_probe` trained on `train`."""
    return float(linear_probe(train, y_train, seed).score(test.reshape(len(test), -1), y_test))


def probe_rows(weights: str, train: dict[str, np.ndarray], y_train: np.ndarray, test: dict[str, np.ndarray],
               y_test: np.ndarray, first_depth: int = 1) -> list[ProbeRow]:
    """One row per block (in order) for the features of one set of weights."""
    rows = []
    for depth, block in enumerate(train, start=first_depth):
        accuracy = linear_probe_accuracy(train[block], y_train, test[block], y_test)
        rows.append(ProbeRow(block, depth, int(np.prod(train[block].shape[1:])), weights, len(y_train), len(y_test), round(accuracy, 4)))
    return rows


def pixel_row(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> ProbeRow:
    """The baseline: the same probe on the raw pixels (depth 0)."""
    rows = probe_rows(PIXELS, {PIXELS: x_train.astype("float32")}, y_train, {PIXELS: x_test.astype("float32")}, y_test, first_depth=0)
    return rows[0]


# probe.csv -------------------------------------------------------------------------------------------


COLUMNS = tuple(f.name for f in fields(ProbeRow))


def write_csv(path: Path, rows: Sequence[ProbeRow]) -> None:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(asdict(r) for r in rows)
    atomic_write_text(Path(path), out.getvalue())


def read_csv(path: Path) -> list[ProbeRow]:
    with open(path, newline="") as f:
        return [
            ProbeRow(r["block"], int(r["depth"]), int(r["width"]), r["weights"], int(r["train_images"]), int(r["test_images"]),
                     float(r["test_accuracy"]))
            for r in csv.DictReader(f)
        ]
