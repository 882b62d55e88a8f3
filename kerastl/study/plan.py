"""What a comparison study trains: contenders, data sizes, seeds, budgets and small-data recipes.

Every run of the study is an ordinary `kerastl.fit` run with its mode's defaults (configs/<mode>.yaml,
with the [cpu] section when there is no accelerator). The study asks only for the data budget
(`per_class`, `seed`, `test_limit`) and the contender's starting weights; `fit` sizes the schedule
to the data itself (kerastl.sizing), so a learner who reruns a row with `fit` gets the same run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kerastl import config as config_module
from kerastl import runs, sizing
from kerastl.backbones.registry import BACKBONES, Speed
from kerastl.data.datasets import DATASETS
from kerastl.errors import UserError
from kerastl.log import quiet
from kerastl.modes import MODES

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
class StudyBudget:
    name: str
    sizes: tuple
    seeds: int  # default --seeds: how many seeds train sizes up to `many_seeds_up_to` per class
    many_seeds_up_to: int  # larger sizes train seed 0 only (their spread is small, their runs long)
    test_limit: int | None  # test images scored by runs on a per-class budget (None: all 10,000)
    all_contenders: tuple[str, ...]  # contenders that also train on all images
    pretrain_limit: int | None  # Fashion-MNIST images for the `fashion` contender's pretraining
    pretrain_epochs: int | None


STUDY_BUDGETS = {
    "quick": StudyBudget(
        "quick", sizes=(10, 100, ALL), seeds=2, many_seeds_up_to=10, test_limit=2000,
        all_contenders=("mlp", "cnn", "feature", "finetune"), pretrain_limit=10_000, pretrain_epochs=2,
    ),
    "full": StudyBudget(
        "full", sizes=SIZES, seeds=3, many_seeds_up_to=300, test_limit=None, all_contenders=tuple(CONTENDERS),
        pretrain_limit=None, pretrain_epochs=None,
    ),
}


def reductions(
    budget: StudyBudget, contenders: tuple[str, ...], sizes: tuple, seeds: int, test_limit: int | None, max_epochs: int | None,
    imagenet: dict[str, Any], domain: dict[str, Any],
) -> list[str]:
    """What this study leaves out compared with `--budget full` at native input size, in words."""
    full = STUDY_BUDGETS["full"]
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
        notes.append(f"the Fashion-MNIST backbone is pretrained on {budget.pretrain_limit or DATASETS['fashion_mnist'].train_images:,} images for "
                     f"{budget.pretrain_epochs or 'the configured'} epochs")
    if max_epochs:
        notes.append(f"no stage trains more than {max_epochs} epochs (--max-epochs)")
    used = [b for b, users in ((imagenet, ("feature", "finetune")), (domain, ("scratch", "fashion"))) if set(users) & set(contenders)]
    sizes_px = [f"{b['backbone']} at {b['img_size']} px" + (f" ({b['small_data_img_size']} px on small data)" if b.get("small_data_img_size") else "")
                for b in used if b["img_size"]]
    if sizes_px:
        native = BACKBONES[config_module.SCHEMA["backbone"].default].input_size
        notes.append(f"backbones at small inputs (native: {native} px): {', '.join(sizes_px)} (configs/finetune.yaml, configs/pretrain.yaml)")
    return notes


@dataclass
class RunSpec:
    """One fit run of the study: the `options` it gives `fit` (the data budget and starting weights),
    and the complete `config` that `fit` trains with, sized to the data as `fit` sizes it."""

    name: str  # run folder inside the study folder
    contender: str  # a CONTENDERS key, or FASHION_PRETRAIN
    size: int | str  # labelled images per class, or ALL
    seed: int
    options: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
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


def seeds_for(size, seeds: int, budget: StudyBudget) -> range:
    return range(seeds) if size != ALL and size <= budget.many_seeds_up_to else range(1)


def size_key(size) -> str:
    return "all" if size == ALL else f"n{size}"


def base_config(mode: str, has_accelerator: bool, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The config `kerastl.fit --mode MODE` would use, with `overrides` as if given as flags."""
    return config_module.resolve(mode, None, overrides or {}, has_accelerator)


def planned(mode: str, options: dict[str, Any], has_accelerator: bool) -> dict[str, Any]:
    """The config `kerastl.fit --mode MODE` trains with, given `options` (as flags): resolved, then
    sized to the training images the options leave and this process's devices (kerastl.sizing),
    as `fit` does."""
    from kerastl import distribute

    config = config_module.resolve_run_config(mode, None, options, has_accelerator, origin="study")
    placement = distribute.place(config, has_accelerator, quiet)
    return sizing.size_to_data(config, train_images(config), has_accelerator, placement)


def train_images(config: dict[str, Any]) -> int:
    """Training images of a run on MNIST or Fashion-MNIST (the train split less validation)."""
    dataset = DATASETS[config["dataset"]]
    if config.get("per_class"):
        return len(dataset.class_names) * (config["per_class"] - validation_per_class(config["per_class"], config["validation_fraction"]))
    return config.get("limit") or dataset.train_images - round(dataset.train_images * config["validation_fraction"])


def validation_per_class(per_class: int, validation_fraction: float) -> int:
    return max(1, round(per_class * validation_fraction))


def plan(
    contenders: tuple[str, ...], sizes: tuple, seeds: int, budget: StudyBudget, study_dir: Path, has_accelerator: bool,
    test_limit: int | None = None, max_epochs: int | None = None,
) -> list[RunSpec]:
    """The study's runs in the order they train: the Fashion-MNIST pretraining, then per contender
    all images first (the lesson's table), then the per-class sizes from small to large."""
    domain = backbones(has_accelerator)[1]
    specs: list[RunSpec] = []
    if "fashion" in contenders:
        options = {"backbone": domain["backbone"], "img_size": domain["img_size"], "dataset": "fashion_mnist", "weights": "none",
                   "seed": 0, "limit": budget.pretrain_limit, "epochs": budget.pretrain_epochs,
                   "test_limit": test_limit or budget.test_limit}
        specs.append(_spec(FASHION_PRETRAIN, FASHION_PRETRAIN, "pretrain", ALL, 0, options, max_epochs, has_accelerator))
    for name in contenders:
        for size in sorted(sizes, key=lambda s: (s != ALL, s if s != ALL else 0)):
            if size == ALL and name not in budget.all_contenders:
                continue
            for seed in seeds_for(size, seeds, budget):
                specs.append(_run(name, size, seed, budget, study_dir, has_accelerator, domain, test_limit, max_epochs))
    for spec in specs:
        spec.estimate_s = estimate_seconds(spec)
    return specs


def backbones(has_accelerator: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """({backbone, img_size, small_data_img_size} of the ImageNet contenders, the same of the
    random-init and Fashion-MNIST ones).

    ImageNet: the finetune config's backbone (EfficientNet-Lite0, whose weights install offline).
    Random init and Fashion-MNIST: the pretrain config's (ResNet-18), one architecture for both so
    their comparison isolates the starting weights. (EfficientNet-Lite0 trained from scratch once
    scored 9.4 %, chance, after 3 epochs on 10,000 Fashion-MNIST images.)
    """
    finetune, pretrain = base_config("finetune", has_accelerator), base_config("pretrain", has_accelerator)
    keys = ("backbone", "img_size", "small_data_img_size")
    imagenet = {k: finetune[k] for k in keys}
    domain = {**{k: pretrain[k] for k in keys}, "small_data_img_size": None}  # given img_size: never enlarged for small data
    return imagenet, domain


def _run(name, size, seed, budget, study_dir, has_accelerator, domain, test_limit, max_epochs) -> RunSpec:
    contender = CONTENDERS[name]
    options: dict[str, Any] = {"seed": seed}
    needs = None
    if name == "scratch":  # the lesson's "random weights" row: batch norm must learn, as in pretrain
        options.update(backbone=domain["backbone"], img_size=domain["img_size"], dataset="mnist", weights="none")
    elif name == "fashion":
        needs = FASHION_PRETRAIN
        options.update(backbone=domain["backbone"], img_size=domain["img_size"],
                       weights=str(study_dir / FASHION_PRETRAIN / runs.BACKBONE_WEIGHTS))
    if size != ALL:
        options.update(per_class=size, test_limit=budget.test_limit)
    if test_limit is not None:
        options["test_limit"] = test_limit
    spec = _spec(f"{name}-{size_key(size)}-s{seed}", name, contender.mode, size, seed, options, max_epochs, has_accelerator)
    spec.needs = needs
    return spec


def _spec(name, contender, mode, size, seed, options, max_epochs, has_accelerator) -> RunSpec:
    """`--max-epochs` (smoke tests) caps every stage, as fit's `max_epochs` does."""
    options = {k: v for k, v in {**options, "max_epochs": max_epochs}.items() if v is not None}
    return RunSpec(name, contender, size, seed, options, planned(mode, options, has_accelerator))


# Rough speeds on the 2-core CPU (training images/s, test images/s, fixed seconds for start-up,
# compilation and figures), from runs on the project's shared machine; only the progress line's
# estimate uses them, and it corrects them by the pace of the runs already done. A backbone's own
# speed is in its record (kerastl.backbones.registry); one without uses the default backbone's.
SPEED = {
    "mlp": Speed(7000, 20000, 3), "cnn": Speed(1000, 5000, 6),
    "feature": Speed(20000, 700, 10),  # feature: test images go through the backbone
}
FEATURE_EXTRACTION = 700  # images/s through EfficientNet-Lite0 at the feature config's 64 px on 2 cores (a rough speed)


def _backbone_speed(name: str | None) -> Speed:
    default = BACKBONES[config_module.SCHEMA["backbone"].default].speed
    return (BACKBONES[name].speed if name in BACKBONES else None) or default


def estimate_seconds(spec: RunSpec) -> float:
    config = spec.config
    mode = config["mode"]
    speed = SPEED.get(mode) or _backbone_speed(config.get("backbone"))
    train_speed, test_speed, fixed = speed.train_images_per_second, speed.test_images_per_second, speed.fixed_seconds
    images = train_images(config)
    epochs = sum(config[stage.epochs_key] for stage in MODES[mode].stages)
    epochs *= 0.7 if spec.size != ALL else 1.0  # early stopping
    test_images = config["test_limit"] or DATASETS[config["dataset"]].test_images
    if mode == "feature":  # features of the train, validation and test images once; the head is cheap
        return fixed + (images / 0.9 + test_images) / FEATURE_EXTRACTION + 0.5 * epochs
    seen = images * (config.get("epoch_passes") or 1) * epochs
    return fixed + seen / train_speed + test_images / test_speed + 0.5 * epochs
