"""Training, read top-down: prepare the run (data, devices, the schedule sized to both: its config
is then frozen), build the model, train in stages, evaluate, write the run.

Stages per mode (declared in kerastl.modes):
- mlp, cnn: one stage, the whole model.
- feature: the backbone is frozen; its features are computed once and the head trains on them.
- finetune: stage "head" trains the head on the frozen backbone; stage "finetune" unfreezes the
  backbone and continues with a ~10x lower learning rate, batch norm still in inference mode.
- partial: like finetune, but stage 2 unfreezes only the top `unfreeze` blocks.
- pretrain: a backbone trains from scratch (batch norm in training mode) on another dataset; its
  weights are saved for `--weights` in a later transfer run.

Every stage commits its state after each epoch (kerastl.resume), so `train` called again on the
folder of an interrupted run continues it, with the config the run recorded.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import keras
import numpy as np

from kerastl import distribute, evaluation, finished_run, history, lr_finder, plots, resume, runs, runtime, sizing, xla_cpu
from kerastl.backbones import unfreeze
from kerastl.confidence import job as confidence_job, outside
from kerastl.data import DataInfo, fit_inputs, folders, load_data, make_splits, predict_in_batches, validation_data
from kerastl.data.folders import FolderData
from kerastl.data.splits import Splits
from kerastl.distribute import Placement
from kerastl.inspection.before_fit import FolderHealth, accuracy_without, check_folder
from kerastl.log import Log
from kerastl.losses import training_loss
from kerastl.modes import BACKBONE_MODES, MODES, Stage
from kerastl.models import BUILDERS, TransferModel, build_transfer_model
from kerastl.sizing import Schedule


class EpochTimer(keras.callbacks.Callback):
    """Wall time of every epoch (training plus validation)."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []  # restored on --resume by kerastl.resume.ResumePoint

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


@dataclass
class StageResult:
    name: str
    epochs: int
    seconds: float
    images: int
    epoch_seconds: list[float] = field(default_factory=list)
    lr: float | None = None  # the learning rate the stage trained with (a sweep's suggestion for "find")


@dataclass(frozen=True)
class PreparedRun:
    """A run decided before its folder is written: the config frozen after sizing (what config.yaml
    records, the log says and the training reads), its data, and where it trains."""

    config: Mapping[str, Any]
    splits: Splits
    data: DataInfo
    folder: FolderData | None  # an image folder's scan (None for MNIST, Fashion-MNIST)
    placement: Placement
    schedule: Schedule
    has_accelerator: bool
    policy: str  # Keras' dtype policy, set for this run
    started: float  # time.perf_counter() when preparing began: the run's wall clock counts from here
    health: FolderHealth | None = None  # an image folder's copies across splits and raw-pixel floor


def prepare(config: Mapping[str, Any], has_accelerator: bool, log: Log = print, recorded: bool = False) -> PreparedRun:
    """Load and split the data, place the run on its devices and size its schedule to both
    (kerastl.sizing), then freeze the config. A `recorded` config (a resumed run's config.yaml)
    was sized when it started: it is used as it is."""
    started = time.perf_counter()
    keras.utils.set_random_seed(config["seed"])
    policy = runtime.apply_precision(config["precision"], has_accelerator)
    xla_cpu.use_fast_convolutions()  # JAX on a CPU: depthwise and 1x1 convolutions that XLA:CPU runs slowly

    arrays, data, folder = load_data(config, log)
    splits = make_splits(arrays, config["validation_fraction"], config["limit"], config["test_limit"], config["seed"],
                         per_class=config.get("per_class"))
    log(f"data: splits {splits.sizes()} (seed {config['seed']})")
    health = check_folder(folder, log) if folder is not None else None
    placement = distribute.place(config, has_accelerator, log)
    if not recorded:
        config = sizing.size_to_data(config, len(splits.y_train), has_accelerator, placement)
    config = sizing.freeze(config)
    schedule = Schedule.of(config, len(splits.y_train), placement)
    for line in (placement.describe(config["batch_size"]), sizing.describe(schedule, config, has_accelerator)):
        if line:
            log(line)
    if folder is not None and config["mode"] in BACKBONE_MODES and not config.get("stored_size"):
        if data.image_shape[0] != config["img_size"]:
            log(f"data: images decoded at {config['img_size']}x{config['img_size']}, the input size of this schedule")
            splits, data = folders.stored_at(splits, data, config["img_size"])
    return PreparedRun(config, splits, data, folder, placement, schedule, has_accelerator, policy, started, health)


def standard_callbacks(stage_dir: Path, run_dir: Path, has_val: bool, patience: int, scheduled: bool,
                       min_epochs: int = 1) -> list:
    """Early stopping and the best epoch's weights on validation loss, the history, NaN guard;
    ReduceLROnPlateau only without a learning-rate schedule (the schedule decides the rate).
    Early stopping watches from epoch `min_epochs` on, so a stage trains at least that many."""
    monitor = "val_loss" if has_val else "loss"
    reduce_lr = [] if scheduled else [
        keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=0.3, patience=max(1, patience // 2), min_lr=1e-6)
    ]
    return reduce_lr + [
        keras.callbacks.TerminateOnNaN(),
        # best weights: from the checkpoint
        keras.callbacks.EarlyStopping(monitor=monitor, patience=patience, start_from_epoch=min_epochs - 1),
        resume.best_checkpoint(stage_dir, monitor),
        history.HistoryWriter(run_dir / runs.HISTORY, stage_dir.name, history.clock_of(run_dir)),
    ]


def learning_rate(lr: float, schedule: str, steps: int):
    """A constant rate, or a linear warm-up over the first 10 % of steps followed by cosine decay."""
    if schedule == "constant":
        return lr
    warmup = max(1, steps // 10)
    return keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=max(1, steps - warmup), warmup_target=lr, warmup_steps=warmup
    )


def make_optimizer(lr, weight_decay: float) -> keras.optimizers.Optimizer:
    if weight_decay:
        return keras.optimizers.AdamW(lr, weight_decay=weight_decay)
    return keras.optimizers.Adam(lr)


@dataclass
class Job:
    """What every stage of one run shares."""

    run: PreparedRun
    run_dir: Path
    log: Log = print
    callbacks: Sequence[keras.callbacks.Callback] = ()

    @property
    def config(self) -> Mapping[str, Any]:
        return self.run.config

    @property
    def splits(self) -> Splits:
        return self.run.splits


def _compile(model: keras.Model, lr, config: Mapping[str, Any], has_accelerator: bool) -> None:
    model.compile(
        optimizer=make_optimizer(lr, config["weight_decay"]),
        loss=training_loss(config["label_smoothing"]),
        weighted_metrics=["accuracy"],  # same as metrics=; also honours the 0-weight padding of kerastl.distribute
        jit_compile=runtime.jit_setting(config["jit_compile"], has_accelerator),
    )


def fit_stage(job: Job, model: keras.Model, stage: Stage, x_train=None, x_val=None) -> StageResult:
    """Compile and fit one stage with the standard callbacks, then the job's; the model ends with
    the weights of the stage's best epoch on validation. An interrupted stage continues from its
    last finished epoch; a finished one is only restored (see kerastl.resume). `x_train`, `x_val`:
    other inputs for the split's labels (feature mode's features). A rate of "find" sweeps for
    the rate first (kerastl.lr_finder; a resumed stage reuses its recorded sweep)."""
    config, run_dir, splits, log = job.config, job.run_dir, job.splits, job.log
    stage_dir = run_dir / runs.BACKUP / stage.name
    state = resume.read_state(stage_dir)
    if state.finished:
        model.load_weights(stage_dir / state.weights)
        log(f"stage {stage.name}: already finished, weights restored")
        return StageResult(stage.name, **state.finished)
    x_train = splits.x_train if x_train is None else x_train
    x_val = splits.x_val if x_val is None else x_val
    has_val = len(splits.y_val) > 0
    epochs, lr = config[stage.epochs_key], config[stage.lr_key]
    steps_per_epoch = job.run.schedule.steps_per_epoch
    min_epochs = sizing.min_epochs(config, stage, steps_per_epoch)  # its min_steps, early stopping or not
    jit = runtime.jit_setting(config["jit_compile"], job.run.has_accelerator)
    if lr == lr_finder.FIND:
        lr = lr_finder.find_for_stage(model, stage, x_train, splits.y_train, config, run_dir,
                                      lambda rate: make_optimizer(rate, config["weight_decay"]),
                                      training_loss(config["label_smoothing"]), jit, log)
    _compile(model, learning_rate(lr, config["lr_schedule"], epochs * steps_per_epoch), config, job.run.has_accelerator)
    train = fit_inputs(x_train, splits.y_train, config["batch_size"], shuffle=True, seed=config["seed"],
                       passes=config["epoch_passes"])
    standard = standard_callbacks(stage_dir, run_dir, has_val, config["patience"], config["lr_schedule"] != "constant", min_epochs)
    standard += history.tensorboard_callbacks(run_dir, stage.name, config.get("tensorboard", False))
    timer = EpochTimer()
    resume_point = resume.ResumePoint(
        stage_dir, state, [c for c in standard if isinstance(c, tuple(resume.MEMORY))], timer
    )
    lr_text = "" if config["lr_schedule"] == "constant" else f" ({config['lr_schedule']} schedule)"
    again = f", continuing after epoch {state.epochs_done}" if state.epochs_done else ""
    log(f"stage {stage.name}: {epochs} epoch(s) at lr {lr:g}{lr_text}, {_trainable_params(model):,} trainable parameters{again}")
    earlier_seconds = sum(state.epoch_seconds)  # epochs finished before an interruption
    start = time.perf_counter()
    model.fit(
        **train,
        shuffle=False,  # the tf.data pipeline shuffles itself
        validation_data=validation_data(x_val, splits.y_val, config["batch_size"]) if has_val else None,
        epochs=epochs,
        initial_epoch=state.epochs_done,
        callbacks=[*standard, timer, resume_point, *job.callbacks],  # the resume point commits what came before it
        verbose=1 if sys.stdout.isatty() else 2,
    )
    seconds = earlier_seconds + time.perf_counter() - start
    if state.best_weights:  # keep the epoch that was best on validation (else the last, state.weights)
        model.load_weights(stage_dir / state.best_weights)
        state.weights = state.best_weights
    state.finished = {
        "epochs": len(timer.seconds), "seconds": round(seconds, 3),
        "images": len(timer.seconds) * len(x_train) * config["epoch_passes"],
        "epoch_seconds": [round(s, 3) for s in timer.seconds], "lr": float(lr),
    }
    resume.write_state(stage_dir, state)  # the stage is done: a resume restores state.weights
    return StageResult(stage.name, **state.finished)


def _trainable_params(model: keras.Model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def _train_feature_mode(job: Job, stage: Stage, head: keras.Model, backbone_features: keras.Model) -> list[StageResult]:
    """Compute the frozen backbone's features once, then train the head on them."""
    splits = job.splits
    start = time.perf_counter()
    features = {
        part: predict_in_batches(backbone_features, x, job.config["batch_size"]).astype("float32")
        for part, x in (("train", splits.x_train), ("val", splits.x_val))
        if len(x)
    }
    extraction = time.perf_counter() - start
    images = len(splits.y_train) + len(splits.y_val)
    job.log(f"feature: backbone features computed once in {extraction:.1f}s ({images} images)")
    no_val = np.zeros((0, features["train"].shape[-1]), "float32")
    result = fit_stage(job, head, stage, features["train"], features.get("val", no_val))
    return [StageResult("feature_extraction", 0, extraction, images), result]


def build_model(config: Mapping[str, Any], data: DataInfo, log: Log) -> tuple[keras.Model, TransferModel | None]:
    """(the model, and for the modes with a backbone its backbone and head)."""
    mode = config["mode"]
    augment = config["augment"] and mode != "feature"  # features are computed once: nothing to augment
    if mode in BUILDERS:
        return BUILDERS[mode](dropout=config["dropout"], augment=augment, data=data), None
    transfer = build_transfer_model(
        config["backbone"], config["img_size"], config["weights"], config["dropout"],
        backbone_inference_mode=(mode != "pretrain"), augment=augment, log=log, data=data,
    )
    return transfer.model, transfer


def train_stages(job: Job, model: keras.Model, transfer: TransferModel | None) -> list[StageResult]:
    config, log = job.config, job.log
    mode = MODES[config["mode"]]
    if mode.name in BUILDERS:
        return [fit_stage(job, model, mode.stages[0])]
    if mode.name == "pretrain":
        transfer.backbone.trainable = True
        return [fit_stage(job, model, mode.stages[0])]
    if mode.name == "feature":
        return _train_feature_mode(job, mode.stages[0], transfer.head, transfer.features)
    head, finetune = mode.stages
    results = [fit_stage(job, model, head)]
    if mode.name == "finetune":
        unfreeze(config["backbone"], transfer.backbone)
        log("stage finetune: whole backbone unfrozen (batch norm stays frozen, in inference mode)")
    else:
        names = unfreeze(config["backbone"], transfer.backbone, config["unfreeze"])
        log(f"stage finetune: unfroze the top {len(names)} blocks: {', '.join(names)}")
    results.append(fit_stage(job, model, finetune))
    return results


def train(run: PreparedRun, run_dir: Path, log: Log = print, callbacks: Sequence[keras.callbacks.Callback] = ()) -> finished_run.Run:
    """Train a prepared run and write its run folder (see kerastl.runs); returns the finished Run.

    `run_dir` exists, holds the run's config.yaml, and the caller holds its lock (`runs.lock`). If
    it holds the state of an interrupted run, finished stages and epochs are kept and training
    continues after them. `callbacks` are added to every stage's `fit`.
    """
    config, data, folder, splits = run.config, run.data, run.folder, run.splits
    history.start_clock(run_dir, run.started)  # the `seconds` column of history.csv counts from preparing
    runs.write_labels(run_dir, data.class_names)
    if folder is not None:  # record every image's split; decoded images are cached on disk per run
        folders.record_split(run_dir / runs.SPLIT_FILE, folder)
        splits = folders.cached_on_disk(splits, run_dir / runs.IMAGE_CACHE)  # removed with backup/

    # Build the model
    model, transfer = build_model(config, data, log)
    backbone = transfer.backbone if transfer else None

    # Train, stage by stage
    stages = train_stages(Job(run, run_dir, log, callbacks), model, transfer)

    # Calibrate, fit the out-of-distribution gate and choose the abstain threshold (kerastl.confidence)
    fitted = _fit_confidence(run, model, splits, log)

    # Evaluate on the whole test split
    _compile(model, _first_rate(stages), config, run.has_accelerator)
    if run.placement.processes > 1:  # each process scores its shard; Keras adds them up
        test = fit_inputs(splits.x_test, splits.y_test, config["batch_size"], shuffle=False, seed=0)
        test_loss, test_accuracy = model.evaluate(**test, verbose=0)
        probabilities = None
    else:  # one pass gives the numbers, the confusion matrix and the misclassified digits
        probabilities = (fitted.test_probabilities if fitted else
                         evaluation.predict_probabilities(model, splits.x_test, config["batch_size"]))
        test_accuracy, test_loss = evaluation.score(probabilities, splits.y_test)
    log(f"test: accuracy {test_accuracy:.4f}, loss {test_loss:.4f} on {len(splits.y_test)} images")

    # Write the run folder (kerastl.finished_run): the model, the predictions and figures, then metrics.json
    epochs = history.read_history(run_dir / runs.HISTORY)
    metrics = _metrics(run, stages, model, backbone, test_loss, test_accuracy, epochs)
    if lr_finder.read_sweeps(run_dir):
        metrics["lr_find"] = lr_finder.summaries(run_dir)
    if folder is not None and folder.skipped:
        metrics["skipped_images"] = len(folder.skipped)
    if run.health is not None:
        metrics.update(run.health.metrics())
        if probabilities is not None and run.health.leaked:
            metrics["test_accuracy_without_copies"] = accuracy_without(
                run.health.leaked, folder.root, splits.x_test.paths, splits.y_test, probabilities.argmax(axis=1))
    if fitted:
        metrics["confidence"] = fitted.metrics
        confidence_job.write_figures(run_dir, fitted, plots.run_title(config), log)
        model = fitted.model  # model.keras outputs the calibrated, gated probabilities
        _compile(model, _first_rate(stages), config, run.has_accelerator)
    metrics["wall_seconds"] = round(time.perf_counter() - run.started, 3)
    test = None if probabilities is None else (splits.y_test, probabilities)
    return finished_run.write(run_dir, config, model, metrics, epochs, test, data.class_names,
                              backbone if config["mode"] == "pretrain" else None, log)


def _fit_confidence(run: PreparedRun, model: keras.Model, splits: Splits, log: Log) -> confidence_job.Fitted | None:
    """The temperature, the out-of-distribution gate and the abstain threshold, measured on the
    test split and on pictures outside every class (kerastl.confidence.job); None without a
    validation split or in a multi-process run."""
    if run.placement.processes > 1:
        log("confidence: not fitted in a multi-process run (its processes hold only their shard of the data); nothing abstains")
        return None
    config = run.config
    sets = outside.sets_for(config["dataset"], run.data.image_shape, config.get("outside"), confidence_job.OUTSIDE_LIMIT,
                            config["data_dir"], log)
    return confidence_job.fit(model, splits, config, sets, log)


def _first_rate(stages: list[StageResult]) -> float:
    """The rate the first stage trained with: model.keras keeps an optimizer compiled with it."""
    return next((s.lr for s in stages if s.lr is not None), 1e-3)  # 1e-3: a stage restored from an older state file


def _metrics(run: PreparedRun, stages, model, backbone, test_loss, test_accuracy, epochs) -> dict[str, Any]:
    config, splits = run.config, run.splits
    train_seconds = sum(s.seconds for s in stages)
    trained = [s for s in stages if s.name != "feature_extraction"]
    trained_images = sum(s.images for s in trained)
    metrics = {
        "test_accuracy": float(test_accuracy),
        "test_loss": float(test_loss),
        "test_images": int(len(splits.y_test)),
        "train_images": int(len(splits.y_train)),
        "validation_images": int(len(splits.y_val)),
        "epochs_run": {s.name: s.epochs for s in trained},
        "epoch_seconds": {s.name: [round(t, 3) for t in s.epoch_seconds] for s in stages if s.epoch_seconds},
        "stage_seconds": {s.name: round(s.seconds, 3) for s in stages},
        "learning_rates": {s.name: s.lr for s in trained},
        "train_seconds": round(train_seconds, 3),
        "images_per_second": round(trained_images / train_seconds, 1) if train_seconds else None,
        "parameters": int(model.count_params()),
        "trainable_parameters": _trainable_params(model),  # in the last stage
        **history.milestones(epochs),  # epochs_to_95, seconds_to_95 (validation accuracy)
        "schedule": run.schedule.summary(),
        "classes": run.data.num_classes,
        "image_shape": list(run.data.image_shape),
        "distribution": run.placement.summary(),  # kind, devices, processes
        "backend": runtime.backend(),
        "device": runtime.device_description(),
        "precision": run.policy,
        "dataset": config["dataset"],
        "mode": config["mode"],
    }
    if backbone is not None:
        metrics.update(backbone=config["backbone"], weights=config["weights"], img_size=int(backbone.input_shape[1]))
        if config["weights"] in (None, "none") and config["mode"] != "pretrain":
            metrics["warning"] = "backbone started from RANDOM weights: this is not transfer learning"
    return metrics
