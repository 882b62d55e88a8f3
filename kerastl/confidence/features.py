"""The penultimate features and the logits of a trained kerastl model, in batches.

Every kerastl model ends in the same head (kerastl.models): a `Dense` layer named "classifier"
gives the logits, a softmax named "probabilities" follows. Its input is the penultimate feature
vector (the CNN's 128-wide dense layer, a backbone's pooled features)."""

from __future__ import annotations

import numpy as np

CLASSIFIER = "classifier"  # kerastl.models names the head's Dense layer so


def features_and_logits_model(model):
    """A keras.Model: the same pixels in, [penultimate features, logits] out, sharing the layers."""
    import keras  # deferred: this module is imported by light code paths

    classifier = model.get_layer(CLASSIFIER)
    return keras.Model(model.inputs, [classifier.input, classifier.output], name="features_and_logits")


def features_and_logits(model, x: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(features [n, d], logits [n, classes]) of pixels `x`, float32, one pass in batches."""
    both = features_and_logits_model(model)
    features, logits = [], []
    for start in range(0, len(x), batch_size):
        f, z = both.predict_on_batch(np.asarray(x[start:start + batch_size], "float32"))
        features.append(np.asarray(f, "float32"))
        logits.append(np.asarray(z, "float32"))
    if not features:
        width = int(both.outputs[0].shape[-1]), int(both.outputs[1].shape[-1])
        return np.zeros((0, width[0]), "float32"), np.zeros((0, width[1]), "float32")
    return np.concatenate(features), np.concatenate(logits)
