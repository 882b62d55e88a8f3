"""Backbones: the registry's records (kerastl.backbones.registry, readable without Keras), built,
loaded with their weights and grouped into blocks. Any keras-hub vision backbone joins as
`hub:PRESET` (kerastl.backbones.hub).
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from kerastl.backbones import hub
from kerastl.backbones.registry import BACKBONES, IMAGENET_MEAN, IMAGENET_STD, NATIVE_SIZE, Backbone
from kerastl.errors import UserError

if TYPE_CHECKING:
    import keras


def backbone_spec(name: str) -> Backbone:
    """The registry entry `name`, or one made for a keras-hub preset `hub:PRESET`."""
    if hub.is_hub(name):
        return _hub_spec(name)
    if name not in BACKBONES:
        raise UserError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}, or hub:PRESET (keras-hub)")
    return BACKBONES[name]


@lru_cache(maxsize=None)
def _hub_spec(name: str) -> Backbone:
    """Made once per preset: reading its normalisation opens the preset (on disk or online)."""
    preset = hub.preset_of(name)
    mean, std = hub.normalisation(preset) or (IMAGENET_MEAN, IMAGENET_STD)
    return Backbone(
        name, name, "kerastl.backbones.hub:build", NATIVE_SIZE, mean, std, "kerastl.backbones.hub:block_of",
        f"the keras-hub preset {preset}", f"the licence on the keras-hub preset {preset}'s model card",
        builder_args=(preset,), model_name=hub.model_name(preset),
    )


def build_backbone(name: str, size: int, weights: str | None = "imagenet", log=print) -> keras.Model:
    """The backbone `name` at `size`x`size`, pooled to a feature vector, with `weights` loaded.

    `weights` is "imagenet", "none" (random initialisation) or a path to a Keras `.weights.h5`
    or a PyTorch `.pth` state dict.
    """
    from kerastl.backbones.weights import load_backbone

    return load_backbone(backbone_spec(name), size, weights, log=log)


def backbone_blocks(spec: Backbone, model: keras.Model) -> list[tuple[str, list[keras.Layer]]]:
    """The backbone's weighted layers grouped into blocks, in order from input to output."""
    groups: dict[str, list[keras.Layer]] = {}
    for layer in model.layers:
        if not layer.weights:
            continue
        groups.setdefault(spec.block_of(layer.name), []).append(layer)
    return list(groups.items())


__all__ = ["BACKBONES", "Backbone", "IMAGENET_MEAN", "IMAGENET_STD", "NATIVE_SIZE", "backbone_blocks", "backbone_spec", "build_backbone"]


def unfreeze(backbone_name: str, backbone: keras.Model, top_blocks: int | None = None) -> list[str]:
    """Make the backbone trainable, or only its top `top_blocks` blocks; returns the trained blocks.

    Batch-norm layers stay frozen, which keeps them in inference mode: in Keras 3 the outer
    model's `training=True` overrides the `training=False` recorded when the backbone was called
    (measured on all three backends with Keras 3.15), so `trainable=False` is what holds them.
    """
    import keras  # the registry and the config read this package without starting Keras

    blocks = backbone_blocks(backbone_spec(backbone_name), backbone)
    backbone.trainable = True
    names = [name for name, _ in blocks[-top_blocks:]] if top_blocks else [name for name, _ in blocks]
    for name, block_layers in blocks:
        for layer in block_layers:
            layer.trainable = name in names and not isinstance(layer, keras.layers.BatchNormalization)
    return names
