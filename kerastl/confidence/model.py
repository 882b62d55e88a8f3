"""The gated model: a trained kerastl model whose output is its calibrated probabilities scaled by
how in-distribution the picture is, built from standard Keras layers only.

    probabilities = softmax(logits / T) * sigmoid((tau - min_c d_c(features)) / scale)

d_c is the squared Mahalanobis distance of the model's features to class c
(kerastl.confidence.features, kerastl.confidence.detector). A digit near its class keeps its calibrated probability (the
weight is about 1); a picture far from every class gets all its scores pushed towards 0. So ONE
threshold on the top score, which app runtimes apply to a model's output on their own, abstains
both when the model hesitates between classes and when the picture is like none of them.

Only Dense, Multiply, Subtract, Reshape, GlobalMaxPooling1D, GlobalAveragePooling2D, Concatenate,
Rescaling, Activation and (for a detector fitted on fewer pictures than feature dimensions)
UnitNormalization: the model saves as model.keras and opens in plain Keras (no custom object),
and every LiteRT variant, int8 too, converts it to standard builtin ops (FULLY_CONNECTED, MUL, SUB,
MEAN, CONCATENATION, RESHAPE, REDUCE_MAX, LOGISTIC, SOFTMAX; the unit length adds SQUARE, SUM,
RSQRT, MINIMUM). The fitted numbers live in the layers' weights, so nothing else has to travel
with the file. The graph measures distances in units of the gate's midpoint (see gated_model), so
that a float16 file's numbers stay in range."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kerastl.confidence.detector import GaussianDetector
from kerastl.confidence.features import CLASSIFIER, feature_tensor

OUTPUT = "probabilities"  # the output layer's name, as in every kerastl model (kerastl.models)
# The in-distribution weight never falls below this: a picture far from every class keeps its class
# ranking (predict's "top guess") and a score above 0, which MediaPipe needs to name a class when an
# app asks for every answer (a float32 sigmoid reaches exactly 0 past about -104).
WEIGHT_FLOOR = 1e-6


@dataclass(frozen=True)
class Gate:
    """What the gate adds to a model: the temperature, the detector, and the weight's midpoint
    `tau` (a squared distance) and `scale` (how soft the step is, in squared distance)."""

    temperature: float
    detector: GaussianDetector
    tau: float
    scale: float

    def weight(self, min_distance: np.ndarray) -> np.ndarray:
        """The in-distribution weight of pictures with these smallest distances (what the graph computes)."""
        sigmoid = 1.0 / (1.0 + np.exp(-np.clip((self.tau - min_distance) / self.scale, -80, 80)))
        return WEIGHT_FLOOR + (1.0 - WEIGHT_FLOOR) * sigmoid

    def scores(self, logits: np.ndarray, features: np.ndarray) -> np.ndarray:
        """The gated probabilities [n, classes], computed in numpy as the model does."""
        from kerastl.confidence.calibration import softmax

        return softmax(logits, self.temperature) * self.weight(self.detector.min_distance(features))[:, None]


def is_gated(model) -> bool:
    return any(layer.name == "in_distribution" for layer in model.layers)


def gated_model(model, gate: Gate):
    """`model` (a trained kerastl model, raw pixels -> probabilities) with its output replaced by the
    gated probabilities. The new model shares every trained layer; the gate's layers are frozen."""
    import keras  # deferred: kerastl.confidence's numpy parts load without Keras
    from keras import layers

    features, logits = feature_tensor(model), model.get_layer(CLASSIFIER).output
    width, classes = int(features.shape[-1]), int(logits.shape[-1])
    detector = gate.detector

    fixed = {}  # layer -> its weights, set once the graph has built it

    def frozen(layer, *weights):
        layer.trainable = False
        fixed[layer] = weights
        return layer

    scaled = layers.Rescaling(1.0 / gate.temperature, dtype="float32", name="temperature")(logits)
    calibrated = layers.Activation("softmax", dtype="float32", name="calibrated")(scaled)
    if detector.unit_length:  # fitted on fewer pictures than dimensions (kerastl.confidence.detector)
        features = layers.UnitNormalization(dtype="float32", name="ood_unit_length")(features)
    # distances in units of tau (z and the means divided by sqrt(tau)): a picture at the gate's midpoint
    # is at 1, whatever the features' scale; raw squared distances reached 10^6 on a small folder's
    # features, past float16's largest number (65,504), and the float16 file answered every blank picture
    unit = np.sqrt(max(gate.tau, 1e-12))
    z = frozen(layers.Dense(width, dtype="float32", name="ood_whiten"), detector.whiten / unit, -detector.centre / unit)(features)
    squared = frozen(layers.Dense(1, use_bias=False, dtype="float32", name="ood_norm"),
                     np.ones((width, 1)))(layers.Multiply(dtype="float32", name="ood_square")([z, z]))  # ||z||^2
    means = (detector.means - detector.centre) / unit  # centred: the terms that cancel stay small in an int8 file's ranges
    cross = frozen(layers.Dense(classes, dtype="float32", name="ood_cross"),
                   2.0 * means.T, -(means ** 2).sum(axis=1))(z)  # 2 z.m_c - ||m_c||^2
    minus_distance = layers.Subtract(dtype="float32", name="ood_minus_distance")([cross, squared])  # -d_c / tau
    per_class = layers.Reshape((classes, 1), name="ood_classes")(minus_distance)
    nearest = layers.GlobalMaxPooling1D(dtype="float32", name="ood_nearest")(per_class)  # -min_c d_c / tau
    steepness = unit ** 2 / gate.scale  # sigmoid((tau - d) / scale) = sigmoid((1 - d / tau) * tau / scale)
    sigmoid = frozen(layers.Dense(1, activation="sigmoid", dtype="float32", name="in_distribution"),
                     np.full((1, 1), steepness), np.full((1,), steepness))(nearest)
    weight = frozen(layers.Dense(1, dtype="float32", name="in_distribution_floor"),
                    np.full((1, 1), 1.0 - WEIGHT_FLOOR), np.full((1,), WEIGHT_FLOOR))(sigmoid)
    gated = keras.Model(model.inputs, layers.Multiply(dtype="float32", name=OUTPUT)([calibrated, weight]),
                        name=model.name)
    for layer, weights in fixed.items():
        layer.set_weights([np.asarray(w, "float32") for w in weights])
    return gated


def ungated(model):
    """A gated model's trained probabilities, softmax(logits) without temperature or gate (the same
    layers); a model without a gate is returned as it is."""
    import keras  # deferred, as above

    if not is_gated(model):
        return model
    logits = model.get_layer(CLASSIFIER).output
    return keras.Model(model.inputs, keras.layers.Activation("softmax", dtype="float32", name="trained")(logits), name=model.name)
