"""The training recipe's parts: augmentation only while training, label-smoothed loss."""

import numpy as np
import pytest
import keras

from kerastl.losses import SparseCrossentropy, training_loss
from kerastl.models import build_cnn, build_mlp


@pytest.mark.every_backend
def test_augmentation_changes_training_inputs_only():
    keras.utils.set_random_seed(0)
    plain, augmented = build_mlp(), build_mlp(augment=True)
    augmented.set_weights(plain.get_weights())  # augmentation layers hold no weights
    assert [layer.name for layer in augmented.layers[1:4]] == ["augment_shift", "augment_rotate", "augment_zoom"]
    assert [layer.name for layer in build_cnn(augment=True).layers[1:3]] == ["augment_shift", "rescale"]
    x = np.random.default_rng(0).integers(0, 256, (4, 28, 28, 1)).astype("float32")
    at_inference = keras.ops.convert_to_numpy(augmented(x, training=False))
    np.testing.assert_allclose(at_inference, keras.ops.convert_to_numpy(plain(x, training=False)), rtol=1e-5, atol=1e-6)
    shifted = keras.Model(augmented.input, augmented.get_layer("augment_zoom").output)
    moved = keras.ops.convert_to_numpy(shifted(x, training=True))
    assert moved.shape == x.shape and np.abs(moved - x).mean() > 1.0  # pixels really moved


@pytest.mark.every_backend
def test_label_smoothing_loss_matches_the_formula():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], "float32")
    labels = np.array([0, 2])
    eps = 0.1
    target = np.full((2, 3), eps / 3) + np.eye(3)[labels] * (1 - eps)
    expected = -(target * np.log(probs)).sum(axis=1).mean()
    got = float(keras.ops.convert_to_numpy(SparseCrossentropy(eps)(labels, probs)))
    assert abs(got - expected) < 1e-5
    plain = float(keras.ops.convert_to_numpy(SparseCrossentropy(0.0)(labels, probs)))
    assert abs(plain - (-np.log([0.7, 0.8]).mean())) < 1e-5
    assert training_loss(0.0) == "sparse_categorical_crossentropy"
    restored = SparseCrossentropy.from_config(SparseCrossentropy(eps).get_config())
    assert restored.label_smoothing == eps
