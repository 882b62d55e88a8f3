"""Every picture of a dataset, decoded once into what the checks need: a hash of its decoded pixels,
a 32x32 grey version (perceptual hash), a small copy the backbone and the pixel model see, its size
and whether it is in colour. An image folder is read as `fit` reads it (kerastl.data.folders: both
layouts, the same extensions); MNIST and Fashion-MNIST come from kerastl's offline sources, and their
pictures are named `SPLIT/INDEX` in the dataset's standard order.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from kerastl.data import folders
from kerastl.data.datasets import DATASETS
from kerastl.data.sources import load_arrays
from kerastl.log import Log

GREY_SIDE = 32  # the grey version the perceptual hash reads
THUMB_SIDE = 64  # folders: pictures are stored at this side for the backbone and the contact sheets
PIXEL_MODEL_SIDE = 32  # the raw-pixel model reads them averaged down to this


@dataclass
class Pictures:
    dataset: str  # mnist, fashion_mnist or the folder
    root: Path | None  # the folder (None for the built-in datasets)
    class_names: list[str]
    names: np.ndarray  # per picture: path relative to the folder, or SPLIT/INDEX
    splits: np.ndarray  # "train", "val" or "test"
    labels: np.ndarray  # int64, index into class_names (the folder it sits in)
    pixel_hashes: np.ndarray  # hex digest of the decoded RGB pixels and their shape
    grey: np.ndarray  # uint8 [n, 32, 32]
    thumbs: np.ndarray  # uint8 [n, side, side, channels]
    sizes: np.ndarray  # int [n, 2]: height, width as stored in the file
    colour: np.ndarray  # bool [n]: a colour picture (its channels differ somewhere)
    broken: list[tuple[str, str]]  # (name, why) of files that cannot be decoded
    given_splits: bool  # the folder has train/ (and test/, val/) folders, or it is a built-in dataset

    def __len__(self) -> int:
        return len(self.names)

    @property
    def split_names(self) -> list[str]:
        return [s for s in ("train", "val", "test") if (self.splits == s).any()]


def pixel_hash(rgb: np.ndarray) -> str:
    """The same digest for the same decoded pixels, whatever file format held them."""
    return hashlib.blake2b(repr(rgb.shape).encode() + rgb.tobytes(), digest_size=16).hexdigest()


def load(dataset: str, log: Log = print) -> Pictures:
    if dataset in DATASETS:
        return load_builtin(dataset, log)
    return load_folder(Path(dataset).expanduser(), log)


def load_builtin(name: str, log: Log = print) -> Pictures:
    """MNIST or Fashion-MNIST, train then test, each in its standard order."""
    arrays = load_arrays(name, log=log)
    x = np.concatenate([arrays["x_train"], arrays["x_test"]])
    counts = {"train": len(arrays["y_train"]), "test": len(arrays["y_test"])}
    names = [f"{split}/{i}" for split, n in counts.items() for i in range(n)]
    splits = np.repeat(list(counts), list(counts.values()))
    rgb = np.repeat(x, 3, axis=-1)
    hashes = np.array([pixel_hash(p) for p in rgb])
    grey = _resized(x[..., 0], GREY_SIDE)
    return Pictures(name, None, list(DATASETS[name].class_names), np.array(names, dtype=object), splits,
                    np.concatenate([arrays["y_train"], arrays["y_test"]]).astype("int64"), hashes, grey, x,
                    np.tile(x.shape[1:3], (len(x), 1)), np.zeros(len(x), bool), [], True)


def pixel_inputs(thumbs: np.ndarray, side: int = PIXEL_MODEL_SIDE) -> np.ndarray:
    """float32 [n, side * side * channels]: the pictures the raw-pixel model reads, averaged down to
    at most `side` (MNIST's 28x28 stay as they are)."""
    n, height, width, channels = thumbs.shape
    factor = max(1, height // side)
    pixels = thumbs[:, :height // factor * factor, :width // factor * factor].astype("float32")
    pixels = pixels.reshape(n, height // factor, factor, width // factor, factor, channels).mean(axis=(2, 4))
    return pixels.reshape(n, -1)


def _resized(images: np.ndarray, side: int) -> np.ndarray:
    """uint8 [n, h, w] -> [n, side, side], bilinear with antialiasing (Pillow)."""
    return np.stack([np.asarray(Image.fromarray(image).resize((side, side), Image.BILINEAR)) for image in images])


def load_folder(root: Path, log: Log = print) -> Pictures:
    """Every image file of a folder, in either layout (kerastl.data.folders), decoded with Pillow."""
    layout, listed, class_names = folders.list_folder(root, log)
    entries = [(split, label, path) for split in listed for label, c in enumerate(class_names)
               for path in listed[split].get(c, [])]
    return from_files(root, class_names, entries, len(layout) > 1)


def from_files(root: Path, class_names: list[str], entries: list[tuple[str, int, str]], given_splits: bool) -> Pictures:
    """Pictures of (split, label, path) entries: a folder's files, or the split a `fit` run made of them."""
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) + 2)) as pool:  # Pillow decodes without the GIL
        decoded = list(pool.map(_decode, [path for _, _, path in entries], chunksize=32))
    kept = [(entry, d) for entry, d in zip(entries, decoded) if isinstance(d, dict)]
    broken = [(_relative(path, root), d) for (_, _, path), d in zip(entries, decoded) if isinstance(d, str)]
    colour = np.array([d["colour"] for _, d in kept], bool)
    channels = 3 if colour.any() else 1
    thumbs = np.stack([d["thumb"][..., :channels] for _, d in kept]) if kept else \
        np.zeros((0, THUMB_SIDE, THUMB_SIDE, channels), np.uint8)
    return Pictures(
        str(root), root, list(class_names),
        np.array([_relative(path, root) for (_, _, path), _ in kept], dtype=object),
        np.array([split for (split, _, _), _ in kept], dtype=object),
        np.array([label for (_, label, _), _ in kept], dtype="int64"),
        np.array([d["hash"] for _, d in kept], dtype=object),
        np.stack([d["grey"] for _, d in kept]) if kept else np.zeros((0, GREY_SIDE, GREY_SIDE), np.uint8),
        thumbs, np.array([d["size"] for _, d in kept], int).reshape(-1, 2), colour, broken, given_splits,
    )


def _decode(path: str) -> dict | str:
    """What the checks need of one file, or why it cannot be used (the reasons `fit` gives)."""
    info, reason = folders.check_image(path)
    if info is None:
        return reason
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    pixels = np.asarray(rgb)
    colour = not info["grey"] and not (np.array_equal(pixels[..., 0], pixels[..., 1])
                                       and np.array_equal(pixels[..., 1], pixels[..., 2]))
    thumb = rgb.resize((THUMB_SIDE, THUMB_SIDE), Image.BILINEAR)
    if not colour:
        thumb = thumb.convert("L").convert("RGB")
    return {"hash": pixel_hash(pixels), "size": info["size"], "colour": colour, "thumb": np.asarray(thumb),
            "grey": np.asarray(rgb.convert("L").resize((GREY_SIDE, GREY_SIDE), Image.BILINEAR))}


def _relative(path: str, root: Path) -> str:
    return str(Path(path).relative_to(root))
