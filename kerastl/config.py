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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from kerastl.backbones import hub
from kerastl.backbones.registry import BACKBONES, NATIVE_SIZE, names as backbone_names
from kerastl.data.datasets import DATASETS
from kerastl.errors import UserError
from kerastl.modes import BACKBONE_MODES, MODES

FIND = "find"  # the learning rate a sweep picks (kerastl.lr_finder)
CONFIG_DIR: Traversable = resources.files("kerastl") / "configs"


def _positive(v):
    return v > 0


def _fraction(v):
    return 0 <= v < 1


def _one_of(*choices) -> Callable[[Any], bool]:
    return lambda v: v in choices


def _rate(v):
    """A positive learning rate, or "find": a sweep picks one first (kerastl.lr_find)."""
    return v == FIND if isinstance(v, str) else v > 0


@dataclass(frozen=True)
class Key:
    """One config key: its type(s), the check of its value, its default, what it means, and whether
    it is an option (a flag of `kerastl.fit` and a keyword of `kerastl.run`, with the same name)."""

    types: tuple[type, ...]
    check: Callable[[Any], bool] | None
    default: Any
    meaning: str
    option: bool = True


# Every key, declared once: the flags, the keywords, the checks and the defaults all come from here.
# None is allowed wherever the default is None.
SCHEMA: dict[str, Key] = {
    "mode": Key((str,), _one_of(*MODES), None, "what to train (kerastl.modes)", option=False),
    "dataset": Key((str,), bool, "mnist", "mnist, fashion_mnist, or a folder of images with one subfolder per class"),
    "data_dir": Key((str,), None, None, "folder of the four IDX files, used instead of the download sources"),
    "epochs": Key((int,), _positive, 10, "epochs (finetune/partial: of the fine-tuning stage)"),
    "head_epochs": Key((int,), _positive, 1, "finetune/partial: epochs of the head-only stage"),
    "batch_size": Key((int,), _positive, 128, "images per optimiser step"),
    "lr": Key((int, float, str), _rate, 1e-3, "learning rate (finetune/partial: of the head stage), or find: a sweep "
              "picks it before each stage that trains (kerastl.lr_find)"),
    "finetune_lr": Key((int, float, str), _rate, None, "learning rate of the fine-tuning stage, or find (default: the "
                       "config's, lr/10 if it sets none; find with --lr find)"),
    "lr_schedule": Key((str,), _one_of("constant", "cosine"), "constant", "constant, or cosine decay after a 10 % warm-up"),
    "weight_decay": Key((int, float), lambda v: v >= 0, 0.0, "AdamW weight decay", option=False),
    "limit": Key((int,), _positive, None, "train on a seeded subset of N training images"),
    "per_class": Key((int,), _positive, None, "train on N labelled images per class, balanced and seeded (10 % of them validate)"),
    "epoch_passes": Key((int,), _positive, 1, "passes over the training images per epoch (more steps per epoch for small sets)", option=False),
    "min_steps": Key((int,), lambda v: v >= 0, 300, "optimiser steps each stage takes at least: a small training set gets a "
                     "smaller batch and more epochs (0: epochs as configured; see kerastl.sizing)"),
    "max_epochs": Key((int,), _positive, 40, "no stage trains more epochs than N (caps the schedule sized to small data)"),
    "small_data_img_size": Key((int,), lambda v: 16 <= v <= 1024, 96,
                               "transfer modes without an accelerator: input size for a small training set (see kerastl.sizing)", option=False),
    "given": Key((list,), None, [], "options the user set (flags, keywords, their own --config file): the schedule "
                 "sized to the data keeps them", option=False),
    "sized": Key((list,), None, [], "the keys the schedule sized to the data changed (kerastl.sizing)", option=False),
    "test_limit": Key((int,), _positive, None, "score only the first N test images (smoke tests)"),
    "validation_fraction": Key((int, float), _fraction, 0.1, "share of the train split held out for validation", option=False),
    "seed": Key((int,), lambda v: v >= 0, 0, "seed for splits, shuffling and initialisation"),
    "patience": Key((int,), _positive, 3, "early-stopping patience in epochs", option=False),
    "dropout": Key((int, float), _fraction, 0.2, "dropout before the classifier (the MLP: after each hidden layer)", option=False),
    "augment": Key((bool,), None, False, "random shifts, rotations and zooms of the training images (never flips)"),
    "label_smoothing": Key((int, float), _fraction, 0.0, "share of each label spread over the other classes (0-1)"),
    "backbone": Key((str,), None, "efficientnet_lite0", f"pretrained backbone (transfer modes): {backbone_names()}, "
                    "or hub:PRESET (a keras-hub preset name or folder)"),
    "weights": Key((str,), None, "imagenet", "imagenet, none, or a .weights.h5 / .pth file"),
    "img_size": Key((int,), lambda v: 16 <= v <= 1024, None, "backbone input size (default: native on a GPU, smaller on a CPU)"),
    "stored_size": Key((int,), lambda v: 8 <= v <= 1024, None, "image folders: side the pictures are decoded and stored at (default: their own "
                      "size, or 64 if mixed; the backbone's input size for transfer modes)"),
    "max_broken_share": Key((int, float), lambda v: 0 <= v <= 1, 0.1, "image folders: stop if more than this share of the "
                            "images cannot be read", option=False),
    "unfreeze": Key((int,), _positive, 6, "partial: blocks to train, counted from the top"),
    "precision": Key((str,), _one_of("auto", "float32", "mixed_bfloat16", "mixed_float16"), "auto", "compute dtype policy: "
                     "auto, float32, mixed_bfloat16 or mixed_float16"),
    "jit_compile": Key((str, bool), lambda v: v in ("auto", True, False), "auto", "XLA: auto, true or false", option=False),
    "distribute": Key((str,), _one_of("auto", "off"), "auto", "auto: data-parallel over every local accelerator when there "
                      "are several; off: one device"),
    "devices": Key((int,), _positive, None, "data-parallel over N devices per process (also CPU devices); default: auto"),
    "output_dir": Key((str,), None, "saved_models", "where run folders are written"),
    "run_name": Key((str,), lambda v: bool(v) and "/" not in v, None, "name of the run folder (default: <mode>-<dataset>-<time>)"),
    "keep_in_distribution": Key((int, float), lambda v: 0.5 <= v <= 1, 0.99, "share of the validation pictures the abstain "
                                "threshold keeps answering (kerastl.confidence); below it, predict says unknown"),
    "outside": Key((str,), None, None, "image folders: a folder of pictures that belong to no class, to measure how "
                   "often the model answers them (noise, blank and white pictures are always measured)"),
    "export": Key((bool,), None, False, "export SavedModel and LiteRT afterwards"),
    "tensorboard": Key((bool,), None, False, "log to <run>/tensorboard with Keras' TensorBoard callback"),
    "cpu": Key((dict,), None, {}, "overrides applied when no accelerator is present", option=False),
}
DEFAULTS: dict[str, Any] = {key: k.default for key, k in SCHEMA.items() if key != "mode"}
# Old names of keys (and their flags and keywords), still read: run folders and scripts keep them.
RENAMED = {"image_size": "stored_size"}  # 0.1: --image-size sat beside --img-size, the backbone's input size
# The keys a command-line flag or a keyword of `kerastl.run` may set (same names, same checks).
OPTIONS: tuple[str, ...] = tuple(key for key, k in SCHEMA.items() if k.option)


def renamed(config: dict[str, Any], warn: Callable[[str], None] | None = None, origin: str = "command line") -> dict[str, Any]:
    """`config` with the keys of RENAMED under their new names; `warn` (if given) is told of each."""
    out = {}
    for key, value in config.items():
        if key in RENAMED:
            if warn is not None and value is not None:
                old, new = (f"--{key.replace('_', '-')}", f"--{RENAMED[key].replace('_', '-')}") if origin == "command line" else (key, RENAMED[key])
                warn(f"{old} is now called {new}; the old name will go in a later version")
            key = RENAMED[key]
        if value is not None or key not in out:
            out[key] = value
    return out


def check(config: dict[str, Any], origin: str) -> dict[str, Any]:
    """Raise UserError on an unknown key or a value of the wrong type or range (old key names are
    taken under their new ones)."""
    config = renamed(config)
    for key, value in config.items():
        if key not in SCHEMA:
            raise UserError(f"{origin}: unknown config key {key!r} (known: {', '.join(sorted(SCHEMA))})")
        if value is None:
            continue
        types, valid, meaning = SCHEMA[key].types, SCHEMA[key].check, SCHEMA[key].meaning
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
    config["given"] = sorted(given - {"mode", "cpu", "given", "sized"})
    config["sized"] = []  # a recorded config given back: its keys are all given, so sizing changes none of them
    config.pop("cpu", None)
    if config["lr"] == "find" and "lr" in flags and "finetune_lr" not in flags:
        config["finetune_lr"] = "find"  # --lr find sweeps every stage, unless --finetune-lr is given
    if config["finetune_lr"] is None:
        config["finetune_lr"] = "find" if config["lr"] == "find" else config["lr"] / 10
    return config


def resolve_run_config(
    mode: str, config_path: str | Path | None, options: dict[str, Any], accelerator: bool, origin: str = "command line"
) -> dict[str, Any]:
    """`resolve`, then what depends on the backbone: a known name, and its native input size
    where `img_size` is null. `options` are flag or keyword values (None: not given)."""
    options = renamed(options)
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise UserError(f"{origin}: unknown option {', '.join(unknown)} (known: {', '.join(OPTIONS)})")
    check({k: v for k, v in options.items() if v is not None}, origin)
    config = resolve(mode, config_path, options, accelerator)
    if config["dataset"] not in DATASETS:  # a folder of images: recorded as an absolute path
        config["dataset"] = str(Path(config["dataset"]).expanduser().resolve())
    if config["mode"] in BACKBONE_MODES:
        if hub.is_hub(config["backbone"]):
            hub.preset_of(config["backbone"])  # a preset is named
            hub.keras_hub()  # installed
            config["img_size"] = config["img_size"] or NATIVE_SIZE
        elif config["backbone"] not in BACKBONES:
            raise UserError(f"unknown backbone {config['backbone']!r}; choose one of {backbone_names()}, "
                            "or hub:PRESET (a keras-hub preset name or folder)")
        else:
            config["img_size"] = config["img_size"] or BACKBONES[config["backbone"]].input_size
    return config
