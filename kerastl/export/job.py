"""`export_run`: a run's model as SavedModel and LiteRT files, proven on the test set.

Read the run, convert every format into a staging folder, write the TFLite metadata (with the
labels) into every LiteRT file, run every file on the test set (in LiteRT and in MediaPipe), write
the report and the model card, and only then rename the folder onto RUN_DIR/export/.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from kerastl import runs
from kerastl.confidence import outside, threshold
from kerastl.confidence.job import OUTSIDE_LIMIT
from kerastl.data import DATASETS, folders, load_arrays
from kerastl.errors import ExportFailed, UserError
from kerastl.log import Log
from kerastl.export import tensorflow_process
from kerastl.export import abstain, metadata
from kerastl.export.convert import DEFAULT_INT8_IO, FORMATS, INT8_IO, QUANTIZATIONS, VARIANTS, convert_all, tflite_name
from kerastl.export.folder import move_into_place, staging_folder
from kerastl.export.model_card import ModelFacts, model_facts, write_model_card
from kerastl.export.parity import MAX_DROP_PP, REPORT, check_all
from kerastl.litert import LATENCY_REPEATS
from kerastl.model_files import load_keras_model

CALIBRATION_IMAGES = 500



def export_run(
    run_dir: str | Path,
    formats: Sequence[str] = FORMATS,
    quantize: Sequence[str] = QUANTIZATIONS,
    force: bool = False,
    int8_io: str = DEFAULT_INT8_IO,
    test_limit: int | None = None,
    calibration_images: int = CALIBRATION_IMAGES,
    latency_repeats: int = LATENCY_REPEATS,
    max_drop_pp: float | None = None,
    threads: int | None = 1,
    log: Log = print,
) -> dict[str, Any]:
    """Export a run folder (or a kerastl Run) to RUN_DIR/export/; returns the parity report (also
    in export_report.json). Rows more than `max_drop_pp` below Keras are `flagged`.

    Runs in this process when Keras uses (or can still be given) the TensorFlow backend, else in a
    fresh TensorFlow-backend process; the result is the same. Raises UserError for a bad argument
    or run folder, ExportFailed (kerastl.errors) if a conversion or a converted file fails.
    """
    run_dir = Path(run_dir).expanduser()
    max_drop_pp = MAX_DROP_PP if max_drop_pp is None else max_drop_pp
    _check_choices(formats, quantize, int8_io)
    arguments = dict(
        formats=list(formats), quantize=list(quantize), force=force, int8_io=int8_io, test_limit=test_limit,
        calibration_images=calibration_images, latency_repeats=latency_repeats, max_drop_pp=max_drop_pp, threads=threads,
    )
    if not tensorflow_process.can_use_tensorflow_backend():
        return tensorflow_process.call(f"{__name__}:export_run", {"run_dir": str(run_dir), **arguments}, log)
    with runs.lock(_checked_run_folder(run_dir)):
        return _export(run_dir, log=log, **arguments)


def _export(run_dir: Path, formats, quantize, force, int8_io, test_limit, calibration_images, latency_repeats,
            max_drop_pp, threads, log: Log) -> dict[str, Any]:
    from kerastl import runtime  # imports Keras: on the TensorFlow backend by now

    # Prepare: the run's model, its class names, the test and calibration images
    config, metrics = runs.read_config(run_dir), _metrics(run_dir)
    labels = _labels(run_dir, config)
    target = run_dir / runs.EXPORT_DIR
    if target.exists() and not force:
        raise UserError(f"{target} already exists; pass --force to replace it")
    model = load_keras_model(run_dir / runs.MODEL)
    if model.output_shape[-1] != len(labels):
        raise UserError(f"{run_dir / runs.LABELS} names {len(labels)} classes but the model has {model.output_shape[-1]} "
                        f"outputs; give it one class name per output, in output order, or re-train the run")
    image_shape = tuple(model.input_shape[1:])
    facts = model_facts(run_dir, config, metrics, labels, image_shape)
    x_test, y_test, x_train = run_images(run_dir, config, image_shape, log)
    x_test, y_test = x_test[:test_limit], y_test[:test_limit]
    calibration = _calibration_images(x_train, calibration_images)
    if isinstance(x_test, folders.FileImages):  # an image folder's files: decode the ones used
        log(f"export: decoding {len(x_test)} test and {len(calibration)} calibration images of {config['dataset']}")
        x_test, calibration = x_test.load(), calibration.load()
    if threshold.of_run(metrics) is not None:  # a gated model: int8 ranges that also hold far-away pictures' distances
        calibration = np.concatenate([calibration, outside.calibration_extras(image_shape)])

    # Convert, prove on the test set, then move into place
    staging = staging_folder(run_dir, runs.EXPORT_DIR)
    try:
        convert_all(model, staging, formats, quantize, calibration, int8_io, log)
        if "tflite" in formats:
            _write_metadata(staging, quantize, int8_io, facts, log)
        report = check_all(model, run_dir / runs.MODEL, staging, formats, quantize, x_test, y_test, labels,
                           max_drop_pp, latency_repeats, threads, log)
        if "tflite" in formats and threshold.of_run(metrics) is not None:
            sets = outside.sets_for(config["dataset"], image_shape, config.get("outside"), OUTSIDE_LIMIT,
                                    config.get("data_dir"), log)
            report["abstain"] = abstain.measure(staging, quantize, x_test, sets, report["mediapipe"]["version"] is not None, log)
        report.update(
            run_dir=str(run_dir), dataset=config["dataset"], labels=labels,
            trained_backend=metrics.get("backend"), export_backend=runtime.backend(),
            interpreter_threads=threads, int8_io=int8_io if "tflite" in formats and "int8" in quantize else None,
            calibration_images=len(calibration) if "tflite" in formats else None,
        )
        runs.write_labels(staging, labels)
        (staging / REPORT).write_text(json.dumps(report, indent=2) + "\n")
        write_model_card(staging, facts, report)
        move_into_place(staging, target)
    except (ExportFailed, UserError) as exc:
        kept = "the existing export is unchanged" if target.exists() else "nothing was written"
        raise type(exc)(f"{exc}; {kept}") from exc.__cause__
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report


def _write_metadata(folder: Path, quantize: Sequence[str], int8_io: str, facts: ModelFacts, log: Log) -> None:
    """TFLite metadata and the labels file in every LiteRT file; a failure is a one-line UserError."""
    height, width, _ = facts.image_shape
    labels = runs.labels_text(facts.classes).encode()
    for variant in quantize:
        path = folder / tflite_name(variant)
        log(f"export: TFLite metadata and {runs.LABELS} into {path.name}")
        described = metadata.ClassifierMetadata(
            name=facts.name, description=f"{facts.description} This file: {VARIANTS[variant].format(io=int8_io)}.",
            version=facts.version, author=facts.author, licence=facts.licence, height=height, width=width,
            labels_file=runs.LABELS, num_classes=len(facts.classes), score_threshold=threshold.of_run(facts.metrics),
        )
        try:
            metadata.write_into_model(path, metadata.metadata_flatbuffer(described), {runs.LABELS: labels})
        except metadata.MetadataError as exc:
            raise UserError(f"writing the TFLite metadata into {path.name} failed ({exc})") from exc


def _labels(run_dir: Path, config: dict[str, Any]) -> list[str]:

    dataset = DATASETS.get(config["dataset"])
    labels = runs.read_labels(run_dir) or (list(dataset.class_names) if dataset else None)
    if not labels:
        raise UserError(f"{run_dir} has no {runs.LABELS} with the class names of {config['dataset']}; re-train the run")
    return labels


def run_images(run_dir: Path, config: dict[str, Any], image_shape: tuple[int, int, int], log: Log):
    """(x_test, y_test, x_train): the built-in dataset's arrays, or the files of the image folder's
    test and training splits as the run recorded them (decoded at the model's input size)."""
    if not folders.is_folder_dataset(config["dataset"]):
        arrays = load_arrays(config["dataset"], data_dir=config.get("data_dir"), log=log)
        return arrays["x_test"], arrays["y_test"], arrays["x_train"]
    root = Path(config["dataset"])
    if not root.is_dir():
        raise UserError(f"the run's image folder {root} is gone; the export needs its test and training images")
    files = folders.read_split_file(run_dir / runs.SPLIT_FILE, root)
    missing = [p for p in files["test"][0][:1] + files["train"][0][:1] if not Path(p).is_file()]
    if missing:
        raise UserError(f"{missing[0]} is gone from the run's image folder; the export needs its test and training images")

    def images(split: str):
        return folders.FileImages(np.array(files[split][0], dtype=object), image_shape[:2], image_shape[2])

    return images("test"), files["test"][1], images("train")


def _checked_run_folder(run_dir: Path) -> Path:
    if not run_dir.is_dir():
        raise UserError(f"no run folder {run_dir}; pass a folder written by `python -m kerastl.fit`")
    for name in (runs.MODEL, runs.CONFIG):
        if not (run_dir / name).is_file():
            raise UserError(f"{run_dir} has no {name}; is it a finished run of `python -m kerastl.fit`?")
    return run_dir


def _check_choices(formats: Sequence[str], quantize: Sequence[str], int8_io: str) -> None:
    for values, allowed, flag in ((formats, FORMATS, "--formats"), (quantize, QUANTIZATIONS, "--quantize")):
        unknown = [v for v in values if v not in allowed]
        if unknown or not values:
            raise UserError(f"{flag}: unknown or empty value {','.join(unknown)!r}; choose from {','.join(allowed)}")
    if int8_io not in INT8_IO:
        raise UserError(f"--int8-io must be {' or '.join(INT8_IO)}, got {int8_io!r}")


def _calibration_images(x_train, count: int, seed: int = 0):
    """A seeded random sample of the train split, for full-integer calibration."""
    index = np.random.default_rng(seed).choice(len(x_train), size=min(count, len(x_train)), replace=False)
    return x_train[index]


def _metrics(run_dir: Path) -> dict[str, Any]:
    """The run's metrics.json, or {} for a run folder without a readable one."""
    try:
        return runs.read_metrics(run_dir)
    except UserError:
        return {}
