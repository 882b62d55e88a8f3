"""What the teach server does, apart from HTTP: one training at a time in a thread of its own, its
state and progress for the page, the trained models answering pictures, and the export.

`Teacher.start` snapshots the session (the class names and pictures of that moment; pictures added
while it trains wait for the next training) and trains the transfer model first, then the CNN;
each is published as soon as it is scored, so the page shows the transfer result while the CNN
still trains. `Teacher.finetune` then fine-tunes the last training's transfer model, its backbone
unfrozen, in the same thread slot (one training at a time), on the same pictures. The models that
answer /api/predict are swapped in whole when a training ends, so a picture is always answered by
one consistent set.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from kerastl.confidence import threshold
from kerastl.confidence.model import gated_model
from kerastl.data.folders import load_images
from kerastl.errors import first_line
from kerastl.log import Log
from kerastl.prediction import top_classes
from kerastl.teach import gate, training
from kerastl.teach.session import Session, SessionError
from kerastl.web import pictures

TOP_K = 3
TRANSFER, SCRATCH, FINETUNED = training.TRANSFER, training.SCRATCH, training.FINETUNED
SHARE = {TRANSFER: (0.0, 0.3), SCRATCH: (0.3, 1.0), FINETUNED: (0.0, 1.0)}  # each model's part of its progress bar


class Busy(SessionError):
    """Refused because a training (or an export) is running: HTTP 409."""


class NotReady(SessionError):
    """Refused because nothing is trained yet: HTTP 409."""


@dataclass
class Trained:
    """One training's models and what they were trained and scored on."""

    labels: list[str]
    paths: list  # the pictures, in training order
    targets: np.ndarray
    scores: dict[str, training.Score] = field(default_factory=dict)
    configs: dict[str, Any] = field(default_factory=dict)
    models: dict[str, Any] = field(default_factory=dict)  # transfer: the head, gated; scratch: the CNN
    gates: dict[str, gate.FittedGate] = field(default_factory=dict)  # the models that can say "not sure" (transfer)
    titles: dict[str, str] = field(default_factory=dict)
    seconds_from_start: dict[str, float] = field(default_factory=dict)
    features_computed: int = 0  # pictures whose backbone features this training computed (the rest were cached)
    frozen_on_finetune_scored: float | None = None  # the frozen model's accuracy on the pictures the fine-tune was scored on

    def without(self, name: str) -> "Trained":
        """A copy without model `name` (its score, config, model, title): what a fine-tune starts from."""
        dropped = lambda d: {k: v for k, v in d.items() if k != name}  # noqa: E731
        return replace(self, scores=dropped(self.scores), configs=dropped(self.configs), models=dropped(self.models),
                       gates=dropped(self.gates), titles=dropped(self.titles), seconds_from_start=dropped(self.seconds_from_start),
                       frozen_on_finetune_scored=None)


class Teacher:
    def __init__(self, session: Session, backbone: str = "efficientnet_lite0", log: Log = print,
                 min_steps: int | None = None, quantize: tuple[str, ...] | None = None):
        """`min_steps`: kerastl's small-data option (None: its default; 0: the configs' epochs as
        written, for quick tests); `quantize`: the LiteRT variants the export writes (None: all)."""
        self.session, self.backbone, self.log = session, backbone, log
        self.options = {"backbone": backbone, "min_steps": min_steps}
        self.quantize = quantize
        self.transfer_size = self.config("feature", 1)["img_size"]
        self._state_lock = threading.RLock()
        self._model_lock = threading.Lock()  # one picture through the models at a time
        self._extractor: training.FeatureExtractor | None = None
        self._extractor_ready = threading.Lock()
        self._thread: threading.Thread | None = None
        self._warming: threading.Thread | None = None
        self._stop = threading.Event()
        self.state, self.error = "idle", None
        self.progress = {"fraction": 0.0, "step": ""}
        self.training: Trained | None = None  # the one being trained (results appear as they are scored)
        self.trained: Trained | None = None  # the last finished one: answers pictures, is exported
        self.exporting = False

    def config(self, mode: str, train_images: int) -> dict[str, Any]:
        return training.sized_config(mode, self.session.root, train_images, self.options)

    def finetune_config(self, train_images: int) -> dict[str, Any]:
        """The `finetune` config sized to the pictures with FINETUNE_MIN_STEPS (unless `min_steps`
        was given), at the transfer model's input size."""
        steps = self.options["min_steps"]
        options = {**self.options, "min_steps": training.FINETUNE_MIN_STEPS if steps is None else steps}
        config = training.sized_config("finetune", self.session.root, train_images, options)
        config["img_size"] = self.transfer_size
        return config

    # The backbone, built once

    def extractor(self) -> training.FeatureExtractor:
        with self._extractor_ready:
            if self._extractor is None:
                self._extractor = training.FeatureExtractor(self.backbone, self.transfer_size,
                                                            self.session.output_dir / training.CACHE)
            return self._extractor

    def warm_up(self) -> threading.Thread:
        """Build the backbone in the background, so the first Train does not wait for it."""
        thread = threading.Thread(target=self.extractor, name="kerastl-teach-warm-up", daemon=True)
        thread.start()
        self._warming = thread
        return thread

    # Training

    def start(self) -> dict:
        """Start a training in its own thread; Busy if one (or an export) runs, SessionError if the
        pictures cannot train two models (fewer than 2 classes, a class with too few pictures)."""
        with self._state_lock:
            self._check_idle()
            names, snapshot = self.session.snapshot()
            training.check_trainable(names, snapshot)
            job = Trained(names, [p.path for p in snapshot], np.array([p.label for p in snapshot], "int64"))
            return self._launch(job, self._train)

    def finetune(self) -> dict:
        """Start fine-tuning the last training's transfer model (its backbone unfrozen) in its own
        thread, on that training's pictures; Busy while a training or an export runs, NotReady
        before a training is done. Its result joins that training's; a stopped or failed
        fine-tune leaves the last finished models as they were."""
        with self._state_lock:
            self._check_idle()
            if self.trained is None:
                raise NotReady("nothing is trained yet: press Train first")
            gone = sum(not path.is_file() for path in self.trained.paths)
            if gone:
                raise NotReady(f"{gone} picture{'s' if gone > 1 else ''} of the last training {'were' if gone > 1 else 'was'} "
                               "removed or renamed since: press Train first")
            return self._launch(self.trained.without(FINETUNED), self._finetune)

    @contextmanager
    def idle(self):
        """Hold Train and Export off while the pictures a training reads change (a rename or a
        removal); Busy while one runs: its pictures must stay where its snapshot found them."""
        with self._state_lock:
            self._check_idle()
            yield

    def _check_idle(self) -> None:
        if self.state == "running" or self.exporting:
            raise Busy("a training is running; wait for it to finish" if self.state == "running"
                       else "an export is running; wait for it to finish")

    def _launch(self, job: Trained, work) -> dict:
        """Run `work(job, started)` in the training thread (the state lock held)."""
        self.training = job
        self.state, self.error = "running", None
        self.progress = {"fraction": 0.0, "step": "starting"}
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(job, work), name="kerastl-teach-training", daemon=True)
        self._thread.start()
        return self.status()

    def stop(self, wait: float = 30.0) -> dict:
        """Ask a running training to stop after its current step (the page's Stop, Ctrl-C), wait up
        to `wait` seconds for it (and for the backbone's warm-up: a process that exits while
        TensorFlow builds it in another thread aborts), and return the status. The last finished
        models stay."""
        self._stop.set()
        for thread in (self._thread, self._warming):
            if thread is not None:
                thread.join(wait)
        return self.status()

    def status(self) -> dict:
        with self._state_lock:
            shown = self.training or self.trained
            results = {}
            if shown is not None:
                results = {name: {**score.summary(shown.titles[name]), "seconds_from_train": round(shown.seconds_from_start[name], 2)}
                           for name, score in shown.scores.items()}
                if TRANSFER in results:
                    results[TRANSFER]["features_computed"] = shown.features_computed
                for name, fitted in shown.gates.items():
                    if name in results:
                        results[name]["threshold"] = fitted.threshold
                if FINETUNED in results:
                    results[FINETUNED]["frozen_accuracy"] = shown.frozen_on_finetune_scored
            return {"state": self.state, "progress": dict(self.progress), "results": results, "error": self.error,
                    "labels": list(shown.labels) if shown else [], "pictures": len(shown.paths) if shown else 0,
                    "trained": self.trained is not None, "folder": str(self.session.root)}

    def _report(self, model: str, fraction: float, step: str) -> None:
        if self._stop.is_set():
            raise KeyboardInterrupt
        low, high = SHARE[model]
        with self._state_lock:
            self.progress = {"fraction": round(low + (high - low) * fraction, 4), "step": step}

    def _run(self, job: Trained, work) -> None:
        started = time.perf_counter()
        try:
            work(job, started)
        except KeyboardInterrupt:
            self._finish(job, "failed", "stopped before it finished")
        except Exception as exc:  # the page shows it; the server and the last models stay
            self._finish(job, "failed", first_line(exc) if not isinstance(exc, SessionError) else str(exc))
        else:
            self._finish(job, "done", None)

    def _finish(self, job: Trained, state: str, error: str | None) -> None:
        with self._state_lock:
            if state == "done":
                self.trained = job
            self.training = None if state == "done" else job
            self.state, self.error = state, error
            self.progress = {"fraction": 1.0 if state == "done" else self.progress["fraction"], "step": state}

    def _publish(self, job: Trained, name: str, title: str, score: training.Score, model, config, started: float) -> None:
        with self._state_lock:
            job.scores[name], job.models[name], job.configs[name], job.titles[name] = score, model, config, title
            job.seconds_from_start[name] = time.perf_counter() - started
        self.log(f"{name}: {100 * score.accuracy:.1f} % on {score.held_out} pictures it did not train on ({score.scored_by}), "
                 f"{job.seconds_from_start[name]:.1f} s from Train")

    def _train(self, job: Trained, started: float) -> None:
        self._train_transfer(job, started)
        self._train_scratch(job, started)

    def _train_transfer(self, job: Trained, started: float) -> None:
        self._report(TRANSFER, 0.0, "transfer: loading the pretrained backbone")
        extractor = self.extractor()
        report = lambda f, step: self._report(TRANSFER, f, f"transfer: {step}")  # noqa: E731
        with self._model_lock:
            features, computed = extractor.of_files(job.paths, lambda f: report(0.3 * f, "features of new pictures"))
        job.features_computed = computed
        config = self.config("feature", len(job.paths))
        classes = len(job.labels)

        distances = np.zeros(len(job.targets))  # each picture's, to a detector that did not see it (kerastl.teach.gate)

        def fit_and_predict(train, held, progress):
            distances[held] = gate.held_out_distances(features, job.targets, classes, train, held)
            return training.fit_head(features[train], job.targets[train], config["seed"]).predict_proba(features[held])

        score = training.score(fit_and_predict, job.targets, classes, lambda f, step: report(0.3 + 0.7 * f, step))
        report(0.3 + 0.7 * score.share_of_work, "the final head, on every picture; when to say not sure")
        fitted = gate.fit(features, job.targets, classes, score, distances[score.scored],
                          threshold.keep_of(config))
        trained_head = training.head_model(training.fit_head(features, job.targets, config["seed"]), classes, config["dropout"])
        head = gated_model(trained_head, fitted.gate)
        job.gates[TRANSFER] = fitted
        with self._model_lock:  # one picture through both, once: the first Try it does not wait for Keras to trace them
            head.predict_on_batch(extractor.of_pixels(np.zeros((1, extractor.size, extractor.size, 3), "uint8")))
        title = f"{extractor.transfer.backbone.name}, ImageNet weights, frozen, at {extractor.size} px; a new head"
        self._publish(job, TRANSFER, title, score, head, config, started)

    def _train_scratch(self, job: Trained, started: float) -> None:
        report = lambda f, step: self._report(SCRATCH, f, f"CNN from scratch: {step}")  # noqa: E731
        report(0.0, "decoding the pictures")
        size = training.SCRATCH_SIZE
        pixels = load_images([str(p) for p in job.paths], (size, size), 3)
        config = self.config("cnn", len(job.paths))
        cnn = training.ScratchCNN(pixels, job.targets, training.scratch_data(str(self.session.root), job.labels, pixels), config)

        def fit_and_predict(train, held, progress):
            cnn.fit(train, progress)
            return cnn.predict(held)

        score = training.score(fit_and_predict, job.targets, len(job.labels), report)
        share = score.share_of_work
        model = cnn.fit(np.arange(len(job.targets)), lambda f: report(share + (1 - share) * f, "the final CNN, on every picture"))
        cnn.predict(np.arange(1))  # one picture, as Try it sends them: traced now, not at the first try
        score.epochs = config["epochs"]
        self._publish(job, SCRATCH, "CNN from scratch (kerastl's cnn), trained on these pictures only", score, model, config, started)

    def _finetune(self, job: Trained, started: float) -> None:
        report = lambda f, step: self._report(FINETUNED, f, f"fine-tune: {step}")  # noqa: E731
        report(0.0, "decoding the pictures")
        extractor, classes = self.extractor(), len(job.labels)
        pixels = load_images([str(p) for p in job.paths], (extractor.size, extractor.size), 3)
        with self._model_lock:
            features, _ = extractor.of_files(job.paths, lambda f: None)  # cached by the training
        config = self.finetune_config(len(job.paths))
        report(0.0, "building the model, its backbone unfrozen")
        tuner = training.FineTuner(self.backbone, pixels, job.targets, job.labels, config)
        dropout = job.configs[TRANSFER]["dropout"]

        distances = np.zeros(len(job.targets))  # as the transfer model's, in the fine-tuned model's features

        def fit_and_predict(train, held, progress):
            head = training.head_model(training.fit_head(features[train], job.targets[train], config["seed"]), classes, dropout)
            tuner.fit_from(head, train, progress)
            distances[held] = gate.held_out_distances(tuner.features(), job.targets, classes, train, held)
            return tuner.predict(held)

        score = training.score(fit_and_predict, job.targets, classes, report, first=1)
        frozen = job.scores[TRANSFER]
        same = np.isin(frozen.scored, score.scored)  # the frozen model's answers to the same pictures
        job.frozen_on_finetune_scored = float((frozen.probabilities[same].argmax(1) == frozen.labels[same]).mean())
        share = score.share_of_work
        tuner.fit_from(job.models[TRANSFER], np.arange(len(job.targets)),
                       lambda f: report(share + (1 - share) * f, "the final model, on every picture"))
        report(1.0, "when to say not sure")
        fitted = gate.fit(tuner.features(), job.targets, classes, score, distances[score.scored],
                          threshold.keep_of(config))
        model = gated_model(tuner.model, fitted.gate)
        job.gates[FINETUNED] = fitted
        model.predict_on_batch(tuner.pixels[:1])  # traced now, not at the first try
        score.epochs = config["epochs"]
        self._publish(job, FINETUNED, tuner.title, score, model, config, started)

    # Pictures in, classes out

    def predict(self, picture: bytes) -> dict:
        """Each trained model's top classes for one picture; NotReady before the first training ends."""
        try:
            pictures.checked(picture)
        except pictures.PictureError as exc:
            raise SessionError(f"cannot classify this picture: {exc}") from None
        with self._state_lock:
            trained = self.trained
        if trained is None:
            raise NotReady("nothing is trained yet: press Train first")
        results = []
        with pictures.as_file(picture, prefix="kerastl-teach-") as path, self._model_lock:
            started = time.perf_counter()
            extractor = self.extractor()
            transfer_pixels = training.decode(path, extractor.size)
            answers = {TRANSFER: trained.models[TRANSFER].predict_on_batch(extractor.of_pixels(transfer_pixels)),
                       SCRATCH: trained.models[SCRATCH].predict_on_batch(training.decode(path, training.SCRATCH_SIZE).astype("float32"))}
            if FINETUNED in trained.models:
                answers[FINETUNED] = trained.models[FINETUNED].predict_on_batch(transfer_pixels.astype("float32"))
            seconds = time.perf_counter() - started
        for name, probabilities in answers.items():
            probabilities = np.asarray(probabilities)[0]
            fitted = trained.gates.get(name)
            results.append({"model": name, "title": trained.titles[name], "top": top_classes(probabilities, trained.labels, TOP_K),
                            "abstained": threshold.abstains(probabilities, fitted.threshold if fitted else None),
                            "threshold": fitted.threshold if fitted else None})
        return {"results": results, "seconds": round(seconds, 4)}

    # Export

    def export(self) -> dict:
        """Write the last training's models as kerastl run folders and export the transfer model's
        LiteRT files (kerastl.export); Busy while a training or another export runs."""
        from kerastl.teach import export  # it starts Keras (kerastl.finished_run): not before the first export

        with self._state_lock:
            if self.state == "running" or self.exporting:
                raise Busy("a training is running; wait for it to finish" if self.state == "running"
                           else "an export is running already")
            if self.trained is None:
                raise NotReady("nothing is trained yet: press Train first")
            self.exporting, trained = True, self.trained
        try:
            with self._model_lock:
                extractor = self.extractor()
            return export.export_session(self.session, trained, extractor, self.quantize, self.log)
        finally:
            with self._state_lock:
                self.exporting = False

