"""The penultimate features and the logits of a trained kerastl model, in batches.

Every kerastl model ends in the same head (kerastl.models): a `Dense` layer named "classifier"
gives the logits, a softmax named "probabilities" follows. Its input is the penultimate feature
vector (the CNN's 128-wide dense layer, a backbone's pooled features)."""

from __future__ import annotations

import numpy as np

CLASSIFIER = "classifier"  # kerastl.models names the head's Dense layer so


def features_and_logits_model(model):
    """A keras.Model sharing the layers: the same pixels in, [penultimate features, logits] side by
    side out (one output, so kerastl.data's batched predict serves arrays and image files alike)."""
    import keras  # deferred: this module is imported by light code paths

    classifier = model.get_layer(CLASSIFIER)
    both = keras.layers.Concatenate(dtype="float32", name="features_and_logits")
    return keras.Model(model.inputs, both([classifier.input, classifier.output]), name="features_and_logits")


def features_and_logits(model, x, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(features [n, d], logits [n, classes]) of pixels `x` (an array or an image folder's
    FileImages), float32, one pass in batches."""
    from kerastl.data import predict_in_batches

    classes = int(model.get_layer(CLASSIFIER).output.shape[-1])
    both = features_and_logits_model(model)
    if len(x) == 0:
        width = int(both.output.shape[-1])
        return np.zeros((0, width - classes), "float32"), np.zeros((0, classes), "float32")
    out = np.asarray(predict_in_batches(both, x, batch_size), "float32")
    return out[:, :-classes], out[:, -classes:]
