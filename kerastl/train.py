"""Training, read top-down: load data, build the model, train in stages, evaluate, write the run.

Stages per mode:
- mlp, cnn: one stage, the whole model.
- feature: the backbone is frozen; its features are computed once and the head trains on them.
- finetune: stage "head" trains the head on the frozen backbone; stage "finetune" unfreezes the
  backbone and continues with a ~10x lower learning rate, batch norm still in inference mode.
- partial: like finetune, but stage 2 unfreezes only the top `unfreeze` blocks.
- pretrain: a backbone trains from scratch (batch norm in training mode) on another dataset; its
  weights are saved for `--weights` in a later transfer run.

Every stage commits its state after each epoch (kerastl.resume), so `train` called again on the
folder of an interrupted run continues it.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import keras
import numpy as np

from kerastl import distribute, evaluation, history, lr_find, plots, resume, runs, runtime, schedule, xla_cpu
from kerastl.backbones import backbone_blocks, backbone_spec
from kerastl.config import TRANSFER_MODES
from kerastl.data import DataInfo, fit_inputs, folders, load_data, make_splits, predict, validation_data
from kerastl.data.splits import Splits
from kerastl.errors import first_line
from kerastl.files import atomic_path
from kerastl.losses import training_loss
from kerastl.models import BUILDERS, build_transfer_model

Log = Callable[[str], None]


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


def _optimizer(lr, weight_decay: float) -> keras.optimizers.Optimizer:
    if weight_decay:
        return keras.optimizers.AdamW(lr, weight_decay=weight_decay)
    return keras.optimizers.Adam(lr)


def _compile(model: keras.Model, lr, config: dict, has_accelerator: bool) -> None:
    model.compile(
        optimizer=_optimizer(lr, config["weight_decay"]),
        loss=training_loss(config["label_smoothing"]),
        weighted_metrics=["accuracy"],  # same as metrics=; also honours the 0-weight padding of kerastl.distribute
        jit_compile=runtime.jit_setting(config["jit_compile"], has_accelerator),
    )


def fit_stage(
    model: keras.Model, stage: str, epochs: int, lr: float, splits: Splits, config: dict, run_dir: Path,
    has_accelerator: bool, log: Log, x_train=None, x_val=None, callbacks: Sequence[keras.callbacks.Callback] = (),
) -> StageResult:
    """Compile and fit one stage with the standard callbacks, then `callbacks`; the model ends with
    the weights of the stage's best epoch on validation. An interrupted stage continues from its
    last finished epoch; a finished one is only restored (see kerastl.resume). `lr` "find" sweeps
    for the rate first (kerastl.lr_find), and `config` (and config.yaml) then holds the rate used."""
    stage_dir = run_dir / runs.BACKUP / stage
    state = resume.read_state(stage_dir)
    if state.finished:
        model.load_weights(stage_dir / state.weights)
        log(f"stage {stage}: already finished, weights restored")
        return StageResult(stage, **state.finished)
    x_train = splits.x_train if x_train is None else x_train
    passes = config.get("epoch_passes") or 1  # over the training images per epoch (tiny training sets)
    x_val = splits.x_val if x_val is None else x_val
    has_val = len(splits.y_val) > 0
    steps_per_epoch = -(-len(x_train) * passes // config["batch_size"])
    steps = epochs * steps_per_epoch
    min_epochs = schedule.min_epochs(config, stage, steps_per_epoch, epochs)  # its min_steps, early stopping or not
    if lr == lr_find.FIND:
        lr = lr_find.find_for_stage(
            model, stage, x_train, splits.y_train, config, run_dir, lambda rate: _optimizer(rate, config["weight_decay"]),
            training_loss(config["label_smoothing"]), runtime.jit_setting(config["jit_compile"], has_accelerator), log,
        )
    _compile(model, learning_rate(lr, config["lr_schedule"], steps), config, has_accelerator)
    train = fit_inputs(x_train, splits.y_train, config["batch_size"], shuffle=True, seed=config["seed"], passes=passes)
    standard = standard_callbacks(stage_dir, run_dir, has_val, config["patience"], config["lr_schedule"] != "constant", min_epochs)
    standard += history.tensorboard_callbacks(run_dir, stage, config.get("tensorboard", False))
    timer = EpochTimer()
    resume_point = resume.ResumePoint(
        stage_dir, state, [c for c in standard if isinstance(c, tuple(resume.MEMORY))], timer
    )
    lr_text = "" if config["lr_schedule"] == "constant" else f" ({config['lr_schedule']} schedule)"
    again = f", continuing after epoch {state.epochs_done}" if state.epochs_done else ""
    log(f"stage {stage}: {epochs} epoch(s) at lr {lr:g}{lr_text}, {_trainable_params(model):,} trainable parameters{again}")
    earlier_seconds = sum(state.epoch_seconds)  # epochs finished before an interruption
    start = time.perf_counter()
    model.fit(
        **train,
        shuffle=isinstance(train["x"], np.ndarray),  # a tf.data pipeline shuffles itself
        validation_data=validation_data(x_val, splits.y_val, config["batch_size"]) if has_val else None,
        epochs=epochs,
        initial_epoch=state.epochs_done,
        callbacks=[*standard, timer, resume_point, *callbacks],  # the resume point commits what came before it
        verbose=1 if sys.stdout.isatty() else 2,
    )
    seconds = earlier_seconds + time.perf_counter() - start
    if state.best_weights:  # keep the epoch that was best on validation (else the last, state.weights)
        model.load_weights(stage_dir / state.best_weights)
        state.weights = state.best_weights
    state.finished = {
        "epochs": len(timer.seconds), "seconds": round(seconds, 3), "images": len(timer.seconds) * len(x_train) * passes,
        "epoch_seconds": [round(s, 3) for s in timer.seconds],
    }
    resume.write_state(stage_dir, state)  # the stage is done: a resume restores state.weights
    return StageResult(stage, **state.finished)


def _trainable_params(model: keras.Model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def unfreeze(backbone_name: str, backbone: keras.Model, top_blocks: int | None = None) -> list[str]:
    """Make the backbone trainable, or only its top `top_blocks` blocks; returns the trained blocks.

    Batch-norm layers stay frozen, which keeps them in inference mode: in Keras 3 the outer
    model's `training=True` overrides the `training=False` recorded when the backbone was called
    (measured on all three backends with Keras 3.15), so `trainable=False` is what holds them.
    """
    blocks = backbone_blocks(backbone_spec(backbone_name), backbone)
    backbone.trainable = True
    names = [name for name, _ in blocks[-top_blocks:]] if top_blocks else [name for name, _ in blocks]
    for name, block_layers in blocks:
        for layer in block_layers:
            layer.trainable = name in names and not isinstance(layer, keras.layers.BatchNormalization)
    return names


def _train_feature_mode(model, backbone, splits, config, run_dir, has_accelerator, log, callbacks) -> list[StageResult]:
    """Compute the frozen backbone's features once, then train the head on them."""
    head_input = "head_dropout" if "head_dropout" in [layer.name for layer in model.layers] else "classifier"
    extractor = keras.Model(model.input, model.get_layer(head_input).input)  # the backbone's features
    start = time.perf_counter()
    features = {
        part: predict(extractor, x, config["batch_size"]).astype("float32")
        for part, x in (("train", splits.x_train), ("val", splits.x_val))
        if len(x)
    }
    extraction = time.perf_counter() - start
    log(f"feature: backbone features computed once in {extraction:.1f}s ({len(splits.y_train) + len(splits.y_val)} images)")
    inputs = keras.Input((features["train"].shape[-1],), name="features")
    x = inputs
    for name in ("head_dropout", "classifier", "probabilities"):
        if name in [layer.name for layer in model.layers]:
            x = model.get_layer(name)(x)
    head = keras.Model(inputs, x, name="head")
    result = fit_stage(
        head, "head", config["epochs"], config["lr"], splits, config, run_dir, has_accelerator, log,
        x_train=features["train"], x_val=features.get("val", np.zeros((0, features["train"].shape[-1]), "float32")),
        callbacks=callbacks,
    )
    return [StageResult("feature_extraction", 0, extraction, len(splits.y_train) + len(splits.y_val)), result]


def build_model(config: dict, data: DataInfo, log: Log) -> tuple[keras.Model, keras.Model | None]:
    mode = config["mode"]
    augment = config["augment"] and mode != "feature"  # features are computed once: nothing to augment
    if mode in BUILDERS:
        return BUILDERS[mode](augment=augment, data=data), None
    return build_transfer_model(
        config["backbone"], config["img_size"], config["weights"], config["dropout"],
        backbone_inference_mode=(mode != "pretrain"), augment=augment, log=log, data=data,
    )


def train_stages(model, backbone, splits, config, run_dir, has_accelerator, log, callbacks=()) -> list[StageResult]:
    mode = config["mode"]

    def stage(name: str, epochs: int, lr: float) -> StageResult:
        return fit_stage(model, name, epochs, lr, splits, config, run_dir, has_accelerator, log, callbacks=callbacks)

    if mode in BUILDERS:
        return [stage("train", config["epochs"], config["lr"])]
    if mode == "pretrain":
        backbone.trainable = True
        return [stage("pretrain", config["epochs"], config["lr"])]
    if mode == "feature":
        return _train_feature_mode(model, backbone, splits, config, run_dir, has_accelerator, log, callbacks)
    results = [stage("head", config["head_epochs"], config["lr"])]
    if mode == "finetune":
        unfreeze(config["backbone"], backbone)
        log("stage finetune: whole backbone unfrozen (batch norm stays frozen, in inference mode)")
    else:
        names = unfreeze(config["backbone"], backbone, config["unfreeze"])
        log(f"stage finetune: unfroze the top {len(names)} blocks: {', '.join(names)}")
    results.append(stage("finetune", config["epochs"], config["finetune_lr"]))
    return results


def train(
    config: dict[str, Any], run_dir: Path, has_accelerator: bool, log: Log = print,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> runs.Run:
    """Run one configured job and write its run folder (see kerastl.runs); returns the finished Run.

    `run_dir` exists and the caller holds its lock (`runs.lock`). If it holds the state of an
    interrupted run, finished stages and epochs are kept and training continues after them.
    `callbacks` are added to every stage's `fit`.
    """
    wall_start = time.perf_counter()
    runs.write_config(run_dir, config)  # first: an interrupted run is resumed with it
    history.start_clock(run_dir)  # the `seconds` column of history.csv counts from here
    keras.utils.set_random_seed(config["seed"])
    policy = runtime.apply_precision(config["precision"], has_accelerator)
    xla_cpu.use_fast_convolutions()  # JAX on a CPU: depthwise and 1x1 convolutions that XLA:CPU runs slowly

    # Prepare the data
    arrays, data, folder = load_data(config, log)
    runs.write_labels(run_dir, data.class_names)
    splits = make_splits(arrays, config["validation_fraction"], config["limit"], config["test_limit"], config["seed"],
                         per_class=config.get("per_class"))
    if folder is not None:  # record every image's split; decoded images are cached on disk per run
        folders.record_split(run_dir / folders.SPLIT_FILE, folder)
        splits = _cached_on_disk(splits, run_dir)
    log(f"data: splits {splits.sizes()} (seed {config['seed']})")

    # Size the schedule to the training set (kerastl.schedule); the config records the result
    config, sized = schedule.size_to_data(config, len(splits.y_train), has_accelerator)
    runs.write_config(run_dir, config)
    log(schedule.describe(sized, config, has_accelerator))
    if folder is not None and config["mode"] in TRANSFER_MODES and not config.get("image_size"):
        if data.image_shape[0] != config["img_size"]:
            log(f"data: images decoded at {config['img_size']}x{config['img_size']}, the input size of this schedule")
            splits, data = folders.stored_at(splits, data, config["img_size"])
    distribute.fit_batch_to(config, len(splits.y_train), log)

    # Build the model
    model, backbone = build_model(config, data, log)

    # Train, stage by stage
    stages = train_stages(model, backbone, splits, config, run_dir, has_accelerator, log, callbacks)

    # Evaluate on the whole test split
    _compile(model, config["lr"], config, has_accelerator)
    if distribute.active().processes > 1:  # each process scores its shard; Keras adds them up
        test = fit_inputs(splits.x_test, splits.y_test, config["batch_size"], shuffle=False, seed=0)
        test_loss, test_accuracy = model.evaluate(**test, verbose=0)
        probabilities = None
    else:  # one pass gives the numbers, the confusion matrix and the misclassified digits
        probabilities = evaluation.predict(model, splits.x_test, config["batch_size"])
        test_accuracy, test_loss = evaluation.score(probabilities, splits.y_test)
    log(f"test: accuracy {test_accuracy:.4f}, loss {test_loss:.4f} on {len(splits.y_test)} images")

    # Write the run: the model, then the metrics (which mark it finished); drop the resume state.
    # model.keras is saved compiled with Keras' own loss, so plain `keras.saving.load_model` opens it
    # without kerastl (the label-smoothed training loss is kerastl's class).
    model.compile(optimizer=_optimizer(config["lr"], config["weight_decay"]), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.optimizer.build(model.trainable_variables)  # its (zero) slots saved, so loading it warns of no mismatch
    with atomic_path(run_dir / runs.MODEL, suffix=".keras") as tmp:
        model.save(tmp)
    if config["mode"] == "pretrain":
        with atomic_path(run_dir / runs.BACKBONE_WEIGHTS, suffix=".weights.h5") as tmp:
            backbone.save_weights(tmp)
        log(f"pretrain: backbone weights saved; transfer them with --weights {run_dir / runs.BACKBONE_WEIGHTS}")
    epochs = history.read_history(run_dir / runs.HISTORY)
    if probabilities is None:
        log("figures: not drawn in a multi-process run (its processes hold only their shard of the test set)")
    else:
        evaluation.save_predictions(run_dir, splits.y_test, probabilities)
        try:  # a figure that fails to draw must not cost the trained run
            plots.write_run_figures(run_dir, epochs, splits.y_test, probabilities.argmax(axis=1), config, data.class_names)
        except Exception as exc:
            log(f"figures: not drawn ({first_line(exc)})")
    metrics = _metrics(config, splits, stages, model, backbone, test_loss, test_accuracy, policy, epochs)
    metrics["schedule"] = sized.summary()
    if lr_find.read_sweeps(run_dir):
        metrics["lr_find"] = lr_find.summaries(run_dir)
    metrics.update(classes=data.num_classes, image_shape=list(data.image_shape))
    if folder is not None and folder.skipped:
        metrics["skipped_images"] = len(folder.skipped)
    metrics["wall_seconds"] = round(time.perf_counter() - wall_start, 3)
    runs.write_metrics(run_dir, metrics)
    runs.remove_scaffolding(run_dir)
    return runs.Run(run_dir, config, metrics, runs.read_history(run_dir), model)


def _cached_on_disk(splits: Splits, run_dir: Path) -> Splits:
    """The training and validation images of a folder, cached by tf.data in the run's backup/
    (removed when the run finishes; rebuilt when an interrupted run resumes)."""
    import shutil

    cache = run_dir / runs.BACKUP / "image-cache"
    shutil.rmtree(cache, ignore_errors=True)  # a cache an interrupted run left may be incomplete
    cache.mkdir(parents=True)
    splits.x_train = splits.x_train.cached_at(cache / "train")
    if len(splits.y_val):
        splits.x_val = splits.x_val.cached_at(cache / "val")
    return splits


def _metrics(config, splits, stages, model, backbone, test_loss, test_accuracy, policy, epochs) -> dict[str, Any]:
    train_seconds = sum(s.seconds for s in stages)
    trained_images = sum(s.images for s in stages if s.name != "feature_extraction")
    metrics = {
        "test_accuracy": float(test_accuracy),
        "test_loss": float(test_loss),
        "test_images": int(len(splits.y_test)),
        "train_images": int(len(splits.y_train)),
        "validation_images": int(len(splits.y_val)),
        "epochs_run": {s.name: s.epochs for s in stages if s.name != "feature_extraction"},
        "epoch_seconds": {s.name: [round(t, 3) for t in s.epoch_seconds] for s in stages if s.epoch_seconds},
        "stage_seconds": {s.name: round(s.seconds, 3) for s in stages},
        "train_seconds": round(train_seconds, 3),
        "images_per_second": round(trained_images / train_seconds, 1) if train_seconds else None,
        "parameters": int(model.count_params()),
        "trainable_parameters": _trainable_params(model),  # in the last stage
        **history.milestones(epochs),  # epochs_to_95, seconds_to_95 (validation accuracy)
        "distribution": distribute.active().summary(),  # kind, devices, processes
        "backend": runtime.backend(),
        "device": runtime.device_description(),
        "precision": policy,
        "dataset": config["dataset"],
        "mode": config["mode"],
    }
    if backbone is not None:
        metrics.update(backbone=config["backbone"], weights=config["weights"], img_size=int(backbone.input_shape[1]))
        if config["weights"] in (None, "none") and config["mode"] != "pretrain":
            metrics["warning"] = "backbone started from RANDOM weights: this is not transfer learning"
    return metrics
