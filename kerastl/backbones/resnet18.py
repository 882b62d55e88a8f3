"""ResNet-18 with torchvision's layout, as a Keras functional model, and its state-dict converter.

Layer names are torchvision's module paths with '.' written as '_' (`layer2_0_downsample_0`), so
converting a `resnet18-*.pth` is a name lookup. Padding is explicit and symmetric, as in PyTorch.
"""

from __future__ import annotations

from typing import Mapping

import keras
import numpy as np
from keras import layers

from kerastl.backbones.torch_state_dict import copy_into
from kerastl.batch_norm import BN_MOMENTUM

BN_EPSILON = 1e-5
STAGE_FILTERS = (64, 128, 256, 512)
BLOCKS_PER_STAGE = 2


def _conv(x, filters: int, kernel: int, stride: int, name: str):
    pad = kernel // 2
    if pad:
        x = layers.ZeroPadding2D(pad, name=name + "_pad")(x)
    return layers.Conv2D(filters, kernel, strides=stride, use_bias=False, name=name)(x)


def _bn(name: str):
    return layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)


def _basic_block(x, filters: int, stride: int, name: str):
    shortcut = x
    y = _conv(x, filters, 3, stride, name + "_conv1")
    y = layers.ReLU(name=name + "_relu1")(_bn(name + "_bn1")(y))
    y = _bn(name + "_bn2")(_conv(y, filters, 3, 1, name + "_conv2"))
    if stride != 1 or x.shape[-1] != filters:
        shortcut = _bn(name + "_downsample_1")(_conv(x, filters, 1, stride, name + "_downsample_0"))
    return layers.ReLU(name=name + "_out")(layers.Add(name=name + "_add")([y, shortcut]))


def resnet18(
    input_shape: tuple[int, int, int] = (224, 224, 3),
    include_top: bool = False,
    pooling: str | None = "avg",
    classes: int = 1000,
) -> keras.Model:
    """Build ResNet-18 (random weights). Inputs are ImageNet-normalised RGB images."""
    inputs = keras.Input(input_shape, name="image")
    x = _conv(inputs, 64, 7, 2, "conv1")
    x = layers.ReLU(name="relu")(_bn("bn1")(x))
    x = layers.ZeroPadding2D(1, name="maxpool_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="maxpool")(x)
    for stage, filters in enumerate(STAGE_FILTERS, start=1):
        for block in range(BLOCKS_PER_STAGE):
            stride = 2 if stage > 1 and block == 0 else 1
            x = _basic_block(x, filters, stride, f"layer{stage}_{block}")
    if include_top or pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avgpool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="maxpool_global")(x)
    if include_top:
        x = layers.Dense(classes, activation="softmax", name="fc")(x)
    return keras.Model(inputs, x, name="resnet18")


def convert_state_dict(model: keras.Model, state: Mapping[str, np.ndarray]) -> int:
    """Copy a torchvision ResNet-18 state dict into `model`; returns the number of values set."""
    return copy_into(model, state, lambda name: name.replace("_", "."))
