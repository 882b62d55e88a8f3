"""Image folders as a dataset: one subfolder per class, read with TensorFlow's own image decoder.

    PATH/cat/001.jpg, PATH/cat/002.png, PATH/dog/...           a seeded, stratified 80/10/10 split
    PATH/train/cat/..., PATH/val/cat/..., PATH/test/cat/...     the given splits (val/, test/ optional)

Class names are the subfolder names, sorted. Images are JPEG, PNG, BMP or GIF (first frame), colour
or grey, any size; other files are ignored (and counted). Before training, every image is opened
and decoded once with Pillow to find the broken ones (truncated, not an image, too many pixels, or
a variant TensorFlow's decoder reads wrongly: palette BMP, 16-bit PNG); they are skipped and named
in one warning line, and more than `max_broken_share` of them stop the run.

Training streams the files: `tf.data` over the list of paths, decoded in parallel by
`tf.io.decode_image` (what `keras.utils.image_dataset_from_directory` uses), resized once to the
stored size, cached on disk in the run folder after the first epoch and prefetched, so memory does
not grow with the folder. `decode_image` below is the one place pixels are made, for training,
export and `predict` alike.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from kerastl.data.datasets import DATASETS, GREY_WEIGHTS
from kerastl.errors import UserError
from kerastl.files import atomic_write_text
from kerastl.log import Log

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
FORMATS = {"JPEG", "PNG", "BMP", "GIF", "MPO"}  # MPO: a JPEG with extra frames (many phone cameras)
SPLIT_FOLDERS = {"val": ("val", "validation", "valid"), "test": ("test",)}  # beside train/
MAX_PIXELS = 40_000_000  # a decompression-bomb guard: 40 megapixels is more than most phone photos
DEFAULT_SIZE = 64  # stored side of images of mixed sizes, for models trained from scratch
LARGEST_STORED_SIDE = 128  # images that all share one larger size are stored scaled down to this
GREY_MODES = {"1", "L", "LA", "I", "I;16", "F"}



@dataclass(frozen=True)
class FileImages:
    """Images as files, shaped like a uint8 array [n, height, width, channels] for the code that
    splits, batches and predicts: `len`, indexing with an index array, `shape`, `dtype`."""
    paths: np.ndarray  # absolute paths (str objects)
    size: tuple[int, int]  # stored height, width
    channels: int
    cache_file: str | None = field(default=None, compare=False)  # tf.data cache on disk, per run

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index) -> "FileImages":
        return replace(self, paths=np.asarray(self.paths[index], dtype=object).reshape(-1))

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.paths), *self.size, self.channels)

    dtype = np.dtype("uint8")

    def padded(self, count: int) -> "FileImages":
        """`count` more entries (the first image again), for batches that must split over devices."""
        return replace(self, paths=np.concatenate([self.paths, np.repeat(self.paths[:1], count)]))

    def cached_at(self, path: str | Path | None) -> "FileImages":
        return replace(self, cache_file=None if path is None else str(path))

    def load(self) -> np.ndarray:
        """Decode every image into memory (export and figures use a bounded number of them)."""
        return load_images(list(self.paths), self.size, self.channels)


@dataclass
class FolderData:
    """A scanned folder: class names, the files of each split and how they are stored."""
    root: Path
    class_names: list[str]
    files: dict[str, tuple[np.ndarray, np.ndarray]]  # split -> (paths, labels)
    size: tuple[int, int]
    channels: int
    given_splits: bool
    skipped: list[tuple[str, str]]  # (path, reason)
    mean: tuple[float, ...]  # of [0, 1] pixels per channel, over up to 500 training images
    std: tuple[float, ...]

    def images(self, split: str) -> FileImages:
        return FileImages(self.files[split][0], self.size, self.channels)

    def labels(self, split: str) -> np.ndarray:
        return self.files[split][1]


def stored_at(splits, data, side: int):
    """(splits, DataInfo) of an image folder with its images decoded at `side` x `side` instead,
    when the schedule chose another input size than the scan stored (kerastl.sizing)."""
    if data.image_shape[:2] == (side, side):
        return splits, data
    for name in ("x_train", "x_val", "x_test"):
        setattr(splits, name, replace(getattr(splits, name), size=(side, side)))
    return splits, replace(data, image_shape=(side, side, data.image_shape[2]))


def cached_on_disk(splits, cache: Path):
    """The training and validation images of a folder, cached by tf.data in `cache` (a run's
    backup/ folder, removed when the run finishes; rebuilt when an interrupted run resumes)."""
    shutil.rmtree(cache, ignore_errors=True)  # a cache an interrupted run left may be incomplete
    cache.mkdir(parents=True)
    splits.x_train = splits.x_train.cached_at(cache / "train")
    if len(splits.y_val):
        splits.x_val = splits.x_val.cached_at(cache / "val")
    return splits


# Decoding: the same TensorFlow ops for training, export and predict


def decode_image(path, size: tuple[int, int], channels: int):
    """A uint8 [height, width, channels] tensor from an image file (a path tensor): decoded with
    `tf.io.decode_image` (first frame of a GIF), alpha dropped, grey/colour converted to `channels`
    (colour to grey with PIL's weights), resized with antialiasing to `size`, rounded."""
    import tensorflow as tf


    image = tf.io.decode_image(tf.io.read_file(path), channels=0, expand_animations=False)
    native = tf.shape(image)[-1]
    image = tf.cast(tf.cond(native >= 3, lambda: image[..., :3], lambda: image[..., :1]), tf.float32)  # drop alpha
    if channels == 3:
        image = tf.cond(tf.shape(image)[-1] == 1, lambda: tf.image.grayscale_to_rgb(image), lambda: image)
    else:
        image = tf.cond(tf.shape(image)[-1] == 3,
                        lambda: tf.reduce_sum(image * GREY_WEIGHTS, axis=-1, keepdims=True), lambda: image)
    image = tf.image.resize(image, size, method="bilinear", antialias=True)
    image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
    image.set_shape((*size, channels))
    return image


def load_images(paths: Sequence[str], size: tuple[int, int], channels: int) -> np.ndarray:
    """Decode image files into a uint8 array [n, height, width, channels]."""
    import tensorflow as tf

    if not paths:
        return np.zeros((0, *size, channels), np.uint8)
    ds = tf.data.Dataset.from_tensor_slices(list(map(str, paths)))
    ds = ds.map(lambda p: decode_image(p, size, channels), num_parallel_calls=tf.data.AUTOTUNE).batch(256)
    return np.concatenate([batch.numpy() for batch in ds])


def file_dataset(images: FileImages, labels: np.ndarray, weights: np.ndarray | None, batch_size: int,
                 shuffle: bool, seed: int, drop_remainder: bool, passes: int = 1):
    """Batches of (uint8 images, labels[, weights]) streamed from the files.

    The paths come in a seeded random order (the split shuffled them); the first epoch decodes in
    parallel and, with `cache_file`, writes the decoded images to disk, later epochs read that file.
    Training reshuffles through a bounded buffer, so memory stays flat however large the folder.
    """
    import tensorflow as tf

    parts = (images.paths.astype(str), labels) if weights is None else (images.paths.astype(str), labels, weights)
    ds = tf.data.Dataset.from_tensor_slices(parts)
    ds = ds.map(lambda path, *rest: (decode_image(path, images.size, images.channels), *rest),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if images.cache_file:
        ds = ds.cache(images.cache_file)
    if shuffle:
        ds = ds.shuffle(min(len(labels), 4096), seed=seed, reshuffle_each_iteration=True)
    if passes > 1:
        ds = ds.repeat(passes)
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


# Scanning a folder


def is_folder_dataset(name: str) -> bool:

    return name not in DATASETS


def scan(root: str | Path, seed: int = 0, image_size: int | None = None, validation_fraction: float = 0.1,
         max_broken_share: float = 0.1, log: Log = print) -> FolderData:
    """Check a folder, split it and decide how images are stored; a bad folder is a UserError."""
    root = Path(root).expanduser()
    layout, listed, class_names = list_folder(root, log)
    candidates = [path for files in listed.values() for paths in files.values() for path in paths]
    infos, skipped = check_images(candidates)
    _stop_if_too_broken(root, len(candidates), skipped, max_broken_share)
    if skipped:
        shown = "; ".join(f"{_rel(p, root)} ({why})" for p, why in skipped[:3])
        more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
        log(f"data: warning: skipped {len(skipped)} of {len(candidates)} images that cannot be used: {shown}{more}")
    good = {split: {c: [p for p in paths if p in infos] for c, paths in files.items()} for split, files in listed.items()}
    for split, files in good.items():
        for c in class_names:
            if not files.get(c):
                raise UserError(f"--dataset {root}: class {c!r} has no usable images ({layout[split] / c})")
    files = _split(good, class_names, validation_fraction, seed, root)
    channels = 3 if any(not infos[p]["grey"] for p in infos) else 1
    size = _stored_size(image_size, [infos[p]["size"] for p in infos])
    mean, std = _pixel_statistics(FileImages(files["train"][0][:500], size, channels))
    return FolderData(root, class_names, files, size, channels, len(layout) > 1, skipped, mean, std)


def list_folder(root: Path, log: Log = print) -> tuple[dict[str, Path], dict[str, dict[str, list[str]]], list[str]]:
    """(split -> folder, split -> class -> image files, sorted class names) of a folder, checked:
    it exists, has at least 2 classes, each with images, and every split has train/'s classes."""
    if not root.is_dir():
        raise UserError(f"--dataset {root}: no such folder (expected one subfolder of images per class)"
                        if not root.exists() else f"--dataset {root}: not a folder")
    layout = _split_folders(root)
    ignored: list[str] = []
    listed = {split: _class_files(folder, ignored) for split, folder in layout.items()}
    if ignored:
        log(f"data: ignored {len(ignored)} file(s) that are not {'/'.join(e[1:] for e in EXTENSIONS)} images "
            f"(e.g. {_rel(ignored[0], root)})")
    class_names = sorted(listed["train"])
    _check_classes(root, layout, listed, class_names)
    return layout, listed, class_names


def _split_folders(root: Path) -> dict[str, Path]:
    """{"train": folder[, "val": ..., "test": ...]}: the given split folders, or {"train": root}."""
    children = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
    if "train" not in children:
        if "test" in children:  # a split layout without its train/ (a class named "test" is not supported)
            raise UserError(f"--dataset {root}: has test/ but no train/ folder")
        return {"train": root}
    layout = {"train": children["train"]}
    for split in ("val", "test"):
        found = [children[n] for n in SPLIT_FOLDERS[split] if n in children]
        if found:
            layout[split] = found[0]
    return layout


def _class_files(folder: Path, ignored: list[str]) -> dict[str, list[str]]:
    """class name -> image files (recursively, sorted); files with other extensions go to `ignored`."""
    classes = {}
    for child in sorted(folder.iterdir()):
        if not child.is_dir() or child.name.startswith("."):
            continue
        files = []
        for dirpath, dirnames, filenames in os.walk(child, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                (files if name.lower().endswith(EXTENSIONS) else ignored).append(os.path.join(dirpath, name))
        classes[child.name] = files
    return classes


def _check_classes(root: Path, layout: dict[str, Path], listed: dict[str, dict[str, list[str]]], names: list[str]) -> None:
    where = f"{layout['train']}" if layout["train"] != root else f"{root}"
    if len(names) < 2:
        found = f"only {names[0]!r}" if names else "none"
        raise UserError(f"--dataset {root}: need at least 2 class folders of images in {where}, found {found}")
    for c in names:
        if not listed["train"][c]:
            raise UserError(f"--dataset {root}: class {c!r} has no images ({Path(where) / c}; "
                            f"images must be {', '.join(e[1:] for e in EXTENSIONS)})")
    for split in ("val", "test"):
        if split in listed and sorted(listed[split]) != names:
            theirs = sorted(listed[split])
            missing, extra = sorted(set(names) - set(theirs)), sorted(set(theirs) - set(names))
            parts = ([f"missing {', '.join(missing)}"] if missing else []) + ([f"extra {', '.join(extra)}"] if extra else [])
            raise UserError(f"--dataset {root}: the classes of {layout[split].name}/ differ from train/ ({'; '.join(parts)})")


def check_image(path: str) -> tuple[dict | None, str | None]:
    """({size, grey}, None) for a usable image, or (None, reason)."""
    try:
        with Image.open(path) as image:
            if image.format not in FORMATS:
                return None, f"a {image.format} file, not JPEG/PNG/BMP/GIF"
            width, height = image.size
            if width * height > MAX_PIXELS:
                return None, f"{width}x{height} pixels, more than the {MAX_PIXELS // 1_000_000} megapixel limit"
            if image.format == "BMP" and image.mode == "P" and not _grey_palette(image):
                return None, "a palette BMP, which TensorFlow's decoder reads wrongly; save it as PNG"
            if image.mode in ("I", "I;16", "I;16B", "F"):
                return None, f"a {image.mode} image (more than 8 bits), which TensorFlow's decoder reads wrongly; save it as 8-bit"
            grey = image.mode in GREY_MODES or (image.mode == "P" and _grey_palette(image))
            image.load()  # decodes every pixel: finds truncated files
    except Image.DecompressionBombError:
        return None, "too many pixels (a decompression bomb?)"
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for broken files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return None, "not an image" if "cannot identify image file" in reason else reason[:80]
    return {"size": (height, width), "grey": grey}, None


def _grey_palette(image) -> bool:
    palette = image.getpalette() or []
    return all(palette[i] == palette[i + 1] == palette[i + 2] for i in range(0, len(palette) - 2, 3))


def check_images(paths: list[str]) -> tuple[dict[str, dict], list[tuple[str, str]]]:
    infos, skipped = {}, []
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) + 2)) as pool:  # Pillow decodes without the GIL
        for path, (info, reason) in zip(paths, pool.map(check_image, paths, chunksize=64)):
            if info is None:
                skipped.append((path, reason))
            else:
                infos[path] = info
    return infos, skipped


def _stop_if_too_broken(root: Path, total: int, skipped: list[tuple[str, str]], max_share: float) -> None:
    if total and len(skipped) > max_share * total:
        first = "; ".join(f"{_rel(p, root)} ({why})" for p, why in skipped[:2])
        raise UserError(f"--dataset {root}: {len(skipped)} of {total} images cannot be used, more than "
                        f"max_broken_share {max_share:g} allows (first: {first})")


def _split(good: dict[str, dict[str, list[str]]], names: list[str], validation_fraction: float, seed: int,
           root: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Seeded, stratified: missing test gets 10 % of train, missing val `validation_fraction`."""
    rng = np.random.default_rng(seed)
    out: dict[str, list] = {"train": [], "val": [], "test": []}
    for label, c in enumerate(names):
        pool = list(rng.permutation(good["train"][c]))
        carve = [s for s, fraction in (("test", 0.1), ("val", validation_fraction)) if s not in good and fraction > 0]
        if len(pool) < len(carve) + 1:
            raise UserError(f"--dataset {root}: class {c!r} has {len(pool)} usable image(s), too few to split into "
                            f"train, {' and '.join(carve)} (at least {len(carve) + 1}); add images or give "
                            f"{'/ '.join(carve)}/ folders")
        for split in carve:
            share = 0.1 if split == "test" else validation_fraction
            take = max(1, int(round(share * len(good["train"][c]))))
            take = min(take, len(pool) - 1)
            out[split] += [(p, label) for p in pool[:take]]
            pool = pool[take:]
        out["train"] += [(p, label) for p in pool]
        for split in ("val", "test"):
            if split in good:
                out[split] += [(p, label) for p in good[split][c]]
    result = {}
    for split, pairs in out.items():
        order = rng.permutation(len(pairs))
        pairs = [pairs[i] for i in order]
        result[split] = (np.array([p for p, _ in pairs], dtype=object), np.array([l for _, l in pairs], dtype="int64"))
    return result


def _stored_size(image_size: int | None, sizes: list[tuple[int, int]]) -> tuple[int, int]:
    if image_size:
        return (image_size, image_size)
    if len(set(sizes)) == 1:
        height, width = sizes[0]
        scale = min(1.0, LARGEST_STORED_SIDE / max(height, width))
        return (max(1, round(height * scale)), max(1, round(width * scale)))
    return (DEFAULT_SIZE, DEFAULT_SIZE)


def _pixel_statistics(images: FileImages) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of [0, 1] pixels over a sample of training images."""
    pixels = images.load().reshape(-1, images.channels).astype("float64") / 255.0
    return tuple(float(v) for v in pixels.mean(0)), tuple(float(max(v, 1e-3)) for v in pixels.std(0))


def _rel(path: str, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


# The record in the run folder


def split_text(data: FolderData) -> str:
    """Every image of the run as CSV: split, label, class name and path relative to the folder."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["split", "label", "class", "path"])
    for split in ("train", "val", "test"):
        paths, labels = data.files[split]
        for p, label in zip(paths, labels):
            writer.writerow([split, int(label), data.class_names[label], _rel(p, data.root)])
    return out.getvalue()


def record_split(path: Path, data: FolderData) -> None:
    """Write the run's split file; a resumed run checks that its folder still gives the same one."""
    text = split_text(data)
    if path.is_file():
        if path.read_text() != text:
            raise UserError(f"the images in {data.root} changed since this run started ({path.name} differs); "
                            "start a new run")
        return
    atomic_write_text(path, text)


def read_split_file(path: Path, root: Path) -> dict[str, tuple[list[str], np.ndarray]]:
    """split -> (absolute paths, labels) as `record_split` recorded them."""
    out: dict[str, tuple[list[str], list[int]]] = {"train": ([], []), "val": ([], []), "test": ([], [])}
    try:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                paths, labels = out[row["split"]]
                paths.append(str(root / row["path"]))
                labels.append(int(row["label"]))
    except (OSError, KeyError, ValueError) as exc:
        raise UserError(f"cannot read the run's image list {path} ({exc})") from None
    return {split: (paths, np.array(labels, dtype="int64")) for split, (paths, labels) in out.items()}
