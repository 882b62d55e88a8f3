"""Pixel work as Keras layers at the front of every model.

Raw uint8-valued 28x28x1 pixels go in; the layers rescale to [0, 1], resize to the model's input
size, tile grey to RGB for ImageNet backbones and apply the backbone's normalisation. Because they
are layers, this runs on the accelerator inside the compiled step, and every saved or exported
model accepts raw pixels.
"""

from __future__ import annotations

from typing import Sequence

import keras
from keras import layers

from kerastl.data.datasets import IMAGE_SHAPE


def pixel_adapter(
    x,
    size: int = IMAGE_SHAPE[0],
    rgb: bool = False,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
):
    """Apply rescale -> resize -> grey-to-RGB -> normalise to the symbolic tensor `x`.

    `mean` and `std` are per channel, for pixels in [0, 1].
    """
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(x)
    if size != x.shape[1]:
        x = layers.Resizing(size, size, interpolation="bilinear", name="resize")(x)
    if rgb:
        x = layers.Concatenate(name="grey_to_rgb")([x, x, x])
    if mean is not None:
        variance = [s * s for s in (std or [1.0] * len(mean))]
        x = layers.Normalization(mean=list(mean), variance=variance, name="normalize")(x)
    return x


def augmentation(x, shift: float = 0.1, rotation: float = 0.03, zoom: float = 0.1):
    """Random shifts (share of the side), rotations (share of a full turn: 0.03 is ~11 degrees) and
    zooms of the raw digit, as Keras layers: active in `fit` only, identity at inference and in
    every exported model. A strength of 0 leaves its layer out. Never flips: a mirrored digit is
    another digit or none."""
    if shift:
        x = layers.RandomTranslation(shift, shift, fill_mode="constant", name="augment_shift")(x)
    if rotation:
        x = layers.RandomRotation(rotation, fill_mode="constant", name="augment_rotate")(x)
    if zoom:
        x = layers.RandomZoom(zoom, fill_mode="constant", name="augment_zoom")(x)
    return x


def pixels_input() -> keras.KerasTensor:
    """The model input: raw pixel values 0..255 (any numeric dtype is cast to float32)."""
    return keras.Input(IMAGE_SHAPE, dtype="float32", name="pixels")
