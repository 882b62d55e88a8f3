"""The training schedule, sized to the training set: enough optimiser steps on small data.

The configs in configs/ are recipes in epochs, written for MNIST's 54,000 training images. Given 90
images, the same recipe makes one optimiser step an epoch and the model barely moves. So `train`
sizes the schedule to the training set before it builds the model, in every mode and on every
device, by these rules. A key the user set (a flag, a keyword of `kerastl.run`, or a key of their
own `--config` file: the config's `given` list) is left exactly as set.

- A stage that would make fewer than `min_steps` optimiser steps is small: the batch shrinks to
  about a tenth of the training set (a power of two, at least MIN_BATCH), an epoch makes several
  passes over the images so that it has at least STEPS_PER_EPOCH steps (validation, checkpoints and
  the resume commit cost as much after 6 steps as after 600), and the stage trains for enough epochs
  to reach `min_steps` steps. Epochs never shrink below the config's and never exceed `max_epochs`.
- finetune and partial: the head stage gets HEAD_SHARE of `min_steps`, so the new head settles
  before the backbone is unfrozen.
- Early stopping's patience is at least a third of the stage's epochs: short epochs are noisy.
- Augmentation (random shifts, rotations and zooms, tuned on digits) is on for a small MNIST
  training set (never in feature mode, whose features are computed once), and off for every other
  dataset: on Fashion-MNIST it cost the CNN 1.4 pp (all images), on a photo folder of 40 images a
  class 1.6 pp (finetune) and 6.8 pp (CNN) (benchmarks/small_data.py). `--augment` turns it back on.
- Transfer modes without an accelerator: at most SMALL_DATA_IMAGES training images are few enough
  to afford the config's `small_data_img_size` input (96 px) instead of its CPU size (40 px); ImageNet
  features help most at that size (100 MNIST images: 69.7 % at 40 px, 77.2 % at 96 px).

On MNIST's full training split every stage already has its steps, so nothing changes there.
`min_steps: 0` turns the sizing off; `max_epochs` still caps every stage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from kerastl.config import TRANSFER_MODES

STEPS_PER_EPOCH = 30
MIN_BATCH = 16
HEAD_SHARE = 0.25
SMALL_DATA_IMAGES = 2000
SIZED_KEYS = ("batch_size", "epoch_passes", "epochs", "head_epochs", "patience", "augment", "img_size")  # what it may change


@dataclass(frozen=True)
class Schedule:
    """What the sizing decided: for the log line and metrics.json."""

    train_images: int
    batch_size: int
    epoch_passes: int
    steps_per_epoch: int
    stage_epochs: dict[str, int]  # stage name -> epochs
    sized: tuple[str, ...]  # the keys the sizing changed
    small: bool  # some stage had fewer than min_steps steps as configured

    def summary(self) -> dict[str, Any]:
        return {
            "train_images": self.train_images, "batch_size": self.batch_size, "epoch_passes": self.epoch_passes,
            "steps_per_epoch": self.steps_per_epoch, "stage_epochs": dict(self.stage_epochs), "sized": list(self.sized),
        }


def stages(mode: str) -> dict[str, str]:
    """The stages of `mode` that train, each with the config key of its epochs."""
    if mode in ("finetune", "partial"):
        return {"head": "head_epochs", "finetune": "epochs"}
    return {{"feature": "head", "pretrain": "pretrain"}.get(mode, "train"): "epochs"}


def target_steps(config: dict[str, Any], stage: str) -> float:
    """The optimiser steps `stage` should take at least: `min_steps`, a share of it for a head stage."""
    head = stage == "head" and config["mode"] in ("finetune", "partial")
    return config["min_steps"] * (HEAD_SHARE if head else 1.0)


def min_epochs(config: dict[str, Any], stage: str, steps_per_epoch: int, epochs: int) -> int:
    """Epochs before early stopping may end `stage`: enough for its target steps, at most `epochs`."""
    return min(epochs, max(1, math.ceil(target_steps(config, stage) / steps_per_epoch)))


def size_to_data(config: dict[str, Any], train_images: int, has_accelerator: bool) -> tuple[dict[str, Any], Schedule]:
    """(the config with its schedule sized to `train_images`, what was decided)."""
    given = set(config.get("given") or ())
    sized = dict(config)
    mode, min_steps = config["mode"], config["min_steps"]
    epoch_keys = stages(mode)

    def steps_per_epoch(batch: int, passes: int) -> int:  # as the input pipeline batches the passes
        return math.ceil(train_images * passes / batch)

    configured = steps_per_epoch(config["batch_size"], config["epoch_passes"])
    small = any(config[key] * configured < target_steps(config, stage) for stage, key in epoch_keys.items())

    def choose(key: str, value) -> None:
        if key not in given:
            sized[key] = value

    if small:
        choose("batch_size", min(config["batch_size"], max(MIN_BATCH, 2 ** int(math.log2(max(1, train_images // 10))))))
        choose("epoch_passes", max(config["epoch_passes"], math.ceil(STEPS_PER_EPOCH * sized["batch_size"] / train_images)))
    per_epoch = steps_per_epoch(sized["batch_size"], sized["epoch_passes"])
    for stage, key in epoch_keys.items():
        head = target_steps(config, stage) < min_steps
        cap = max(1, round(HEAD_SHARE * config["max_epochs"])) if head else config["max_epochs"]
        choose(key, min(cap, max(config[key], math.ceil(target_steps(config, stage) / per_epoch))))
    if small:
        choose("patience", max(config["patience"], max(sized[key] for key in epoch_keys.values()) // 3))
    if config["dataset"] != "mnist":  # the shifts, rotations and zooms were tuned on digits
        choose("augment", False)
    elif small and mode != "feature":
        choose("augment", True)
    if (min_steps and mode in TRANSFER_MODES and not has_accelerator and config.get("small_data_img_size")
            and train_images <= SMALL_DATA_IMAGES):
        choose("img_size", max(config["img_size"], config["small_data_img_size"]))
    changed = tuple(k for k in sized if sized[k] != config[k])
    return sized, Schedule(
        train_images, sized["batch_size"], sized["epoch_passes"], per_epoch,
        {stage: sized[key] for stage, key in epoch_keys.items()}, changed, small,
    )


def describe(schedule: Schedule, config: dict[str, Any], has_accelerator: bool) -> str:
    """One log line: how the schedule was sized, and the CPU settings where they apply."""
    stage_text = ", ".join(f"{stage} {n} epoch{'s' if n > 1 else ''}" for stage, n in schedule.stage_epochs.items())
    passes = f" ({schedule.epoch_passes} passes)" if schedule.epoch_passes > 1 else ""
    line = (f"kerastl: schedule for {schedule.train_images:,} training images: batch {schedule.batch_size}, "
            f"{schedule.steps_per_epoch} steps an epoch{passes}; {stage_text}")
    if config["mode"] in TRANSFER_MODES:
        line += f"; img_size {config['img_size']}"
    if schedule.sized:
        why = (f"fewer than {config['min_steps']} steps a stage as configured" if schedule.small
               else f"at most {SMALL_DATA_IMAGES:,} training images")
        line += f" (sized to the data, {why}: {', '.join(schedule.sized)}"
        line += f"; patience {config['patience']}" if "patience" in schedule.sized else ""
        line += ")"
    if not has_accelerator and config["mode"] in TRANSFER_MODES:
        line += "; no accelerator: the config's cpu: section applies"
    given = [k for k in config.get("given") or () if k in SIZED_KEYS]
    if given:
        line += f"; kept as you set them: {', '.join(given)}"
    return line

