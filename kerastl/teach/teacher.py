"""What the teach server does, apart from HTTP: one training at a time in a thread of its own, its
state and progress for the page, the trained models answering pictures, and the export.

`Teacher.start` snapshots the session (the class names and pictures of that moment; pictures added
while it trains wait for the next training) and trains the transfer model first, then the CNN;
each is published as soon as it is scored, so the page shows the transfer result while the CNN
still trains. The models that answer /api/predict are swapped in whole when a training ends, so a
picture is always answered by one consistent pair.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kerastl.log import Log
from kerastl.teach import training
from kerastl.teach.session import Session, SessionError
from kerastl.web import pictures

TOP_K = 3
TRANSFER, SCRATCH = training.TRANSFER, training.SCRATCH
SHARE = {TRANSFER: (0.0, 0.3), SCRATCH: (0.3, 1.0)}  # each model's part of the progress bar


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
    models: dict[str, Any] = field(default_factory=dict)  # transfer: the head; scratch: the CNN
    titles: dict[str, str] = field(default_factory=dict)
    seconds_from_start: dict[str, float] = field(default_factory=dict)
    features_computed: int = 0  # pictures whose backbone features this training computed (the rest were cached)


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
        self._stop = threading.Event()
        self.state, self.error = "idle", None
        self.progress = {"fraction": 0.0, "step": ""}
        self.training: Trained | None = None  # the one being trained (results appear as they are scored)
        self.trained: Trained | None = None  # the last finished one: answers pictures, is exported
        self.exporting = False

    def config(self, mode: str, train_images: int) -> dict[str, Any]:
        return training.sized_config(mode, self.session.root, train_images, self.options)

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
        return thread

    # Training

    def start(self) -> dict:
        """Start a training in its own thread; Busy if one (or an export) runs, SessionError if the
        pictures cannot train two models (fewer than 2 classes, a class with too few pictures)."""
        with self._state_lock:
            if self.state == "running" or self.exporting:
                raise Busy("a training is running; wait for it to finish" if self.state == "running"
                           else "an export is running; wait for it to finish")
            names, snapshot = self.session.snapshot()
            training.check_trainable(names, snapshot)
            self.training = Trained(names, [p.path for p in snapshot], np.array([p.label for p in snapshot], "int64"))
            self.state, self.error = "running", None
            self.progress = {"fraction": 0.0, "step": "starting"}
            self._stop.clear()
            self._thread = threading.Thread(target=self._train, args=(self.training,), name="kerastl-teach-training", daemon=True)
            self._thread.start()
            return self.status()

    def stop(self, wait: float = 30.0) -> dict:
        """Ask a running training to stop after its current step (the page's Stop, Ctrl-C), wait up
        to `wait` seconds for it, and return the status. The last finished models stay."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(wait)
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
            return {"state": self.state, "progress": dict(self.progress), "results": results, "error": self.error,
                    "labels": list(shown.labels) if shown else [], "pictures": len(shown.paths) if shown else 0,
                    "folder": str(self.session.root)}

    def _report(self, model: str, fraction: float, step: str) -> None:
        if self._stop.is_set():
            raise KeyboardInterrupt
        low, high = SHARE[model]
        with self._state_lock:
            self.progress = {"fraction": round(low + (high - low) * fraction, 4), "step": step}

    def _train(self, job: Trained) -> None:
        started = time.perf_counter()
        try:
            self._train_transfer(job, started)
            self._train_scratch(job, started)
        except KeyboardInterrupt:
            self._finish(job, "failed", "stopped before it finished")
        except Exception as exc:  # the page shows it; the server and the last models stay
            from kerastl.errors import first_line

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

    def _train_transfer(self, job: Trained, started: float) -> None:
        self._report(TRANSFER, 0.0, "transfer: loading the pretrained backbone")
        extractor = self.extractor()
        report = lambda f, step: self._report(TRANSFER, f, f"transfer: {step}")  # noqa: E731
        with self._model_lock:
            features, computed = extractor.of_files(job.paths, lambda f: report(0.3 * f, "features of new pictures"))
        job.features_computed = computed
        config = self.config("feature", len(job.paths))
        classes = len(job.labels)

        def fit_and_predict(train, held, progress):
            return training.fit_head(features[train], job.targets[train], config["seed"]).predict_proba(features[held])

        score = training.score(fit_and_predict, job.targets, classes, lambda f, step: report(0.3 + 0.7 * f, step))
        report(0.3 + 0.7 * score.share_of_work, "the final head, on every picture")
        head = training.head_model(training.fit_head(features, job.targets, config["seed"]), classes, config["dropout"])
        with self._model_lock:  # one picture through both, once: the first Try it does not wait for Keras to trace them
            head.predict_on_batch(extractor.of_pixels(np.zeros((1, extractor.size, extractor.size, 3), "uint8")))
        title = f"{extractor.transfer.backbone.name}, ImageNet weights, frozen, at {extractor.size} px; a new head"
        self._publish(job, TRANSFER, title, score, head, config, started)

    def _train_scratch(self, job: Trained, started: float) -> None:
        from kerastl.data.folders import load_images

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

    # Pictures in, classes out

    def predict(self, picture: bytes) -> dict:
        """Each trained model's top classes for one picture; NotReady before the first training ends."""
        from kerastl.prediction import top_classes

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
            features = extractor.of_pixels(training.decode(path, extractor.size))
            transfer = np.asarray(trained.models[TRANSFER].predict_on_batch(features))[0]
            pixels = training.decode(path, training.SCRATCH_SIZE).astype("float32")
            scratch = np.asarray(trained.models[SCRATCH].predict_on_batch(pixels))[0]
            seconds = time.perf_counter() - started
        for name, probabilities in ((TRANSFER, transfer), (SCRATCH, scratch)):
            results.append({"model": name, "title": trained.titles[name], "top": top_classes(probabilities, trained.labels, TOP_K)})
        return {"results": results, "seconds": round(seconds, 4)}

    # Export

    def export(self) -> dict:
        """Write the last training's models as kerastl run folders and export the transfer model's
        LiteRT files (kerastl.export); Busy while a training or another export runs."""
        from kerastl.teach import export

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

