"""What one `explain` looks at: the backbone, its input size, the data, the budget and, given a run,
that run's model. Every mistake a user can make is a one-line UserError here, before anything is
computed or written."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kerastl import runs
from kerastl.backbones import backbone_spec, hub
from kerastl.data import DATASETS, folders, load_data as load_dataset, make_splits
from kerastl.config import DEFAULTS
from kerastl.errors import UserError
from kerastl.log import Log
from kerastl.modes import MODES, TRANSFER_MODES  # transfer runs: their model holds a pretrained backbone to explain

if TYPE_CHECKING:
    from kerastl.finished_run import Run


@dataclass(frozen=True)
class ExplainBudget:
    """How much the explanation measures; quick fits in a few minutes on a 2-core CPU."""

    name: str
    train_images: int  # the probe's labelled training images, balanced over the classes
    test_images: int  # the first N test images: probe accuracy, embeddings, saliency
    img_size: int  # input size when no run decides it: deep blocks still have a 2x2 map at 64 px
    embedding_images: int  # test images in the embedding maps (t-SNE costs most)
    mistakes: int  # saliency: the most confident mistakes shown
    correct: int  # saliency: correct images shown
    check_min_steps: int  # optimiser steps a stage of the partial check run takes at least (0: no check)
    fits_to_data: bool = False  # a named budget's image counts shrink to a smaller dataset; numbers the user gave do not


EXPLAIN_BUDGETS = {
    "quick": ExplainBudget("quick", 1000, 2000, 64, 1000, 6, 4, 300, fits_to_data=True),
    "full": ExplainBudget("full", 5000, 10000, 96, 2000, 12, 6, 1200, fits_to_data=True),
}


@dataclass
class Job:
    backbone: str
    img_size: int
    dataset: str
    budget: ExplainBudget
    output_dir: Path
    run: "Run | None" = None  # a transfer run to explain, its fine-tuned backbone the third contender
    seed: int = 0
    data_dir: str | None = None

    @property
    def fine_tuned(self) -> bool:
        """Whether the run changed the backbone (a feature-mode run kept ImageNet's weights)."""
        return self.run is not None and MODES[self.run.config["mode"]].trains_backbone


def resolve(run_dir=None, backbone: str | None = None, dataset: str | None = None, budget: str | ExplainBudget = "quick",
            output_dir: str | Path | None = None, train_images: int | None = None, test_images: int | None = None) -> Job:
    """The job, checked: an unknown backbone, a folder that is not a transfer run, a budget name
    that does not exist or numbers below 1 are UserErrors (the budget against the data: `load_data`)."""
    chosen = _budget(budget, train_images, test_images)
    run = None
    if run_dir is not None:
        run = _transfer_run(run_dir)
        for flag, value, recorded in (("--backbone", backbone, run.config["backbone"]), ("--dataset", dataset, run.config["dataset"])):
            if value is not None and value != recorded:
                raise UserError(f"{flag} {value}: the run {run.folder} decides it ({recorded}); drop {flag}, or leave out the run")
        backbone, dataset = run.config["backbone"], run.config["dataset"]
        img_size = int(run.metrics.get("img_size") or run.config["img_size"])
    else:
        backbone, dataset = backbone or DEFAULTS["backbone"], dataset or DEFAULTS["dataset"]
        img_size = chosen.img_size
    backbone_spec(backbone)  # an unknown name is a UserError
    if hub.is_hub(backbone):
        hub.keras_hub()  # installed
    if dataset not in DATASETS and not folders.is_folder_dataset(dataset):
        raise UserError(f"--dataset {dataset}: expected mnist, fashion_mnist or a folder of images")
    if dataset not in DATASETS and not Path(dataset).expanduser().is_dir():
        raise UserError(f"--dataset {dataset}: no such folder (expected one subfolder of images per class)")
    folder = runs.report_folder(output_dir, "explain", dataset)
    return Job(backbone, img_size, dataset, chosen, folder, run, seed=int(run.config.get("seed", 0)) if run else 0,
               data_dir=run.config.get("data_dir") if run else None)


def _budget(budget: str | ExplainBudget, train_images: int | None, test_images: int | None) -> ExplainBudget:
    if isinstance(budget, ExplainBudget):
        chosen = budget
    elif budget in EXPLAIN_BUDGETS:
        chosen = EXPLAIN_BUDGETS[budget]
    else:
        raise UserError(f"--budget {budget}: choose {' or '.join(EXPLAIN_BUDGETS)}")
    for flag, value in (("--train-images", train_images), ("--test-images", test_images)):
        if value is not None and value < 1:
            raise UserError(f"{flag} {value}: must be at least 1")
    return replace(chosen, train_images=train_images or chosen.train_images, test_images=test_images or chosen.test_images,
                   fits_to_data=chosen.fits_to_data and train_images is None and test_images is None)


def _transfer_run(run_dir) -> "Run":
    folder = Path(run_dir).expanduser()
    if not folder.is_dir():
        raise UserError(f"no run folder {folder}")
    if not runs.is_complete(folder) or not (folder / runs.MODEL).is_file():
        raise UserError(f"{folder} is not a finished kerastl run (it lacks {runs.METRICS} or {runs.MODEL})")
    from kerastl.finished_run import load_run  # imports Keras (the history's callback): not for --help

    run = load_run(folder)
    if run.config["mode"] not in TRANSFER_MODES:
        raise UserError(f"{folder} is a {run.config['mode']} run, not a transfer run ({', '.join(TRANSFER_MODES)}): "
                        "it has no pretrained backbone to explain; leave out the run to explain a backbone on its own")
    return run


# The data --------------------------------------------------------------------------------------------


@dataclass
class ProbeData:
    x_train: np.ndarray  # uint8 raw pixels, the probe's balanced training images
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    info: Any  # kerastl.data.DataInfo


def load_data(job: Job, log: Log) -> ProbeData:
    """The probe's images: `train_images` from the training split, balanced over the classes and
    seeded, and the first `test_images` of the test split (the run's own test images, given a run).
    A named budget shrinks to a smaller dataset (job.budget then holds the numbers used); numbers
    the user gave that the data cannot meet are a UserError."""
    config = {key: DEFAULTS[key] for key in ("stored_size", "validation_fraction", "max_broken_share")}
    config.update(dataset=job.dataset, data_dir=job.data_dir, img_size=job.img_size, mode="finetune", seed=job.seed)
    if job.run is not None:
        config.update({k: job.run.config[k] for k in ("stored_size", "validation_fraction", "max_broken_share") if k in job.run.config})
    arrays, info, _ = load_dataset(config, log)
    budget = job.budget
    classes, counts = np.unique(arrays["y_train"], return_counts=True)
    if budget.fits_to_data:  # a small folder: as many images as every class has, said in the log
        fitted = min(budget.train_images, int(counts.min()) * len(classes)), min(budget.test_images, len(arrays["y_test"]))
        if fitted != (budget.train_images, budget.test_images):
            log(f"explain: {Path(job.dataset).name} is smaller than the {budget.name} budget: probing {fitted[0]:,} training "
                f"and {fitted[1]:,} test images")
            budget = job.budget = replace(budget, train_images=fitted[0], test_images=fitted[1])
    per_class = -(-budget.train_images // len(classes))
    if per_class > counts.min():
        most = int(counts.min()) * len(classes)
        raise UserError(
            f"the {budget.name} budget probes {budget.train_images:,} training images ({per_class} per class); "
            f"{Path(job.dataset).name} has {int(counts.min())} in class {info.class_names[int(classes[counts.argmin()])]}: "
            f"use --train-images {most} or fewer"
        )
    if budget.test_images > len(arrays["y_test"]):
        raise UserError(f"the {budget.name} budget scores {budget.test_images:,} test images; {Path(job.dataset).name} has "
                        f"{len(arrays['y_test']):,}: use --test-images {len(arrays['y_test'])} or fewer")
    splits = make_splits(arrays, validation_fraction=0.0, per_class=per_class, test_limit=budget.test_images, seed=job.seed)
    x_train, y_train = splits.x_train[: budget.train_images], splits.y_train[: budget.train_images]
    x_test = splits.x_test
    if hasattr(x_train, "load"):  # an image folder's files: decoded once, a bounded number
        x_train, x_test = x_train.load(), x_test.load()
    return ProbeData(np.asarray(x_train), np.asarray(y_train), np.asarray(x_test), np.asarray(splits.y_test), info)
