"""Datasets: MNIST and Fashion-MNIST as uint8 arrays, folders of images as files, their splits,
and the input pipeline."""

from __future__ import annotations

from typing import Any

from kerastl.data import folders
from kerastl.data.datasets import DATASETS, IMAGE_SHAPE, DataInfo, builtin_info
from kerastl.data.pipeline import fit_inputs, make_dataset, predict_in_batches, validation_data
from kerastl.data.sources import load_arrays
from kerastl.data.splits import Splits, make_splits
from kerastl.errors import UserError
from kerastl.modes import BACKBONE_MODES
from kerastl.log import Log


def load_data(config: dict[str, Any], log: Log = print):
    """(arrays, DataInfo, FolderData or None) for a run's config: the built-in dataset's uint8
    arrays, or an image folder scanned and split (its "x_*" are `FileImages`, with "x_val")."""
    name = config["dataset"]
    if not folders.is_folder_dataset(name):
        if config.get("stored_size") not in (None, IMAGE_SHAPE[0]):
            raise UserError(f"--stored-size is for image folders; {name} images are {IMAGE_SHAPE[0]}x{IMAGE_SHAPE[1]}")
        return load_arrays(name, config["data_dir"], log=log), builtin_info(name), None
    stored = config.get("stored_size") or (config["img_size"] if config["mode"] in BACKBONE_MODES else None)
    folder = folders.scan(name, config["seed"], stored, config["validation_fraction"], config["max_broken_share"], log)
    arrays = {}
    for split in ("train", "val", "test"):
        arrays[f"x_{split}"], arrays[f"y_{split}"] = folder.images(split), folder.labels(split)
    counts = {split: len(folder.labels(split)) for split in ("train", "val", "test")}
    how = "its train/val/test folders" if folder.given_splits else f"a seeded, stratified split (seed {config['seed']})"
    log(f"data: {len(folder.class_names)} classes from {folder.root} ({', '.join(folder.class_names[:6])}"
        f"{', ...' if len(folder.class_names) > 6 else ''}); {counts['train']}/{counts['val']}/{counts['test']} "
        f"train/val/test images by {how}; stored at {folder.size[0]}x{folder.size[1]}x{folder.channels}")
    info = DataInfo(str(folder.root), tuple(folder.class_names), (*folder.size, folder.channels), folder.mean, folder.std)
    return arrays, info, folder


def load_mnist(data_dir=None, log=print):
    """Official MNIST: ((x_train, y_train), (x_test, y_test)), uint8 (N,28,28,1) and int64 labels."""
    a = load_arrays("mnist", data_dir=data_dir, log=log)
    return (a["x_train"], a["y_train"]), (a["x_test"], a["y_test"])


def load_fashion_mnist(data_dir=None, log=print):
    """Official Fashion-MNIST, shaped like `load_mnist`."""
    a = load_arrays("fashion_mnist", data_dir=data_dir, log=log)
    return (a["x_train"], a["y_train"]), (a["x_test"], a["y_test"])


__all__ = ["DATASETS", "IMAGE_SHAPE", "DataInfo", "Splits", "load_data", "fit_inputs", "load_arrays", "load_fashion_mnist", "load_mnist", "make_dataset", "make_splits", "predict_in_batches", "validation_data"]
