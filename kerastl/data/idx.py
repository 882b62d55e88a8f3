"""Read the IDX files MNIST and Fashion-MNIST are distributed as (`.gz` or not)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from kerastl.errors import UserError

# the four files of the standard distribution, by role
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


def read_idx(path: Path) -> np.ndarray:
    """Return the array stored in one IDX file of unsigned bytes."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise UserError(f"{path}: cannot read IDX file ({exc})") from None
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise UserError(f"{path}: not an IDX file of unsigned bytes")
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = struct.unpack(f">{ndim}I", data[4:header])
    if len(data) - header != int(np.prod(shape)):
        raise UserError(f"{path}: IDX file is truncated or has trailing bytes")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def find_idx_file(folder: Path, stem: str) -> Path:
    """The file `stem` in `folder`, gzipped or not (also accepts the `.idx3-ubyte` dot variant)."""
    candidates = [stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"]
    for name in candidates:
        if (folder / name).is_file():
            return folder / name
    raise UserError(f"{folder}: missing {stem}[.gz]")


def read_idx_folder(folder: Path) -> dict[str, np.ndarray]:
    """Read the four standard IDX files from `folder` into uint8 images (N,28,28,1) and int64 labels."""
    arrays = {role: read_idx(find_idx_file(folder, stem)) for role, stem in IDX_FILES.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise UserError(f"{folder}: {split} images {images.shape} do not match labels {labels.shape}")
        arrays[f"x_{split}"] = images[..., None]
        arrays[f"y_{split}"] = labels.astype(np.int64)
    return arrays
