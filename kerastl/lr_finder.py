"""The learning-rate finder (fastai's `lr_find`, after Smith 2017, "Cyclical learning rates").

    sweep = kerastl.lr_find(model, x_train, y_train, batch_size=128)
    sweep.suggestion, sweep.lrs, sweep.smoothed; sweep.plot("lr_find.png")

The rate grows exponentially from `start_lr` to `end_lr`, one optimiser step per rate, on the
model's trainable variables, and the sweep stops once the mean loss of the last WINDOW steps exceeds
four times its lowest value (divergence). The suggestion is fastai's "valley", read off the loss
smoothed by a centred mean over WINDOW steps: two thirds of the way down the longest stretch over
which the loss keeps falling, below the minimum, where training is still stable. (fastai smooths
with a moving average of momentum 0.98; over 100 steps that lags the loss by about 49 steps, four
decades of rate here, and moves the whole curve to the right. A centred mean does not lag.)

Afterwards the model is as it was, bit for bit: every variable (weights, batch-norm statistics,
the random generators of dropout and augmentation) is restored, and a compiled model is compiled
again with its own optimizer object, whose state the sweep never touched (the sweep steps a
fresh optimizer of its own).

In a run (`fit --lr find`, `--finetune-lr find`) every stage that trains sweeps first: the head
stage on the frozen backbone, the fine-tuning stage from the trained head. The stage then trains
with the suggestion. `config.yaml` records what was asked (`find`), `lr_find.json` the curves and
each suggestion (a resumed stage trains with its recorded one), `lr_find.png` draws them, and
`metrics.json` has the rate each stage trained with (`learning_rates`) and each sweep's summary
(`lr_find`).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import keras
import numpy as np

from kerastl import runs
from kerastl.config import FIND, resolve  # noqa: F401 (FIND: the value of lr / finetune_lr that asks for a sweep)
from kerastl.data.folders import FileImages
from kerastl.errors import first_line
from kerastl.files import atomic_write_text
from kerastl.log import Log
from kerastl.modes import Stage
from kerastl.plots import pyplot, run_title, save_figure

STEPS = 100
START_LR = 1e-6  # Adam and AdamW (kerastl's optimisers) barely move below it, and diverge above END_LR
END_LR = 1.0
WINDOW = 9  # steps averaged: a centred mean for the curve, a trailing one for the divergence test
BLOWN_UP = 1e30  # stands for a loss that is not a number
DIVERGED = 4.0  # stop when the trailing mean loss is this many times its lowest value


@dataclass
class LRSweep:
    """One sweep: the rate and loss of every step, the smoothed loss and the suggested rate."""

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestion: float
    steps_planned: int
    diverged: bool
    batch_size: int
    seconds: float
    stage: str = ""
    configured_lr: float | None = None  # the mode's configured rate, drawn for comparison
    images: int = 0  # training images the sweep drew its batches from
    loss_name: str = "cross-entropy"  # for the figure's axis
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """What metrics.json keeps: the range swept, the suggestion, how it ended."""
        return {
            "start_lr": self.lrs[0], "end_lr": self.lrs[-1], "steps": len(self.lrs), "steps_planned": self.steps_planned,
            "diverged": self.diverged, "suggestion": self.suggestion, "batch_size": self.batch_size,
            "seconds": round(self.seconds, 3), "lowest_loss_lr": self.lrs[int(np.nanargmin(self.smoothed))],
        }

    def plot(self, path: str | Path, title: str = "") -> None:
        plot([self], Path(path), title)


def exponential_rates(start_lr: float, end_lr: float, steps: int) -> np.ndarray:
    """The rate of each step, as the optimiser's ExponentialDecay schedule computes it."""
    return start_lr * (end_lr / start_lr) ** (np.arange(steps) / max(1, steps - 1))


def smooth(losses: list[float], window: int = WINDOW) -> list[float]:
    """Each step's loss averaged with its neighbours: a centred mean over `window` steps (fewer at the ends)."""
    values = np.asarray(losses, "float64")
    half = window // 2
    return [float(values[max(0, i - half) : i + half + 1].mean()) for i in range(len(values))]


def _diverging(losses: list[float], window: int = WINDOW) -> bool:
    """A loss that is not finite, or a trailing mean over `window` steps DIVERGED times its lowest."""
    if not math.isfinite(losses[-1]):
        return True
    if len(losses) < 2 * window:
        return False
    trailing = np.convolve(losses, np.ones(window) / window, mode="valid")
    return bool(trailing[-1] > DIVERGED * trailing.min())


def valley(lrs: list[float], smoothed: list[float]) -> float:
    """fastai's default suggestion: the longest run of falling loss (a longest decreasing
    subsequence), two thirds of the way along it. The first tenth and the last five steps are left
    out, as fastai does: the start is flat noise and the end has diverged."""
    first = len(lrs) // 10
    last = max(first + 1, len(lrs) - 5)
    losses = smoothed[first:last]
    n = len(losses)
    longest = [1] * n
    start = end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and longest[i] < longest[j] + 1:
                longest[i] = longest[j] + 1
        if longest[end] < longest[i]:
            end = i
            start = end - longest[end]
    third = (end - start) / 3
    index = min(n - 1, max(0, start + int(third) + int(third / 2)))
    return float(lrs[first + index])


def _batches(x, y: np.ndarray, batch_size: int, seed: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Full, shuffled batches forever (a small training set is passed over again)."""
    rng = np.random.default_rng(seed)
    batch_size = min(batch_size, len(y))
    while True:
        order = rng.permutation(len(y))
        for i in range(0, len(order) - batch_size + 1, batch_size):
            index = np.sort(order[i : i + batch_size]) if isinstance(x, FileImages) else order[i : i + batch_size]
            images = x[index].load() if isinstance(x, FileImages) else x[index]
            yield images, y[index]


def _snapshot(model: keras.Model) -> list[tuple[Any, np.ndarray]]:
    return [(v, np.array(keras.ops.convert_to_numpy(v.value), copy=True)) for v in model.variables]


def _restore(snapshot: list[tuple[Any, np.ndarray]]) -> None:
    for variable, value in snapshot:
        variable.assign(value)


def lr_find(
    model: keras.Model, x, y, *, batch_size: int = 128, steps: int = STEPS, start_lr: float = START_LR,
    end_lr: float = END_LR, optimizer: Callable[[Any], keras.optimizers.Optimizer] | None = None,
    loss: Any = None, jit_compile: Any = "auto", seed: int = 0,
) -> LRSweep:
    """Sweep the learning rate over `steps` optimiser steps and suggest one; trains nothing for good.

    `optimizer(learning_rate)` makes the sweep's optimizer (default: one like the model's own if it
    is compiled, else Adam); `loss` defaults to the compiled model's, else sparse categorical
    cross-entropy. The model's variables, and a compiled model's optimizer, are restored afterwards.
    """
    if not 0 < start_lr < end_lr:
        raise ValueError(f"need 0 < start_lr < end_lr, got {start_lr:g} and {end_lr:g}")
    if steps < 10:
        raise ValueError(f"a sweep needs at least 10 steps, got {steps}")
    compiled = getattr(model, "compiled", False) and getattr(model, "_compile_config", None) is not None
    before = dict(model._compile_config.config) if compiled else None  # Keras' record of compile()'s arguments
    if optimizer is None:
        if compiled:
            own = model.optimizer
            optimizer = lambda lr: type(own).from_config({**own.get_config(), "learning_rate": lr})  # noqa: E731
        else:
            optimizer = keras.optimizers.Adam
    if loss is None:
        loss = before["loss"] if compiled else "sparse_categorical_crossentropy"
    rates = exponential_rates(start_lr, end_lr, steps)
    schedule = keras.optimizers.schedules.ExponentialDecay(start_lr, decay_steps=max(1, steps - 1), decay_rate=end_lr / start_lr)
    snapshot = _snapshot(model)
    start = time.perf_counter()
    losses: list[float] = []
    diverged = False
    try:
        model.compile(optimizer=optimizer(schedule), loss=loss, jit_compile=jit_compile)
        batches = _batches(x, np.asarray(y), batch_size, seed)
        for step in range(steps):
            images, labels = next(batches)
            value = float(model.train_on_batch(images, labels, return_dict=True)["loss"])
            losses.append(value)
            if _diverging(losses):
                diverged = True
                break
    finally:
        _restore(snapshot)
        if compiled:
            model.compile(**before)  # the same optimizer object: its slots and step count untouched
    seconds = time.perf_counter() - start
    losses = [v if math.isfinite(v) else BLOWN_UP for v in losses]  # a NaN or infinite last step, kept JSON-safe
    smoothed = smooth(losses)
    lrs = [float(r) for r in rates[: len(losses)]]
    notes = [] if len(losses) >= 20 else [f"the loss diverged after {len(losses)} steps: the suggestion rests on few points"]
    return LRSweep(lrs, losses, smoothed, valley(lrs, smoothed), steps, diverged, min(batch_size, len(y)), seconds,
                   images=len(y), notes=notes)


# In a run: sweep a stage, record it, draw it --------------------------------------------------


def find_for_stage(model: keras.Model, stage: Stage, x, y, config: Mapping[str, Any], run_dir: Path, optimizer, loss,
                   jit_compile, log: Log) -> float:
    """The rate `stage` trains with: its recorded sweep's suggestion when an interrupted run
    resumes, else a new sweep, recorded (lr_find.json, lr_find.png) before it is returned."""
    recorded = read_sweeps(run_dir)
    if stage.name in recorded:
        rate = recorded[stage.name].suggestion
        log(f"stage {stage.name}: lr find: the rate this run found before, {rate:.3g}")
        return rate
    log(f"stage {stage.name}: lr find: sweeping the learning rate from {START_LR:g} to {END_LR:g} over up to {STEPS} steps "
        f"of {min(config['batch_size'], len(y))} images")
    sweep = lr_find(model, x, y, batch_size=config["batch_size"], steps=STEPS, optimizer=optimizer, loss=loss,
                    jit_compile=jit_compile, seed=config["seed"])
    sweep.stage = stage.name
    sweep.configured_lr = configured_rate(config["mode"], stage.lr_key)
    if config.get("label_smoothing"):
        sweep.loss_name = f"cross-entropy, label smoothing {config['label_smoothing']:g}"
    sweeps = {**recorded, stage.name: sweep}
    write_sweeps(run_dir, sweeps)
    try:  # a figure that fails to draw must not cost the run
        plot(list(sweeps.values()), run_dir / runs.LR_FIND_FIGURE, run_title(config))
    except Exception as exc:
        log(f"lr find: figure not drawn ({first_line(exc)})")
    ended = f"diverged at {sweep.lrs[-1]:.2g}" if sweep.diverged else f"reached {sweep.lrs[-1]:.2g} without diverging"
    log(f"stage {stage.name}: lr find: suggestion {sweep.suggestion:.3g} ({len(sweep.lrs)} steps in {sweep.seconds:.0f} s, {ended})"
        + "".join(f"; {note}" for note in sweep.notes))
    return sweep.suggestion


def configured_rate(mode: str, key: str) -> float | None:
    """The rate the mode's packaged config sets for `key` (resolved as a run without flags would be), for the figure."""
    value = resolve(mode, None, {}, accelerator=False)[key]
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def write_sweeps(run_dir: Path, sweeps: dict[str, LRSweep]) -> None:
    atomic_write_text(run_dir / runs.LR_FIND, json.dumps({s: asdict(v) for s, v in sweeps.items()}, indent=1) + "\n")


def read_sweeps(run_dir: Path) -> dict[str, LRSweep]:
    """The sweeps a run recorded (none: {})."""
    path = Path(run_dir) / runs.LR_FIND
    if not path.is_file():
        return {}
    return {stage: LRSweep(**fields) for stage, fields in json.loads(path.read_text()).items()}


def summaries(run_dir: Path) -> dict[str, dict[str, Any]]:
    """metrics.json's `lr_find`: each swept stage's summary."""
    return {stage: sweep.summary() for stage, sweep in read_sweeps(run_dir).items()}


def plot(sweeps: list[LRSweep], path: Path, title: str = "") -> None:
    """lr_find.png: smoothed training loss against the learning rate (log x), one panel per stage,
    the suggestion marked (and the configured rate, where the mode's config has one)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(sweeps), figsize=(6.2 * len(sweeps), 4.6), squeeze=False)
    for ax, sweep in zip(axes.flat, sweeps):
        ax.plot(sweep.lrs, sweep.losses, color="lightgrey", linewidth=1, label="loss of each step")
        ax.plot(sweep.lrs, sweep.smoothed, color="C0", linewidth=2, label=f"smoothed (mean of {WINDOW} steps)")
        at = int(np.argmin(np.abs(np.log(sweep.lrs) - math.log(sweep.suggestion))))
        ax.axvline(sweep.suggestion, color="C3", linestyle=":", linewidth=1.5)
        ax.plot([sweep.suggestion], [sweep.smoothed[at]], "o", color="C3", markersize=8,
                label=f"suggested rate {sweep.suggestion:.2g}")
        if sweep.configured_lr:
            ax.axvline(sweep.configured_lr, color="dimgrey", linestyle="--", linewidth=1,
                       label=f"configured rate {sweep.configured_lr:.2g}")
        ax.set_xscale("log")
        low = min(min(sweep.losses), min(sweep.smoothed))
        high = 1.2 * max(sweep.smoothed[: len(sweep.smoothed) // 2 + 1])  # the starting plateau, and a little above it
        ax.set_ylim(low - 0.05 * (high - low + 1e-9), high + 0.15 * (high - low + 1e-9))
        ax.set_xlabel("learning rate (log scale)")
        ax.set_ylabel(f"training loss ({sweep.loss_name})")
        ended = "stopped: loss diverged" if sweep.diverged else "no divergence"
        ax.set_title(f"stage {sweep.stage or 'train'}: {len(sweep.lrs)} steps of {sweep.batch_size} images ({ended})")
        ax.legend(loc="upper left", fontsize=9)
    images = f" ({sweeps[0].images:,} training images)" if sweeps and sweeps[0].images else ""
    fig.suptitle(f"Learning-rate finder{images}" + (f"\n{title}" if title else ""))
    fig.tight_layout()
    save_figure(fig, Path(path))
