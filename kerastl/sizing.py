"""The run sized to its data and its devices, once, before anything is written: enough optimiser
steps on small data, and a batch the training set and the devices can fill.

The configs in configs/ are recipes in epochs, written for MNIST's 54,000 training images. Given 90
images, the same recipe makes one optimiser step an epoch and the model barely moves. So a run is
sized to its training set before its folder is written, in every mode and on every device, by these
rules. A key the user set (a flag, a keyword of `kerastl.run`, or a key of their own `--config`
file: the config's `given` list) is left exactly as set.

- A stage that would make fewer than `min_steps` optimiser steps is small: the batch shrinks to
  about a tenth of the training set (a power of two, at least MIN_BATCH), an epoch makes several
  passes over the images so that it has at least STEPS_PER_EPOCH steps (validation, checkpoints and
  the resume commit cost as much after 6 steps as after 600), and the stage trains for enough epochs
  to reach `min_steps` steps. Epochs never shrink below the config's and never exceed `max_epochs`.
- A stage's target is its share of `min_steps` (kerastl.modes): the head stage of finetune and
  partial gets a quarter, so the new head settles before the backbone is unfrozen.
- Early stopping's patience is at least a third of the stage's epochs: short epochs are noisy.
- Augmentation (random shifts, rotations and zooms, tuned on digits) is on for a small MNIST
  training set (never in feature mode, whose features are computed once), and off for every other
  dataset: on Fashion-MNIST it cost the CNN 1.4 pp (all images), on a photo folder of 40 images a
  class 1.6 pp (finetune) and 6.8 pp (CNN) (benchmarks/small_data.py). `--augment` turns it back on.
- Transfer modes (feature, finetune, partial), without an accelerator: at most SMALL_DATA_IMAGES
  training images are few enough to afford `small_data_img_size` (96 px) instead of the CPU size (40 px);
  ImageNet features help most at that size (100 MNIST images: 69.7 % at 40 px, 77.2 % at 96 px).
- A batch larger than the training set could never be full: it shrinks to the training set (in
  whole multiples of the devices), set or not, before the passes and epochs are counted.

Steps are counted as the input pipeline makes them (kerastl.data.pipeline.steps_per_epoch): where
every batch must be full (JAX, an accelerator), a last partial batch is dropped and not counted.
On MNIST's full training split every stage already has its steps, so nothing changes there.
`min_steps: 0` turns the sizing off; `max_epochs` still caps every stage, and a batch larger than
the training set still shrinks to it. The keys changed are
recorded in the config's `sized` list, and the whole config is then frozen (`freeze`): config.yaml
records it once, and the log, metrics.json and the training all read that one object.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping

from kerastl.data.datasets import DATASETS
from kerastl.data.pipeline import steps_per_epoch
from kerastl.distribute import Placement
from kerastl.modes import BACKBONE_MODES, MODES, Stage

STEPS_PER_EPOCH = 30
MIN_BATCH = 16
SMALL_DATA_IMAGES = 2000
SIZED_KEYS = ("batch_size", "epoch_passes", "epochs", "head_epochs", "patience", "augment", "img_size")  # what it may change
ONE_DEVICE = Placement("single")


@dataclass(frozen=True)
class Schedule:
    """The sized run's steps, derived from its frozen config: for the log line and metrics.json."""

    train_images: int
    batch_size: int
    epoch_passes: int
    steps_per_epoch: int
    stage_epochs: dict[str, int]  # stage name -> epochs
    sized: tuple[str, ...]  # the keys the sizing changed

    @classmethod
    def of(cls, config: Mapping[str, Any], train_images: int, placement: Placement = ONE_DEVICE) -> "Schedule":
        batch, passes = config["batch_size"], config["epoch_passes"]
        steps = steps_per_epoch(train_images, batch, passes, placement.batch_multiple(batch))
        stage_epochs = {stage.name: config[stage.epochs_key] for stage in MODES[config["mode"]].stages}
        return cls(train_images, batch, passes, steps, stage_epochs, tuple(config.get("sized") or ()))

    def summary(self) -> dict[str, Any]:
        return {
            "train_images": self.train_images, "batch_size": self.batch_size, "epoch_passes": self.epoch_passes,
            "steps_per_epoch": self.steps_per_epoch, "stage_epochs": dict(self.stage_epochs), "sized": list(self.sized),
        }


def target_steps(config: Mapping[str, Any], stage: Stage) -> float:
    """The optimiser steps `stage` should take at least: its share of `min_steps`."""
    return config["min_steps"] * stage.share_of_min_steps


def min_epochs(config: Mapping[str, Any], stage: Stage, steps_per_epoch: int) -> int:
    """Epochs before early stopping may end `stage`: enough for its target steps, at most its epochs."""
    epochs = config[stage.epochs_key]
    return min(epochs, max(1, math.ceil(target_steps(config, stage) / steps_per_epoch)))


def size_to_data(config: Mapping[str, Any], train_images: int, has_accelerator: bool,
                 placement: Placement = ONE_DEVICE) -> dict[str, Any]:
    """The config with its schedule sized to `train_images` on `placement` (the rules above); its
    `sized` key lists what changed."""
    given = set(config.get("given") or ())
    sized = dict(config)
    mode, min_steps = MODES[config["mode"]], config["min_steps"]

    def steps(batch: int, passes: int) -> int:
        return steps_per_epoch(train_images, batch, passes, placement.batch_multiple(batch))

    def fitted(batch: int) -> int:  # no larger than the training set, in whole multiples of the devices
        return batch if batch <= train_images else max(placement.devices, train_images // placement.devices * placement.devices)

    configured = steps(fitted(config["batch_size"]), config["epoch_passes"])
    small = any(config[stage.epochs_key] * configured < target_steps(config, stage) for stage in mode.stages)

    def choose(key: str, value) -> None:
        if key not in given:
            sized[key] = value

    if small:
        choose("batch_size", min(config["batch_size"], max(MIN_BATCH, 2 ** int(math.log2(max(1, train_images // 10))))))
    sized["batch_size"] = fitted(sized["batch_size"])  # set or not: a batch the data cannot fill is no batch
    if small:
        choose("epoch_passes", max(config["epoch_passes"], math.ceil(STEPS_PER_EPOCH * sized["batch_size"] / train_images)))
    per_epoch = steps(sized["batch_size"], sized["epoch_passes"])
    for stage in mode.stages:
        head = stage.share_of_min_steps < 1
        cap = max(1, round(stage.share_of_min_steps * config["max_epochs"])) if head else config["max_epochs"]
        choose(stage.epochs_key, min(cap, max(config[stage.epochs_key], math.ceil(target_steps(config, stage) / per_epoch))))
    if small:
        choose("patience", max(config["patience"], max(sized[stage.epochs_key] for stage in mode.stages) // 3))
    dataset = DATASETS.get(config["dataset"])
    if not (dataset and dataset.augmentation_tuned):  # the shifts, rotations and zooms were tuned on digits
        choose("augment", False)
    elif small and config["mode"] != "feature":
        choose("augment", True)
    if (min_steps and mode.transfers and not has_accelerator and config.get("small_data_img_size")
            and train_images <= SMALL_DATA_IMAGES):
        choose("img_size", max(config["img_size"], config["small_data_img_size"]))
    sized["sized"] = [key for key in sized if key != "sized" and sized[key] != config[key]]
    return sized


def freeze(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """The run's config, read-only from here on: what config.yaml records is what the run uses."""
    return MappingProxyType(dict(config))


def describe(schedule: Schedule, config: Mapping[str, Any], has_accelerator: bool) -> str:
    """One log line: how the schedule was sized, and the CPU settings where they apply."""
    stage_text = ", ".join(f"{stage} {n} epoch{'s' if n > 1 else ''}" for stage, n in schedule.stage_epochs.items())
    passes = f" ({schedule.epoch_passes} passes)" if schedule.epoch_passes > 1 else ""
    line = (f"kerastl: schedule for {schedule.train_images:,} training images: batch {schedule.batch_size}, "
            f"{schedule.steps_per_epoch} steps an epoch{passes}; {stage_text}")
    if config["mode"] in BACKBONE_MODES:
        line += f"; img_size {config['img_size']}"
    if schedule.sized:  # the rules are in this module's docstring and the README
        line += f" (sized to the data: {', '.join(schedule.sized)}"
        line += f"; patience {config['patience']}" if "patience" in schedule.sized else ""
        line += ")"
    if not has_accelerator and config["mode"] in BACKBONE_MODES:
        line += "; no accelerator: the config's cpu: section applies"
    given = [k for k in config.get("given") or () if k in SIZED_KEYS and k not in schedule.sized]
    if given:
        line += f"; kept as you set them: {', '.join(given)}"
    return line
