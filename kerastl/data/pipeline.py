"""The input pipeline: uint8 28x28x1 batches, shuffled with a seed, prefetched.

All pixel work (cast, rescale, resize, channel tiling, normalisation) lives in layers at the front of
the model, so it runs inside the compiled step and exported models take raw pixels. Here we only
batch. With TensorFlow installed this is `tf.data`; without it, the arrays go to `fit` directly.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def tensorflow_available() -> bool:
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        return False
    return True


def make_dataset(
    x: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool = False, seed: int = 0, cache: bool = True, passes: int = 1
) -> Any:
    """A `tf.data.Dataset` of (uint8 images, int labels) batches, or the arrays when TF is absent.

    `passes` > 1 goes over the images that many times per epoch (reshuffled each time), so a tiny
    training set makes enough steps per epoch to pay for the per-epoch work (validation, checkpoints).
    """
    if not tensorflow_available():
        return (np.concatenate([x] * passes), np.concatenate([y] * passes)) if passes > 1 else (x, y)
    import keras
    import tensorflow as tf

    if keras.backend.backend() != "tensorflow":
        _keep_tensorflow_off_the_gpu(tf)
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if cache:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
    if passes > 1:
        ds = ds.repeat(passes)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _keep_tensorflow_off_the_gpu(tf) -> None:
    """tf.data only needs the CPU; under JAX or PyTorch, TensorFlow must not claim GPU memory."""
    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # TensorFlow already initialised its devices
        pass


def fit_inputs(x: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool, seed: int, passes: int = 1) -> dict:
    """Keyword arguments for `model.fit` / `model.evaluate`: a dataset, or arrays plus batch size."""
    data = make_dataset(x, y, batch_size, shuffle=shuffle, seed=seed, passes=passes)
    if isinstance(data, tuple):
        return {"x": data[0], "y": data[1], "batch_size": batch_size}
    return {"x": data}


def validation_data(x: np.ndarray, y: np.ndarray, batch_size: int) -> Any:
    """The `validation_data` argument of `model.fit`: a dataset, or an (x, y) tuple."""
    return make_dataset(x, y, batch_size)
