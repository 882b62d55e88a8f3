"""Training a teach session: the frozen pretrained backbone with a new head, and beside it the CNN
from scratch, on the same pictures, each scored on pictures it did not train on.

- Transfer: the backbone's pooled features are computed once per picture (kerastl's `feature`
  mode, its small-data input size) and cached by the picture's file name, a hash of its bytes, in
  OUTPUT/cache/; retraining after adding pictures computes only the new ones. The head (a Dense
  layer and softmax, as `build_transfer_model` makes it) is fitted on the features as a multinomial
  logistic regression: the same function, to convergence, in milliseconds.
- From scratch: kerastl's CNN (`build_cnn`), its pixels standardised with the training pictures'
  statistics, at SCRATCH_SIZE px: half a folder's default stored side (64 px), a quarter of the
  pixels. On 30 pictures the CNN learns no less from 32 px (new pictures, benchmarks/teach.py's
  classes, 3 draws: 63.4 % at 32 px, 62.2 % at 48 px, 58.9 % at 64 px) and each fit takes half the
  time, which brings its five fits under a minute.
- The CNN takes its schedule from kerastl's config sized to the data (kerastl.sizing: batch,
  passes, epochs, learning rate and its schedule, label smoothing), as `fit --dataset` would.
- Scoring: with fewer than CROSS_VALIDATE_BELOW pictures in the smallest class, stratified k-fold
  cross-validation (every picture scored once, by a model that did not see it); else a seeded,
  stratified HELD_OUT_SHARE. Then each model trains once more on every picture: that one answers
  /api/predict and is exported.
- Fine-tune (asked for after a training): the transfer model with its backbone unfrozen, from the
  head fitted on the frozen features, on the `finetune` config's stage "finetune" sized to the
  pictures with FINETUNE_MIN_STEPS. Each fit costs as much as a whole frozen training, so it is
  scored on the first part of the same splits only (one fold, or the held-out share), beside the
  frozen model's answers to the same pictures, then trains once more on every picture.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from kerastl import sizing
from kerastl.backbones import unfreeze
from kerastl.config import resolve_run_config
from kerastl.data.datasets import DataInfo
from kerastl.data.folders import decode_image, load_images
from kerastl.files import atomic_path
from kerastl.modes import BACKBONE_MODES
from kerastl.teach.session import Picture, SessionError

TRANSFER, SCRATCH, FINETUNED = "transfer", "scratch", "finetuned"  # the models, as the API names them
CROSS_VALIDATE_BELOW = 20  # pictures in the smallest class
FOLDS = 4
HELD_OUT_SHARE = 0.2
MIN_PER_CLASS = 2  # one to train on, one to score
FINETUNE_MIN_STEPS = 150  # the fine-tune's steps at least: the finetune config's 5 CPU epochs of 30 steps
# (kerastl's small-data epochs); its default of 300 would double a step that already costs 0.23 s a step
SCRATCH_SIZE = 32  # px: the CNN from scratch's input side (see above)
SEED = 0
CACHE = "cache"
Progress = Callable[[float, str], None]  # (fraction of this model's work done, what it is doing)


def check_trainable(names: list[str], pictures: list[Picture]) -> None:
    """SessionError unless there are two classes with at least MIN_PER_CLASS pictures each."""
    if len(names) < 2:
        raise SessionError(f"add at least 2 classes to train (there {'is' if len(names) == 1 else 'are'} {len(names)})")
    counts = np.bincount([p.label for p in pictures], minlength=len(names))
    short = [f"{name!r} has {n}" for name, n in zip(names, counts) if n < MIN_PER_CLASS]
    if short:
        raise SessionError(f"every class needs at least {MIN_PER_CLASS} pictures to train and score: {', '.join(short)}")


def sized_config(mode: str, dataset: Path, train_images: int, options: dict[str, Any]) -> dict[str, Any]:
    """kerastl's config of `mode` for this many training pictures, as `fit --dataset` would size it
    (`options`: kerastl.run keywords; None: not given)."""
    options = {"dataset": str(dataset), **{k: v for k, v in options.items() if v is not None}}
    if mode not in BACKBONE_MODES:
        options.pop("backbone", None)
    config = resolve_run_config(mode, None, options, accelerator=False, origin="kerastl.teach")
    return sizing.size_to_data(config, train_images, has_accelerator=False)


@dataclass
class Score:
    """How a model did on pictures it did not train on."""

    accuracy: float
    held_out: int  # pictures scored
    scored_by: str
    confusion: list[list[int]]  # [true class][predicted class]
    probabilities: np.ndarray = field(repr=False)  # [pictures, classes]: each picture's scored answer
    labels: np.ndarray = field(repr=False)
    scored: np.ndarray = field(repr=False)  # indices of the scored pictures
    parts: int = 1  # models trained to score (k folds, or 1)
    seconds: float = 0.0
    epochs: int = 0

    @property
    def share_of_work(self) -> float:
        """The part of a model's training spent scoring: `parts` fits, then one final fit."""
        return self.parts / (self.parts + 1)

    def summary(self, title: str) -> dict[str, Any]:
        return {"title": title, "accuracy": self.accuracy, "held_out": self.held_out, "scored_by": self.scored_by,
                "confusion": self.confusion, "seconds": round(self.seconds, 2), "epochs": self.epochs}


def splits(labels: np.ndarray, seed: int = SEED) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    """[(train indices, scored indices), ...] and how: k-fold for few pictures, else one held-out share."""
    from sklearn.model_selection import StratifiedKFold, train_test_split

    smallest = int(np.bincount(labels).min())
    index = np.arange(len(labels))
    if smallest < CROSS_VALIDATE_BELOW:
        k = min(FOLDS, smallest)
        folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(index, labels)
        return [(train, scored) for train, scored in folds], f"{k}-fold cross-validation"
    train, scored = train_test_split(index, test_size=HELD_OUT_SHARE, stratify=labels, random_state=seed)
    return [(np.sort(train), np.sort(scored))], f"{round(100 * HELD_OUT_SHARE)} % held out"


def score(fit_and_predict, labels: np.ndarray, classes: int, progress: Progress, first: int | None = None) -> Score:
    """Score `fit_and_predict(train indices, scored indices, progress) -> probabilities` on `splits`
    (`first`: on its first parts only, e.g. 1: one fold of the k)."""
    started = time.perf_counter()
    parts, how = splits(labels)
    if first is not None and first < len(parts):
        how = f"fold {'1' if first == 1 else f'1 to {first}'} of {how}"
        parts = parts[:first]
    probabilities = np.zeros((len(labels), classes), "float32")
    scored = np.concatenate([s for _, s in parts])
    for i, (train, held) in enumerate(parts):
        share = lambda f, i=i: progress((i + f) / (len(parts) + 1), f"{how}: {i + 1} of {len(parts)}")  # noqa: E731
        probabilities[held] = fit_and_predict(train, held, share)
    predicted = probabilities[scored].argmax(1)
    confusion = np.zeros((classes, classes), int)
    np.add.at(confusion, (labels[scored], predicted), 1)
    return Score(float((predicted == labels[scored]).mean()), len(scored), how, confusion.tolist(),
                 probabilities[scored], labels[scored], scored, len(parts), time.perf_counter() - started)


class StepProgress:
    """A Keras callback that reports the share of `total_steps` done."""

    def __new__(cls, total_steps: int, report: Callable[[float], None]):
        import keras

        class Callback(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.done = 0

            def on_train_batch_end(self, batch, logs=None):
                self.done += 1
                report(min(1.0, self.done / max(1, total_steps)))

        return Callback()


# Transfer: the frozen backbone's features, cached; a new head


class FeatureExtractor:
    """The frozen backbone up to its pooling, and the features of every picture it has seen."""

    def __init__(self, backbone: str, size: int, cache_dir: Path):
        from kerastl.models import build_transfer_model

        self.backbone, self.size = backbone, size
        self.info = DataInfo("teach", ("a", "b"), (size, size, 3))
        self.transfer = build_transfer_model(backbone, size, "imagenet", data=self.info, log=lambda _: None)
        self.features_model = self.transfer.features
        self.cache_file = cache_dir / f"features-{backbone}-{size}.npz"
        self.cache: dict[str, np.ndarray] = {}
        if self.cache_file.is_file():
            try:
                with np.load(self.cache_file) as stored:
                    self.cache = {name: stored[name] for name in stored.files}
            except (OSError, ValueError):
                self.cache = {}  # a damaged cache is computed again

    def of_files(self, paths: list[Path], progress: Callable[[float], None], batch: int = 16) -> tuple[np.ndarray, int]:
        """(features [n, d], how many were computed now): only pictures not in the cache are computed."""
        missing = [p for p in paths if p.name not in self.cache]
        for start in range(0, len(missing), batch):
            chunk = missing[start:start + batch]
            pixels = load_images([str(p) for p in chunk], (self.size, self.size), 3)
            for path, row in zip(chunk, self.of_pixels(pixels)):
                self.cache[path.name] = row
            progress(min(1.0, (start + len(chunk)) / len(missing)))
        if missing:
            with atomic_path(self.cache_file, suffix=".npz") as tmp:
                np.savez(tmp, **self.cache)
        return np.stack([self.cache[p.name] for p in paths]), len(missing)

    def of_pixels(self, pixels: np.ndarray) -> np.ndarray:
        return np.asarray(self.features_model.predict_on_batch(pixels.astype("float32")))


def decode(path: Path, size: int) -> np.ndarray:
    """One picture as uint8 pixels [1, size, size, 3], decoded as `fit` decodes a folder's pictures
    (kerastl.data.folders.decode_image), eagerly: a tf.data pipeline for one picture costs more."""
    import tensorflow as tf  # TensorFlow's decoders, loaded with the first picture

    return decode_image(tf.constant(str(path)), (size, size), 3).numpy()[None]


def build_head(features: int, classes: int, dropout: float):
    """The new head as `build_transfer_model` makes it (same layer names), on the backbone's features."""
    import keras
    from keras import layers

    inputs = keras.Input((features,), name="features")
    x = layers.Dropout(dropout, name="head_dropout")(inputs) if dropout else inputs
    x = layers.Dense(classes, name="classifier")(x)
    return keras.Model(inputs, layers.Activation("softmax", dtype="float32", name="probabilities")(x), name="head")


def fit_head(features: np.ndarray, labels: np.ndarray, seed: int = SEED):
    """The head fitted on the features: a multinomial logistic regression (L2, scikit-learn's default
    strength), which is what Dense + softmax computes, to convergence in milliseconds (a Keras fit
    per fold costs seconds of tracing alone). `head_model` puts it into the Keras head."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=2000, random_state=seed).fit(features, labels)


def head_model(regression, classes: int, dropout: float):
    """`build_head` with the regression's weights in its Dense layer."""
    kernel, bias = regression.coef_.T, regression.intercept_
    if kernel.shape[1] == 1:  # two classes: one logit z; softmax([-z/2, z/2]) is sigmoid(z)
        kernel, bias = np.concatenate([-kernel / 2, kernel / 2], 1), np.array([-bias[0] / 2, bias[0] / 2])
    head = build_head(kernel.shape[0], classes, dropout)
    head.get_layer("classifier").set_weights([kernel.astype("float32"), bias.astype("float32")])
    return head


# From scratch: kerastl's CNN


def scratch_data(name: str, labels: list[str], pixels: np.ndarray) -> DataInfo:
    """The CNN's DataInfo: its input shape and the pixel statistics of the pictures."""
    values = pixels.reshape(-1, pixels.shape[-1]).astype("float64") / 255.0
    return DataInfo(name, tuple(labels), tuple(pixels.shape[1:]), tuple(float(v) for v in values.mean(0)),
                    tuple(float(max(v, 1e-3)) for v in values.std(0)))


class RepeatedFits:
    """A Keras model built and compiled once for one training, trained again from the same initial
    weights for each fold and for the final fit: Keras traces its training step once, not once a fit.

    Every fit makes the same number of steps (an epoch is `epoch_passes` times all the pictures,
    the fold's training pictures repeated to that length), so the learning-rate schedule compiled
    in fits them all. `epochs` and `lr` are the config's for the stage that trains.
    """

    def __init__(self, model, pixels: np.ndarray, targets: np.ndarray, config, epochs: int, optimizer):
        from kerastl.losses import training_loss
        from kerastl.runtime import jit_setting

        self.model, self.pixels, self.targets, self.config, self.epochs = model, pixels.astype("float32"), targets, config, epochs
        self.initial = model.get_weights()
        self.batch = min(config["batch_size"], len(targets))
        self.samples = config["epoch_passes"] * len(targets)  # an epoch of every fit
        self.steps = math.ceil(self.samples / self.batch) * epochs
        model.compile(optimizer=optimizer(self.steps), loss=training_loss(config["label_smoothing"]),
                      jit_compile=jit_setting(config["jit_compile"], False))

    def fit(self, train: np.ndarray, progress: Callable[[float], None], start: Callable[[Any], None] | None = None):
        """The model trained from its initial weights on the pictures `train` (indices); returns it.
        `start(model)` changes the initial weights first (the fine-tune's head)."""
        self.model.set_weights(self.initial)
        if start is not None:
            start(self.model)
        for variable in self.model.optimizer.variables:  # Adam's moments and step count; the rate stays
            if variable.name != "learning_rate":
                variable.assign(np.zeros(variable.shape, variable.dtype))
        order = np.resize(np.random.default_rng(self.config["seed"]).permutation(train), self.samples)
        self.model.fit(self.pixels[order], self.targets[order], batch_size=self.batch, epochs=self.epochs,
                       shuffle=True, verbose=0, callbacks=[StepProgress(self.steps, progress)])
        return self.model

    def predict(self, index: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_on_batch(self.pixels[index]))


class ScratchCNN(RepeatedFits):
    """kerastl's CNN on the pictures, on the `cnn` config's schedule. The pixel statistics the model
    standardises with are those of all the pictures (no labels involved)."""

    def __init__(self, pixels: np.ndarray, targets: np.ndarray, data: DataInfo, config):
        import keras

        from kerastl.models import build_cnn
        from kerastl.train import learning_rate

        keras.utils.set_random_seed(config["seed"])
        model = build_cnn(dropout=config["dropout"], augment=config["augment"], data=data)
        optimizer = lambda steps: keras.optimizers.Adam(learning_rate(config["lr"], config["lr_schedule"], steps))  # noqa: E731
        super().__init__(model, pixels, targets, config, config["epochs"], optimizer)


# Fine-tune: the transfer model with its backbone unfrozen


class FineTuner(RepeatedFits):
    """kerastl's `finetune` model (build_transfer_model, then kerastl.backbones.unfreeze: the whole
    backbone trains, batch norm stays frozen in inference mode) on the pictures at the transfer
    model's size, on the stage "finetune" of the `finetune` config sized to the pictures: its rate
    (`finetune_lr`), schedule, weight decay and label smoothing. Its stage "head" is not trained:
    each fit starts from the head teach fitted on the frozen features (`start`)."""

    def __init__(self, backbone: str, pixels: np.ndarray, targets: np.ndarray, labels: list[str], config):
        import keras

        from kerastl.models import build_transfer_model
        from kerastl.train import learning_rate, make_optimizer

        keras.utils.set_random_seed(config["seed"])
        side = pixels.shape[1]
        data = DataInfo("teach", tuple(labels), (side, side, 3))
        transfer = build_transfer_model(backbone, side, config["weights"], dropout=config["dropout"], data=data, log=lambda _: None)
        unfreeze(backbone, transfer.backbone)
        self.title = f"{transfer.backbone.name}, ImageNet weights, fine-tuned (batch norm frozen), at {side} px"
        rate = lambda steps: make_optimizer(learning_rate(config["finetune_lr"], config["lr_schedule"], steps), config["weight_decay"])  # noqa: E731
        super().__init__(transfer.model, pixels, targets, config, config["epochs"], rate)

    def features(self) -> np.ndarray:
        """The detector's features of every picture (kerastl.confidence.features) in the model as it is now."""
        from kerastl.confidence.features import features_and_logits

        return features_and_logits(self.model, self.pixels, self.batch)[0]

    def fit_from(self, head, train: np.ndarray, progress: Callable[[float], None]):
        """Fine-tuned on the pictures `train`, from the frozen backbone and `head` (teach's Keras head)."""
        weights = head.get_layer("classifier").get_weights()
        return self.fit(train, progress, lambda model: model.get_layer("classifier").set_weights(weights))
