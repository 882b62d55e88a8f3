"""Run configuration: one YAML file per mode in `configs/`, overridden by command-line flags.

The YAML files live once, in the top-level `configs/`; `kerastl/configs` is a symbolic link to it,
so they ship inside the wheel as package data and are read with `importlib.resources`, from a
checkout and from any install alike.

Every key is declared once in SCHEMA with its type and allowed range, so a typo or a wrong value
is a one-line error before anything runs.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Callable

import yaml

from kerastl.errors import UserError

MODES = ("mlp", "cnn", "feature", "finetune", "partial", "pretrain")
TRANSFER_MODES = ("feature", "finetune", "partial", "pretrain")
CONFIG_DIR: Traversable = resources.files("kerastl") / "configs"


def _positive(v):
    return v > 0


def _fraction(v):
    return 0 <= v < 1


def _one_of(*choices) -> Callable[[Any], bool]:
    return lambda v: v in choices


def _rate(v):
    """A positive learning rate, or "find": sweep for one first (kerastl.lr_find)."""
    return v == "find" if isinstance(v, str) else v > 0


# key: (type(s), check, meaning). None is allowed wherever the default is None.
SCHEMA: dict[str, tuple[tuple[type, ...], Callable[[Any], bool] | None, str]] = {
    "mode": ((str,), _one_of(*MODES), "what to train"),
    "dataset": ((str,), bool, "mnist, fashion_mnist, or a folder of images with one subfolder per class"),
    "data_dir": ((str,), None, "folder of the four IDX files (optional)"),
    "epochs": ((int,), _positive, "epochs (for finetune/partial: of the fine-tuning stage)"),
    "head_epochs": ((int,), _positive, "epochs of the head-only stage (finetune/partial)"),
    "batch_size": ((int,), _positive, "images per step"),
    "lr": ((int, float, str), _rate, "learning rate (for finetune/partial: of the head stage), or find (a sweep picks it)"),
    "finetune_lr": ((int, float, str), _rate, "learning rate of the fine-tuning stage, or find"),
    "lr_schedule": ((str,), _one_of("constant", "cosine"), "constant, or cosine decay after a 10 % warm-up"),
    "weight_decay": ((int, float), lambda v: v >= 0, "AdamW weight decay"),
    "limit": ((int,), _positive, "train on a seeded subset of N images"),
    "per_class": ((int,), _positive, "train on N labelled images per class (validation drawn from them), seeded"),
    "epoch_passes": ((int,), _positive, "passes over the training images per epoch (more steps per epoch for tiny sets)"),
    "min_steps": ((int,), lambda v: v >= 0, "optimiser steps a stage takes at least: a small training set gets a smaller batch and more epochs (0: epochs as configured; see kerastl.schedule)"),
    "max_epochs": ((int,), _positive, "no stage trains more epochs than this (caps the schedule sized to small data)"),
    "small_data_img_size": ((int,), lambda v: 16 <= v <= 1024, "transfer modes without an accelerator: input size for a small training set (see kerastl.schedule)"),
    "given": ((list,), None, "options the user set (flags, keywords, their own --config file): the schedule sized to the data keeps them"),
    "test_limit": ((int,), _positive, "score only the first N test images (smoke tests)"),
    "validation_fraction": ((int, float), _fraction, "share of the train split held out for validation"),
    "seed": ((int,), lambda v: v >= 0, "seed for splits, shuffling and initialisation"),
    "patience": ((int,), _positive, "early-stopping patience in epochs"),
    "dropout": ((int, float), _fraction, "dropout before the classifier"),
    "augment": ((bool,), None, "random shifts, rotations and zooms of the training images (never flips)"),
    "label_smoothing": ((int, float), _fraction, "share of each label spread over the other classes"),
    "backbone": ((str,), None, "pretrained backbone (transfer modes)"),
    "weights": ((str,), None, "imagenet, none, or a .weights.h5 / .pth path"),
    "img_size": ((int,), lambda v: 16 <= v <= 1024, "backbone input size; null = native size on a GPU"),
    "image_size": ((int,), lambda v: 8 <= v <= 1024, "image folders: side of the stored images (null: their own size, or 64 if mixed; the backbone's input size for transfer modes)"),
    "max_broken_share": ((int, float), lambda v: 0 <= v <= 1, "image folders: stop if more than this share of the images cannot be read"),
    "unfreeze": ((int,), _positive, "partial: number of blocks, counted from the top, to train"),
    "precision": ((str,), _one_of("auto", "float32", "mixed_bfloat16", "mixed_float16"), "compute dtype policy"),
    "jit_compile": ((str, bool), lambda v: v in ("auto", True, False), "XLA: auto, true or false"),
    "distribute": ((str,), _one_of("auto", "off"), "auto: data-parallel over every local accelerator when there are several; off: one device"),
    "devices": ((int,), _positive, "train data-parallel on N devices (per process); null = auto"),
    "output_dir": ((str,), None, "where run folders are written"),
    "run_name": ((str,), lambda v: bool(v) and "/" not in v, "name of the run folder"),
    "export": ((bool,), None, "export SavedModel and TFLite after training"),
    "tensorboard": ((bool,), None, "log to <run>/tensorboard with Keras' TensorBoard callback"),
    "cpu": ((dict,), None, "overrides applied when no accelerator is present"),
}

DEFAULTS: dict[str, Any] = {
    "dataset": "mnist", "data_dir": None, "epochs": 10, "head_epochs": 1, "batch_size": 128, "lr": 1e-3,
    "finetune_lr": None, "lr_schedule": "constant", "weight_decay": 0.0, "limit": None, "per_class": None, "epoch_passes": 1, "min_steps": 300, "max_epochs": 40,
    "small_data_img_size": None, "given": [], "test_limit": None, "validation_fraction": 0.1,
    "seed": 0, "patience": 3, "dropout": 0.2, "augment": False, "label_smoothing": 0.0, "backbone": "efficientnet_lite0", "weights": "imagenet",
    "img_size": None, "image_size": None, "max_broken_share": 0.1, "unfreeze": 4, "precision": "auto", "jit_compile": "auto",
    "distribute": "auto", "devices": None,
    "output_dir": "saved_models", "run_name": None, "export": False, "tensorboard": False, "cpu": {},
}


def check(config: dict[str, Any], origin: str) -> dict[str, Any]:
    """Raise UserError on an unknown key or a value of the wrong type or range."""
    for key, value in config.items():
        if key not in SCHEMA:
            raise UserError(f"{origin}: unknown config key {key!r} (known: {', '.join(sorted(SCHEMA))})")
        if value is None:
            continue
        types, valid, meaning = SCHEMA[key]
        if isinstance(value, bool) and bool not in types:
            raise UserError(f"{origin}: {key} must be {'/'.join(t.__name__ for t in types)} ({meaning}), got {value!r}")
        if not isinstance(value, types) or (valid is not None and not valid(value)):
            raise UserError(f"{origin}: invalid {key}: {value!r} ({meaning})")
    if "cpu" in config and config["cpu"]:
        check(config["cpu"], f"{origin} [cpu]")
    return config


def read_yaml(path: str | Path | Traversable) -> dict[str, Any]:
    path = Path(path) if isinstance(path, str) else path
    try:
        text = path.read_text()
    except OSError as exc:
        raise UserError(f"cannot read config {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UserError(f"config {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config {path} must be a mapping of keys to values")
    return check(data, str(path))


def resolve(mode: str, config_path: str | Path | None, overrides: dict[str, Any], accelerator: bool) -> dict[str, Any]:
    """defaults <- configs/<mode>.yaml (or --config) <- [cpu] section without accelerator <- flags."""
    if mode not in MODES:
        raise UserError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    path = Path(config_path) if config_path else CONFIG_DIR / f"{mode}.yaml"
    if not config_path and not path.is_file():
        raise UserError(f"the {mode} config {path} is missing from this kerastl install; reinstall kerastl or give --config FILE")
    file_config = read_yaml(path)
    if file_config.get("mode", mode) != mode:
        raise UserError(f"config {path} is for mode {file_config['mode']!r}, not {mode!r}")
    flags = check({k: v for k, v in overrides.items() if v is not None}, "command line")
    config = {**DEFAULTS, **file_config}
    if not accelerator:
        config.update(config.get("cpu") or {})
    # What the user chose: their flags, and their own config file as written (a recorded
    # config.yaml given back with --config reproduces its run); the packaged configs are defaults.
    own_file = {**file_config, **(file_config.get("cpu") or {} if not accelerator else {})} if config_path else {}
    given = set(file_config.get("given") or ()) | set(flags) | set(own_file)
    config.update(flags)
    config["mode"] = mode
    config["given"] = sorted(given - {"mode", "cpu", "given"})
    config.pop("cpu", None)
    if config["lr"] == "find" and "lr" in flags and "finetune_lr" not in flags:
        config["finetune_lr"] = "find"  # --lr find sweeps every stage, unless --finetune-lr is given
    if config["finetune_lr"] is None:
        config["finetune_lr"] = "find" if config["lr"] == "find" else config["lr"] / 10
    return config


# The keys a command-line flag or a keyword of `kerastl.run` may set (same names, same checks).
OPTIONS = (
    "dataset", "data_dir", "epochs", "head_epochs", "batch_size", "lr", "finetune_lr", "lr_schedule", "limit",
    "per_class", "test_limit", "min_steps", "max_epochs", "seed", "backbone", "weights", "img_size", "image_size", "unfreeze", "precision", "output_dir", "run_name",
    "export", "tensorboard", "augment", "label_smoothing", "distribute", "devices",
)


def resolve_run_config(
    mode: str, config_path: str | Path | None, options: dict[str, Any], accelerator: bool, origin: str = "command line"
) -> dict[str, Any]:
    """`resolve`, then what depends on the backbone: a known name, and its native input size
    where `img_size` is null. `options` are flag or keyword values (None: not given)."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise UserError(f"{origin}: unknown option {', '.join(unknown)} (known: {', '.join(OPTIONS)})")
    check({k: v for k, v in options.items() if v is not None}, origin)
    config = resolve(mode, config_path, options, accelerator)
    from kerastl.data.datasets import DATASETS

    if config["dataset"] not in DATASETS:  # a folder of images: recorded as an absolute path
        config["dataset"] = str(Path(config["dataset"]).expanduser().resolve())
    if config["mode"] in TRANSFER_MODES:
        from kerastl.backbones import BACKBONES, hub

        if hub.is_hub(config["backbone"]):
            hub.preset_of(config["backbone"])  # a preset is named
            hub.keras_hub()  # installed
            config["img_size"] = config["img_size"] or 224
        elif config["backbone"] not in BACKBONES:
            raise UserError(f"unknown backbone {config['backbone']!r}; choose one of {', '.join(BACKBONES)}, "
                            "or hub:PRESET (a keras-hub preset name or folder)")
        else:
            config["img_size"] = config["img_size"] or BACKBONES[config["backbone"]].input_size
    return config
