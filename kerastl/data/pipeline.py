"""The input pipeline: uint8 image batches, shuffled with a seed, prefetched.

All pixel work (cast, rescale, resize, channel tiling, normalisation) lives in layers at the front of
the model, so it runs inside the compiled step and exported models take raw pixels. Here we only
batch, with `tf.data` (TensorFlow is a dependency on every backend). Images of a folder
(`kerastl.data.folders.FileImages`) are streamed from their files.

Every batch must split evenly over the devices, and where steps compile per batch shape (JAX, an
accelerator) every batch is full (kerastl.distribute.Placement): a training set drops a last batch
that cannot split (`steps_per_epoch` counts the steps that remain), and an evaluation set is padded
with images of weight 0 (the real images weighted so that loss and accuracy stay exact).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kerastl.data.folders import FileImages, file_dataset
from kerastl.distribute import active


def make_dataset(
    x: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool = False, seed: int = 0, cache: bool = True, passes: int = 1
) -> Any:
    """A `tf.data.Dataset` of (uint8 images, int labels) batches.

    `passes` > 1 goes over the images that many times per epoch (reshuffled each time), so a tiny
    training set makes enough steps per epoch to pay for the per-epoch work (validation, checkpoints).

    `shuffle` marks training data (see the module note on even batches); evaluation batches that
    would not split over the devices are padded with images of weight 0.
    """
    x, y, weights, drop_remainder = even_batches(x, y, batch_size, training=shuffle)
    if isinstance(x, FileImages):
        _keep_tensorflow_off_the_gpu_unless_tensorflow()
        return file_dataset(x, y, weights, batch_size, shuffle, seed, drop_remainder, passes)
    import tensorflow as tf  # a dependency of kerastl on every backend: tf.data feeds them all

    _keep_tensorflow_off_the_gpu_unless_tensorflow()
    ds = tf.data.Dataset.from_tensor_slices((x, y) if weights is None else (x, y, weights))
    if cache:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
    if passes > 1:
        ds = ds.repeat(passes)
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def drops_last_batch(images: int, batch_size: int, multiple: int) -> bool:
    """Whether a training pipeline of `images` drops its last batch: one that would not split over
    the devices (`multiple`, kerastl.distribute.Placement.batch_multiple)."""
    return (images % batch_size) % multiple != 0


def steps_per_epoch(images: int, batch_size: int, passes: int = 1, multiple: int = 1) -> int:
    """The optimiser steps one training epoch really makes: `passes` over `images` in batches of
    `batch_size`, less a last batch that is dropped (`drops_last_batch`). The schedule sized to the
    data, the learning-rate schedule, fit's steps and the log all use this one count."""
    batches, rest = divmod(images * passes, batch_size)
    return batches + (1 if rest and not drops_last_batch(images, batch_size, multiple) else 0)


def even_batches(x: np.ndarray, y: np.ndarray, batch_size: int, training: bool):
    """(x, y, weights or None, drop_remainder) so that every batch splits over the devices."""
    multiple = active().batch_multiple(batch_size)
    if not drops_last_batch(len(y), batch_size, multiple):
        return x, y, None, False
    if training:
        return x, y, None, True
    pad = -(len(y) % batch_size) % multiple
    weights = np.concatenate([np.full(len(y), (len(y) + pad) / len(y), "float32"), np.zeros(pad, "float32")])
    x = x.padded(pad) if isinstance(x, FileImages) else np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])
    y = np.concatenate([y, np.zeros(pad, y.dtype)])
    return x, y, weights, False


def predict_in_batches(model, x: np.ndarray, batch_size: int) -> np.ndarray:
    """`model.predict` in batches, padded to split over the devices and trimmed again."""
    if isinstance(x, FileImages):  # image files: streamed, in order
        images = make_dataset(x, np.zeros(len(x), "int64"), batch_size).map(lambda image, *_: image)
        return model.predict(images, verbose=0)[: len(x)]
    padded, _, _, _ = even_batches(x, np.zeros(len(x), "int64"), batch_size, training=False)
    return model.predict(padded, batch_size=batch_size, verbose=0)[: len(x)]


def _keep_tensorflow_off_the_gpu_unless_tensorflow() -> None:
    """tf.data only needs the CPU; under JAX or PyTorch, TensorFlow must not claim GPU memory."""
    import keras
    import tensorflow as tf

    if keras.backend.backend() == "tensorflow":
        return
    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # TensorFlow already initialised its devices
        pass


def fit_inputs(x: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool, seed: int, passes: int = 1) -> dict:
    """Keyword arguments for `model.fit` / `model.evaluate`: the tf.data pipeline as `x`."""
    return {"x": make_dataset(x, y, batch_size, shuffle=shuffle, seed=seed, passes=passes)}


def validation_data(x: np.ndarray, y: np.ndarray, batch_size: int) -> Any:
    """The `validation_data` argument of `model.fit`: a tf.data pipeline."""
    return make_dataset(x, y, batch_size)
