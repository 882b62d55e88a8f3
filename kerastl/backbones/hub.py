"""Any keras-hub vision backbone as a kerastl backbone: `--backbone hub:PRESET`.

PRESET is a keras-hub preset name (`resnet_18_imagenet`, downloaded from Kaggle / Hugging Face when
online) or a local preset folder (what `backbone.save_to_preset(DIR)` writes; works offline).
keras-hub is an optional extra: `pip install "kerastl[hub]"`.

The preset's backbone graph is reused as one flat functional model ending in global average
pooling, so freezing, partial unfreezing by blocks and batch norm in inference mode work as for the
built-in backbones, and a saved model of core Keras layers loads without keras-hub.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from kerastl.errors import UserError, first_line

PREFIX = "hub:"
if TYPE_CHECKING:
    import keras

INSTALL = 'pip install "kerastl[hub]"  (or: pip install keras-hub)'


def is_hub(name: str) -> bool:
    return name.startswith(PREFIX)


def preset_of(name: str) -> str:
    preset = name[len(PREFIX):]
    if not preset:
        raise UserError("--backbone hub:PRESET needs a keras-hub preset name or a local preset folder after 'hub:'")
    return str(Path(preset).expanduser()) if _is_local(preset) else preset


def _is_local(preset: str) -> bool:
    return "/" in preset or preset.startswith(".") or Path(preset).expanduser().is_dir()


def keras_hub():
    try:
        import keras_hub as hub
    except ImportError:
        raise UserError(f"--backbone hub:... needs keras-hub, which is not installed: {INSTALL}") from None
    return hub


def block_of(layer_name: str) -> str:
    """keras-hub names layers `stack0_block0_...` (ResNet), `block1a_...` (EfficientNet), ...:
    a block is the stage its name starts with; the rest is the stem."""
    match = re.match(r"(stack|stage|block|layer|conv)_?\d+", layer_name)
    return match.group(0) if match else "stem"


def build(preset: str, input_shape, include_top: bool = False, pooling: str | None = "avg", weights=None) -> keras.Model:
    """The preset's backbone, pretrained (`weights="imagenet"`: the preset's weights) or random,
    as a flat model from `input_shape` images to pooled features."""
    import keras  # deferred: the backbone registry reads this module without starting Keras

    if include_top:
        raise UserError("hub backbones are used without their classifier")
    hub = keras_hub()
    if _is_local(preset) and not Path(preset).is_dir():
        raise UserError(f"--backbone hub:{preset}: no such preset folder")
    try:
        try:
            backbone = hub.models.Backbone.from_preset(preset, load_weights=weights == "imagenet", image_shape=tuple(input_shape))
        except TypeError:  # a backbone without an `image_shape` argument
            backbone = hub.models.Backbone.from_preset(preset, load_weights=weights == "imagenet")
    except Exception as exc:
        where = "the local folder" if _is_local(preset) else "keras-hub's preset (needs internet the first time)"
        raise UserError(f"--backbone hub:{preset}: cannot load {where}: {first_line(exc)}") from None
    features = backbone.output
    if not isinstance(features, keras.KerasTensor) or len(features.shape) != 4:
        raise UserError(f"--backbone hub:{preset}: its output is not the feature map of an image backbone")
    pooled = keras.layers.GlobalAveragePooling2D(name="avg_pool")(features) if pooling == "avg" else features
    return keras.Model(backbone.inputs, pooled, name=model_name(preset))  # the preset's layers, not nested


def model_name(preset: str) -> str:
    return "hub_" + re.sub(r"[^A-Za-z0-9_]+", "_", Path(preset).name or preset).strip("_")


def normalisation(preset: str) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """The preset's pixel normalisation as mean and std of [0, 1] pixels, from its image converter
    (scale and offset on 0..255 pixels); None when it has none."""
    hub = keras_hub()
    try:
        converter = hub.layers.ImageConverter.from_preset(preset)
    except Exception:  # a backbone-only preset (save_to_preset) has no image converter
        return None
    scale, offset = converter.scale, converter.offset
    if scale is None:
        return None
    scales = list(scale) if isinstance(scale, (list, tuple)) else [scale] * 3
    offsets = list(offset) if isinstance(offset, (list, tuple)) else [offset or 0.0] * 3
    std = tuple(1.0 / (255.0 * s) for s in scales)
    mean = tuple(-o / (255.0 * s) for o, s in zip(offsets, scales))
    return mean, std
