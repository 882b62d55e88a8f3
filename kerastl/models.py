"""Model builders: the MLP and CNN trained from scratch, and a pretrained backbone with a new head.

Every model takes raw pixels of its dataset's stored shape (28x28x1 for MNIST) and returns the
probabilities of the dataset's classes (a `DataInfo`; MNIST's when none is given).
"""

from __future__ import annotations

from typing import NamedTuple

import keras
from keras import layers

from kerastl.backbones import backbone_spec, build_backbone
from kerastl.data.datasets import DATASETS, DataInfo, builtin_info
from kerastl.batch_norm import BN_MOMENTUM
from kerastl.preprocessing import augmentation, pixel_adapter, pixels_input

MNIST = builtin_info("mnist")
# From-scratch models standardise pixels with the dataset's statistics (MNIST's, or measured on a
# folder's training images): with He initialisation the first layers get unit-scale outputs, which
# the batch-norm moving variance (initialised to 1) tracks from the first steps.


class TransferModel(NamedTuple):
    model: keras.Model  # raw pixels -> probabilities
    backbone: keras.Model
    head: keras.Model  # the backbone's pooled features -> probabilities; its layers are the model's
    features: keras.Model  # raw pixels -> the backbone's pooled features (the model up to its head)


def _head_layers(dropout: float, classes: int) -> list[layers.Layer]:
    """The new head: dropout, `Dense(classes)` logits, softmax kept in float32 under mixed precision.

    Made in that order on purpose: each layer draws its seed (Dropout's mask generator, Dense's
    initializer) from the global seed as it is constructed, so constructing Dense first swaps the
    two and a seeded run follows another path (it did: the README's command gave 99.17 % instead
    of 99.33 % until the order was restored)."""
    stack = [layers.Dropout(dropout, name="head_dropout")] if dropout else []
    return stack + [layers.Dense(classes, name="classifier"), layers.Activation("softmax", dtype="float32", name="probabilities")]


def _classifier(x, dropout: float, classes: int):
    return _apply(_head_layers(dropout, classes), x)


def _apply(stack: list[layers.Layer], x):
    for layer in stack:
        x = layer(x)
    return x


def _raw_pixels(data: DataInfo, augment: bool, **strengths):
    """The model input and, with `augment`, the random shifts, rotations and zooms after it: the
    border they uncover is black for the built-in datasets (their background), reflected for photos."""
    inputs = pixels_input(data.image_shape)
    fill = "constant" if data.name in DATASETS else "reflect"
    return inputs, (augmentation(inputs, fill_mode=fill, **strengths) if augment else inputs)


def build_mlp(
    hidden: tuple[int, ...] = (512, 512), dropout: float = 0.2, augment: bool = False, data: DataInfo = MNIST
) -> keras.Model:
    """784-512-512-10 with dropout (for MNIST)."""
    inputs, x = _raw_pixels(data, augment)
    x = pixel_adapter(x, mean=data.mean, std=data.std)
    x = layers.Flatten(name="flatten")(x)
    for i, units in enumerate(hidden):
        x = layers.Dense(units, activation="relu", name=f"dense{i}")(x)
        x = layers.Dropout(dropout, name=f"dropout{i}")(x)
    return keras.Model(inputs, _classifier(x, 0.0, data.num_classes), name="mlp")


def build_cnn(
    filters: tuple[int, ...] = (16, 32, 64), dense: int = 128, dropout: float = 0.3, augment: bool = False,
    data: DataInfo = MNIST,
) -> keras.Model:
    """Three conv-BN-ReLU layers (max-pooled after the first two), a dense layer and the classifier.

    Sized for a laptop: about 2.3 M multiply-adds per image, as many as the keras.io "Simple MNIST
    convnet" (99.1-99.35 %), but batch norm, a third conv layer at 7x7, a cosine schedule, label
    smoothing and random shifts carry it to about 99.5 % in 12 epochs (see configs/cnn.yaml).
    """
    inputs, x = _raw_pixels(data, augment, shift=0.08, rotation=0.0, zoom=0.0)
    x = pixel_adapter(x, mean=data.mean, std=data.std)
    for block, n in enumerate(filters):
        x = layers.Conv2D(n, 3, padding="same", use_bias=False, kernel_initializer="he_normal", name=f"conv{block}")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"bn{block}")(x)
        x = layers.ReLU(name=f"relu{block}")(x)
        if block < len(filters) - 1:
            x = layers.MaxPooling2D(name=f"pool{block}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.Dense(dense, use_bias=False, kernel_initializer="he_normal", name="dense")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="dense_bn")(x)
    x = layers.ReLU(name="dense_relu")(x)
    return keras.Model(inputs, _classifier(x, dropout, data.num_classes), name="cnn")


def build_transfer_model(
    backbone: str, img_size: int | None = None, weights: str | None = "imagenet", dropout: float = 0.2,
    backbone_inference_mode: bool = True, augment: bool = False, log=print, data: DataInfo = MNIST,
) -> TransferModel:
    """A pretrained backbone behind the pixel adapter, with a new `Dense(classes)` head.

    The backbone is frozen (`trainable=False`) and called with `training=False`. What keeps its
    batch-norm layers in inference mode once it is unfrozen for fine-tuning is that they stay
    frozen (kerastl.backbones.unfreeze): in Keras 3 the outer model's `training=True` overrides the
    `training=False` recorded here. Only pretraining from scratch (`backbone_inference_mode=False`)
    lets batch norm learn its statistics. The head is also returned as a model of its own on the
    backbone's features (feature mode trains it on features computed once).
    """
    spec = backbone_spec(backbone)
    size = img_size or spec.input_size
    inputs, x = _raw_pixels(data, augment)
    x = pixel_adapter(x, size, rgb=data.image_shape[-1] == 1, mean=spec.mean, std=spec.std)
    base = build_backbone(backbone, size, weights, log=log)
    base.trainable = False
    features = base(x, training=False) if backbone_inference_mode else base(x)
    head_layers = _head_layers(dropout, data.num_classes)
    model = keras.Model(inputs, _apply(head_layers, features), name=f"{spec.model_name}_transfer")
    head_input = keras.Input(tuple(features.shape[1:]), name="features")
    head = keras.Model(head_input, _apply(head_layers, head_input), name="head")
    return TransferModel(model, base, head, keras.Model(inputs, features, name="features"))


BUILDERS = {"mlp": build_mlp, "cnn": build_cnn}
__all__ = ["BUILDERS", "TransferModel", "build_cnn", "build_mlp", "build_transfer_model"]
