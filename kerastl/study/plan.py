"""What a comparison study trains: contenders, data sizes, seeds, budgets and small-data recipes.

Every run of the study is an ordinary `kerastl.fit` run, configured here: a contender's mode and
config (configs/<mode>.yaml, with the [cpu] section when there is no accelerator), then the
study's changes, which are only the data budget (`per_class`, `seed`) and, for small budgets, the
training length scaled to the data (see `small_data_recipe`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kerastl import config as config_module
from kerastl.errors import UserError

ALL = "all"  # the whole training split (validation carved from it), not a per-class budget


@dataclass(frozen=True)
class Contender:
    name: str
    mode: str
    label: str  # for tables and legends
    lesson: str | None = None  # the lesson's row it measures


CONTENDERS: dict[str, Contender] = {
    c.name: c
    for c in (
        Contender("mlp", "mlp", "MLP from scratch", "MLP from scratch"),
        Contender("cnn", "cnn", "CNN from scratch", "CNN from scratch"),
        Contender("feature", "feature", "{backbone} ImageNet, frozen (features)"),
        Contender("finetune", "finetune", "{backbone} ImageNet, fine-tuned", "ResNet18, ImageNet transfer"),
        Contender("scratch", "pretrain", "{backbone} random init, trained fully"),
        Contender("fashion", "finetune", "{backbone} Fashion-MNIST-pretrained, fine-tuned"),
    )
}
LESSON = {  # the lesson's table: epochs to 95 %, final accuracy
    "MLP from scratch": (15, "~97 %"),
    "CNN from scratch": (5, "~99 %"),
    "ResNet18, ImageNet transfer": (1, "~99.5 %"),
}
FASHION_PRETRAIN = "fashion-pretrain"  # the run whose backbone the `fashion` contender fine-tunes
SIZES = (10, 30, 100, 300, 1000, ALL)


@dataclass(frozen=True)
class Budget:
    name: str
    sizes: tuple
    seeds: int  # default --seeds: how many seeds train sizes up to `many_seeds_up_to` per class
    many_seeds_up_to: int  # larger sizes train seed 0 only (their spread is small, their runs long)
    test_limit: int | None  # test images scored by runs on a per-class budget (None: all 10,000)
    all_contenders: tuple[str, ...]  # contenders that also train on all images
    max_epochs: int  # cap of a small-data run's epochs
    min_steps: int  # optimiser steps a small-data run aims for
    pretrain_limit: int | None  # Fashion-MNIST images for the `fashion` contender's pretraining
    pretrain_epochs: int | None


BUDGETS = {
    "quick": Budget(
        "quick", sizes=(10, 100, ALL), seeds=2, many_seeds_up_to=10, test_limit=2000,
        all_contenders=("mlp", "cnn", "feature", "finetune"), max_epochs=40, min_steps=300, pretrain_limit=10_000, pretrain_epochs=2,
    ),
    "full": Budget(
        "full", sizes=SIZES, seeds=3, many_seeds_up_to=300, test_limit=None, all_contenders=tuple(CONTENDERS),
        max_epochs=100, min_steps=1000, pretrain_limit=None, pretrain_epochs=None,
    ),
}


def reductions(
    budget: Budget, contenders: tuple[str, ...], sizes: tuple, seeds: int, test_limit: int | None, max_epochs: int | None,
    imagenet: dict[str, Any], domain: dict[str, Any],
) -> list[str]:
    """What this study leaves out compared with `--budget full` at native input size, in words."""
    full = BUDGETS["full"]
    notes = []
    if tuple(sizes) != full.sizes:
        notes.append(f"labelled images per class: {', '.join(map(str, sizes))} (full: {', '.join(map(str, full.sizes))})")
    if (seeds, budget.many_seeds_up_to) != (full.seeds, full.many_seeds_up_to):
        notes.append(f"{seeds} seed{'s' if seeds > 1 else ''} for sizes up to {budget.many_seeds_up_to} per class, one seed above "
                     f"(full: {full.seeds} seeds up to {full.many_seeds_up_to} per class)")
    if test_limit:
        notes.append(f"every run is scored on the first {test_limit:,} test images only")
    elif budget.test_limit:
        notes.append(f"runs on a per-class budget are scored on the first {budget.test_limit:,} test images; runs on all images on all 10,000")
    left_out = [c for c in contenders if c not in budget.all_contenders]
    if ALL in sizes and left_out:
        notes.append(f"{', '.join(left_out)}: per-class budgets only, not all images (each such run costs about as much as the "
                     "ImageNet fine-tuning run on all images)")
    if "fashion" in contenders and (budget.pretrain_limit or budget.pretrain_epochs):
        notes.append(f"the Fashion-MNIST backbone is pretrained on {budget.pretrain_limit or 60_000:,} images for "
                     f"{budget.pretrain_epochs or 'the configured'} epochs")
    if (budget.min_steps, budget.max_epochs) != (full.min_steps, full.max_epochs):
        notes.append(f"small-data runs aim for {budget.min_steps} optimiser steps in at most {budget.max_epochs} epochs "
                     f"(full: {full.min_steps} in {full.max_epochs})")
    if max_epochs:
        notes.append(f"no stage trains more than {max_epochs} epochs (--max-epochs)")
    used = [b for b, users in ((imagenet, ("feature", "finetune")), (domain, ("scratch", "fashion"))) if set(users) & set(contenders)]
    sizes_px = [f"{b['backbone']} at {b['img_size']} px" for b in used if b["img_size"]]
    if sizes_px:
        notes.append(f"backbones at small inputs (native: 224 px): {', '.join(sizes_px)} (configs/finetune.yaml, configs/pretrain.yaml)")
    return notes


@dataclass
class RunSpec:
    """One fit run of the study; `config` is the complete resolved config it trains with."""

    name: str  # run folder inside the study folder
    contender: str  # a CONTENDERS key, or FASHION_PRETRAIN
    size: int | str  # labelled images per class, or ALL
    seed: int
    config: dict[str, Any]
    needs: str | None = None  # a run that must finish first
    estimate_s: float = 0.0  # rough seconds on a 2-core CPU, for the progress line


def parse_sizes(values: list[str]) -> tuple:
    sizes = []
    for value in values:
        if value == ALL:
            sizes.append(ALL)
            continue
        try:
            size = int(value)
        except ValueError:
            raise UserError(f"--per-class: {value!r} is not a number of images per class or 'all'") from None
        if size < 2:
            raise UserError(f"--per-class {size}: need at least 2 images per class (one of them validates)")
        sizes.append(size)
    return tuple(dict.fromkeys(sizes))


def check_contenders(names: list[str]) -> tuple[str, ...]:
    for name in names:
        if name not in CONTENDERS:
            raise UserError(f"unknown contender {name!r}; choose from {', '.join(CONTENDERS)}")
    return tuple(dict.fromkeys(names))


def seeds_for(size, seeds: int, budget: Budget) -> range:
    return range(seeds) if size != ALL and size <= budget.many_seeds_up_to else range(1)


def size_key(size) -> str:
    return "all" if size == ALL else f"n{size}"


def base_config(mode: str, has_accelerator: bool, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The config `kerastl.fit --mode MODE` would use, with `overrides` as if given as flags."""
    return config_module.resolve(mode, None, overrides or {}, has_accelerator)


STEPS_PER_EPOCH = 30  # a small-data epoch: enough steps to pay for its validation and checkpoints


def small_data_recipe(config: dict[str, Any], train_images: int, budget: Budget) -> dict[str, Any]:
    """Batch size, passes per epoch, epochs and patience for a small training set.

    A recipe made for 54,000 images starves 90 of them (batch 128: one step per epoch). Here the
    batch shrinks to give about 10 steps per pass over the images (16 images at least), an epoch
    makes several passes so it has at least STEPS_PER_EPOCH steps (validation, checkpoints and the
    backup after every epoch cost the same for 6 steps as for 600), and the run gets
    `budget.min_steps` optimiser steps (at most `budget.max_epochs` epochs), with early stopping on
    the validation images of the same budget. Augmentation is on where the model has it.
    """
    batch = min(config["batch_size"], max(16, 2 ** int(math.log2(max(1, train_images // 10)))))
    steps_per_pass = math.ceil(train_images / batch)
    passes = max(1, math.ceil(STEPS_PER_EPOCH / steps_per_pass))
    steps_per_epoch = steps_per_pass * passes
    epochs = min(budget.max_epochs, max(5, math.ceil(budget.min_steps / steps_per_epoch)))
    changes: dict[str, Any] = {
        "batch_size": batch,
        "epoch_passes": passes,
        "epochs": epochs,
        "patience": max(config["patience"], epochs // 3),
    }
    if config["mode"] in ("finetune", "partial"):  # the head stage: a quarter of the steps
        changes["head_epochs"] = max(1, min(budget.max_epochs // 4, math.ceil(budget.min_steps / 4 / steps_per_epoch)))
    if "augment" in config_module.SCHEMA and config["mode"] != "feature":  # features are computed once: nothing to augment
        changes["augment"] = True
    return changes


def plan(
    contenders: tuple[str, ...], sizes: tuple, seeds: int, budget: Budget, study_dir: Path, has_accelerator: bool,
    test_limit: int | None = None, max_epochs: int | None = None,
) -> list[RunSpec]:
    """The study's runs in the order they train: the Fashion-MNIST pretraining, then per contender
    all images first (the lesson's table), then the per-class sizes from small to large."""
    imagenet, domain = backbones(has_accelerator)
    specs: list[RunSpec] = []
    if "fashion" in contenders:
        overrides = {**domain, "dataset": "fashion_mnist", "weights": "none", "seed": 0,
                     "limit": budget.pretrain_limit, "epochs": budget.pretrain_epochs, "test_limit": test_limit or budget.test_limit}
        config = base_config("pretrain", has_accelerator, {k: v for k, v in overrides.items() if v is not None})
        specs.append(RunSpec(FASHION_PRETRAIN, FASHION_PRETRAIN, ALL, 0, _cap(config, max_epochs)))
    for name in contenders:
        for size in sorted(sizes, key=lambda s: (s != ALL, s if s != ALL else 0)):
            if size == ALL and name not in budget.all_contenders:
                continue
            for seed in seeds_for(size, seeds, budget):
                specs.append(_run(name, size, seed, budget, study_dir, has_accelerator, imagenet, domain, test_limit, max_epochs))
    for spec in specs:
        spec.estimate_s = estimate_seconds(spec)
    return specs


def backbones(has_accelerator: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """({backbone, img_size} of the ImageNet contenders, the same of the random-init and Fashion-MNIST ones).

    ImageNet: the finetune config's backbone (EfficientNet-Lite0, whose weights install offline).
    Random init and Fashion-MNIST: the pretrain config's (ResNet-18), one architecture for both so
    their comparison isolates the starting weights. EfficientNet-Lite0 trained from scratch keeps
    batch-norm momentum 0.99, whose moving statistics lag a short run: 3 epochs on 10,000
    Fashion-MNIST images scored 9.4 %, chance; ResNet-18's momentum 0.9 settles in time.
    """
    finetune, pretrain = base_config("finetune", has_accelerator), base_config("pretrain", has_accelerator)
    return (
        {"backbone": finetune["backbone"], "img_size": finetune["img_size"]},
        {"backbone": pretrain["backbone"], "img_size": pretrain["img_size"]},
    )


def _run(name, size, seed, budget, study_dir, has_accelerator, imagenet, domain, test_limit, max_epochs) -> RunSpec:
    contender = CONTENDERS[name]
    overrides: dict[str, Any] = {"seed": seed}
    needs = None
    if name == "scratch":  # the lesson's "random weights" row: batch norm must learn, as in pretrain
        overrides.update(domain, dataset="mnist", weights="none")
    elif name == "fashion":
        needs = FASHION_PRETRAIN
        overrides.update(domain, weights=str(study_dir / FASHION_PRETRAIN / "backbone.weights.h5"))
    if size != ALL:
        overrides["per_class"] = size
        overrides["test_limit"] = budget.test_limit
    if test_limit is not None:
        overrides["test_limit"] = test_limit
    config = base_config(contender.mode, has_accelerator, {k: v for k, v in overrides.items() if v is not None})
    if size != ALL:
        val_per_class = max(1, round(size * config["validation_fraction"]))
        config.update(small_data_recipe(config, 10 * (size - val_per_class), budget))
    return RunSpec(f"{name}-{size_key(size)}-s{seed}", name, size, seed, _cap(config, max_epochs), needs)


def _cap(config: dict[str, Any], max_epochs: int | None) -> dict[str, Any]:
    """`--max-epochs` (smoke tests): no stage runs longer."""
    if max_epochs:
        config["epochs"] = min(config["epochs"], max_epochs)
        config["head_epochs"] = min(config["head_epochs"], max_epochs)
    return config


# Rough speeds on the 2-core CPU (training images/s, test images/s, fixed seconds for start-up,
# compilation and figures), from runs on the project's shared machine; only the progress line's
# estimate uses them, and it corrects them by the pace of the runs already done.
SPEED = {
    "mlp": (7000, 20000, 3), "cnn": (1000, 5000, 6), "feature": (20000, 700, 10),  # feature: test images go through the backbone
    "efficientnet_lite0": (600, 1500, 30), "resnet18": (250, 1000, 25),
}
FEATURE_EXTRACTION = 700  # images/s through EfficientNet-Lite0 at the feature config's 64 px (README: 88 s for 60,000)


def estimate_seconds(spec: RunSpec) -> float:
    config = spec.config
    mode = config["mode"]
    train_speed, test_speed, fixed = SPEED.get(mode, SPEED.get(config.get("backbone"), SPEED["efficientnet_lite0"]))
    images = min(config.get("limit") or 54_000, 54_000) if spec.size == ALL else 10 * spec.size * 0.9
    epochs = config["epochs"] + (config["head_epochs"] if mode in ("finetune", "partial") else 0)
    epochs *= 0.7 if spec.size != ALL else 1.0  # early stopping
    test_images = config["test_limit"] or 10_000
    if mode == "feature":  # features of the train, validation and test images once; the head is cheap
        return fixed + (images / 0.9 + test_images) / FEATURE_EXTRACTION + 0.5 * epochs
    seen = images * (config.get("epoch_passes") or 1) * epochs
    return fixed + seen / train_speed + test_images / test_speed + 0.5 * epochs
