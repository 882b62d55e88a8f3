"""Backbones built by keras.applications, with kerastl's builder signature."""

from __future__ import annotations

import keras


def resnet50(input_shape, include_top=False, pooling="avg", weights=None) -> keras.Model:
    return keras.applications.ResNet50(include_top=include_top, weights=weights, input_shape=input_shape, pooling=pooling)


def mobilenet_v2(input_shape, include_top=False, pooling="avg", weights=None) -> keras.Model:
    return keras.applications.MobileNetV2(include_top=include_top, weights=weights, input_shape=input_shape, pooling=pooling)
