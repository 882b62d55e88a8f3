"""The training loss: sparse categorical cross-entropy, with optional label smoothing.

Keras' `SparseCategoricalCrossentropy` has no `label_smoothing`; this one turns the integer labels
into one-hot rows inside the step and calls the categorical loss, which has it.
"""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="kerastl")
class SparseCrossentropy(keras.losses.Loss):
    """Cross-entropy of integer labels against class probabilities, with label smoothing."""

    def __init__(self, label_smoothing: float = 0.0, name: str = "sparse_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        classes = keras.ops.shape(y_pred)[-1]
        labels = keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32")
        one_hot = keras.ops.one_hot(labels, classes, dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(one_hot, y_pred, label_smoothing=self.label_smoothing)

    def get_config(self) -> dict:
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def training_loss(label_smoothing: float):
    """The loss `model.compile` gets: Keras' own when there is no smoothing."""
    if not label_smoothing:
        return "sparse_categorical_crossentropy"
    return SparseCrossentropy(label_smoothing)
