"""How each backbone family's layers group into blocks, by layer name (for `--mode partial
--unfreeze N`, the per-block probe and the learning-rate groups); each maps a layer name to its
block's name, in model order."""

from __future__ import annotations

import re


def efficientnet(name: str) -> str:
    return name.split("_", 1)[0]  # stem, block0 .. block20, top


def resnet18(name: str) -> str:
    match = re.match(r"layer\d", name)
    return match.group(0) if match else "stem"


def keras_resnet(name: str) -> str:
    return name.split("_", 1)[0]  # conv1 .. conv5


def mobilenet_v2(name: str) -> str:
    if name.startswith("expanded_conv"):
        return "block_0"
    match = re.match(r"block_\d+", name)
    if match:
        return match.group(0)
    return "top" if name.startswith(("Conv_1", "out_relu")) else "stem"
