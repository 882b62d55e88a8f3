"""`python -m kerastl.export RUN_DIR`: a run's model as SavedModel and LiteRT files, proven on the test set.

Writes RUN_DIR/export/:

    saved_model/            serving signatures `serving_default` (float32 pixels) and `serve_uint8`
    model_float32.tflite    LiteRT, float32
    model_float16.tflite    weights stored as float16
    model_dynamic.tflite    weights int8, activations quantized on the fly (dynamic range)
    model_int8.tflite       full integer, calibrated on a sample of the train split; int8 (or uint8) in/out
    labels.txt              one class name per line, in output order
    export_report.json      size, test accuracy, change vs Keras, agreement and latency of each file

Every model takes raw pixels 0..255 (preprocessing is inside it) and returns class probabilities.
Keras `.keras` files are backend-neutral, so a model trained under JAX or PyTorch is loaded here
under the TensorFlow backend, the one whose `model.export` writes both formats.
Everything is written to a temporary folder and renamed into place only after every file has
converted and been run on the test set; an existing export is replaced only with `--force`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

from kerastl.cli import OneLineParser, run_cli
from kerastl.errors import UserError, first_line
from kerastl.data import CLASS_NAMES

PROG = "kerastl.export"
FORMATS = ("saved_model", "tflite")
QUANTIZATIONS = ("float32", "float16", "dynamic", "int8")
INT8_IO = ("int8", "uint8")
EXPORT_DIR = "export"
SAVED_MODEL = "saved_model"
LABELS = "labels.txt"
REPORT = "export_report.json"
CALIBRATION_IMAGES = 500
EXIT_ACCURACY_DROP = 1
EXIT_EXPORT_FAILED = 3

Log = Callable[[str], None]


class ExportFailed(RuntimeError):
    """A conversion or the check of a converted file failed; nothing was written."""


def tflite_name(variant: str) -> str:
    return f"model_{variant}.tflite"


# Prepare: the run's model, its class names, the test and calibration images


def _read_run(run_dir: Path) -> dict[str, Any]:
    from kerastl import runs

    if not run_dir.is_dir():
        raise UserError(f"no run folder {run_dir}; pass a folder written by `python -m kerastl.fit`")
    for name in (runs.MODEL, runs.CONFIG):
        if not (run_dir / name).is_file():
            raise UserError(f"{run_dir} has no {name}; is it a finished run of `python -m kerastl.fit`?")
    config = runs.read_config(run_dir)
    if config.get("dataset") not in CLASS_NAMES:
        raise UserError(f"{run_dir / runs.CONFIG}: unknown dataset {config.get('dataset')!r}")
    return config


def _calibration_images(x_train, count: int, seed: int = 0):
    """A seeded random sample of the train split, for full-integer calibration."""
    import numpy as np

    index = np.random.default_rng(seed).choice(len(x_train), size=min(count, len(x_train)), replace=False)
    return x_train[index]


# Convert: SavedModel with Keras' ExportArchive, LiteRT with `model.export(format="litert")`


def export_saved_model(model, path: Path) -> None:
    """A SavedModel whose signatures take float32 (`serving_default`) or uint8 (`serve_uint8`)
    pixels [batch, 28, 28, 1] and return {"probabilities": [batch, classes]}."""
    import keras
    import tensorflow as tf

    shape = (None, *model.input_shape[1:])
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serve",
        lambda pixels: {"probabilities": model(pixels, training=False)},
        input_signature=[tf.TensorSpec(shape, tf.float32, name="pixels")],
    )
    archive.add_endpoint(
        "serve_uint8",
        lambda pixels: {"probabilities": model(tf.cast(pixels, tf.float32), training=False)},
        input_signature=[tf.TensorSpec(shape, tf.uint8, name="pixels")],
    )
    archive.write_out(str(path), verbose=False)


def converter_options(variant: str, calibration=None, int8_io: str = "int8") -> dict[str, Any]:
    """TFLiteConverter settings for one variant, as `model.export(format="litert", **options)` takes them."""
    import tensorflow as tf

    if variant == "float32":
        return {}
    if variant == "float16":
        return {"optimizations": [tf.lite.Optimize.DEFAULT], "target_spec": {"supported_types": [tf.float16]}}
    if variant == "dynamic":
        return {"optimizations": [tf.lite.Optimize.DEFAULT]}
    if variant == "int8":
        io_type = {"int8": tf.int8, "uint8": tf.uint8}[int8_io]

        def representative_dataset():
            for image in calibration:
                yield [image[None].astype("float32")]

        return {
            "optimizations": [tf.lite.Optimize.DEFAULT],
            "representative_dataset": representative_dataset,
            "target_spec": {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]},
            "inference_input_type": io_type,
            "inference_output_type": io_type,
        }
    raise ValueError(f"unknown quantization {variant!r}")


def export_tflite(model, path: Path, variant: str, calibration=None, int8_io: str = "int8") -> None:
    model.export(str(path), format="litert", verbose=False, **converter_options(variant, calibration, int8_io))


# Prove: run every file on the test set


def _candidates(model, model_path: Path, folder: Path, formats: Sequence[str], quantize: Sequence[str], threads: int | None):
    """The Keras model (the reference) and every exported file, each as a parity Candidate."""
    import tensorflow as tf

    from kerastl.litert import LiteRTModel
    from kerastl.parity import Candidate

    keras_model = Candidate(
        "keras", model_path,
        lambda x: model.predict(x.astype("float32"), batch_size=256, verbose=0),
        lambda x: model(x.astype("float32"), training=False),
    )
    artifacts = []
    if "saved_model" in formats:
        serve = tf.saved_model.load(str(folder / SAVED_MODEL)).signatures["serve_uint8"]
        artifacts.append(Candidate(
            "saved_model (uint8)", folder / SAVED_MODEL,
            lambda x: _batched(lambda b: serve(pixels=tf.constant(b))["probabilities"].numpy(), x),
            lambda x: serve(pixels=tf.constant(x)),
        ))
    if "tflite" in formats:
        for variant in quantize:
            lite = LiteRTModel(folder / tflite_name(variant), num_threads=threads)
            name = f"tflite {variant}" + (f" ({lite.input_dtype.name})" if variant == "int8" else "")
            artifacts.append(Candidate(name, lite.path, lite.predict, lite.predict))
    return keras_model, artifacts


def _batched(fn, x, batch_size: int = 256):
    import numpy as np

    return np.concatenate([fn(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


# The library call


def export_run(
    run_dir: str | Path,
    formats: Sequence[str] = FORMATS,
    quantize: Sequence[str] = QUANTIZATIONS,
    force: bool = False,
    int8_io: str = "int8",
    test_limit: int | None = None,
    calibration_images: int = CALIBRATION_IMAGES,
    latency_repeats: int = 200,
    max_drop_pp: float | None = None,
    threads: int | None = 1,
    log: Log = print,
) -> dict[str, Any]:
    """Export a run folder to RUN_DIR/export/ and return its parity report (also in export_report.json).

    Runs in this process when Keras uses (or can still be given) the TensorFlow backend, else in a
    `python -m kerastl.export` subprocess; the result is the same.
    """
    from kerastl.parity import MAX_DROP_PP

    run_dir = Path(run_dir).expanduser()
    max_drop_pp = MAX_DROP_PP if max_drop_pp is None else max_drop_pp
    _check_choices(formats, quantize, int8_io)
    if not _can_use_tensorflow_backend():
        return _export_in_subprocess(
            run_dir, formats, quantize, force, int8_io, test_limit, calibration_images, latency_repeats,
            max_drop_pp, threads,
        )

    config = _read_run(run_dir)
    target = run_dir / EXPORT_DIR
    if target.exists() and not force:
        raise UserError(f"{target} already exists; pass --force to replace it")
    model = _load_model(run_dir)

    from kerastl.data import load_arrays

    arrays = load_arrays(config["dataset"], data_dir=config.get("data_dir"), log=log)
    x_test, y_test = arrays["x_test"][:test_limit], arrays["y_test"][:test_limit]
    calibration = _calibration_images(arrays["x_train"], calibration_images)
    labels = CLASS_NAMES[config["dataset"]]

    staging = _staging_folder(run_dir)
    try:
        convert_all(model, staging, formats, quantize, calibration, int8_io, log)
        report = check_all(model, run_dir, staging, formats, quantize, x_test, y_test, max_drop_pp, latency_repeats, threads, log)
        report.update(
            run_dir=str(run_dir), dataset=config["dataset"], labels=labels,
            trained_backend=_trained_backend(run_dir), export_backend=keras_backend(),
            interpreter_threads=threads, int8_io=int8_io if "tflite" in formats and "int8" in quantize else None,
            calibration_images=len(calibration) if "tflite" in formats else None,
        )
        (staging / LABELS).write_text("\n".join(labels) + "\n")
        (staging / REPORT).write_text(json.dumps(report, indent=2) + "\n")
        _move_into_place(staging, target)
    except ExportFailed as exc:
        kept = "the existing export is unchanged" if target.exists() else "nothing was written"
        raise ExportFailed(f"{exc}; {kept}") from exc.__cause__
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report


def convert_all(model, folder: Path, formats, quantize, calibration, int8_io: str, log: Log = print) -> None:
    """Write the SavedModel and every LiteRT variant into `folder`; ExportFailed names the one that failed."""
    if "saved_model" in formats:
        log("export: SavedModel")
        _convert("SavedModel", export_saved_model, model, folder / SAVED_MODEL)
    if "tflite" in formats:
        for variant in quantize:
            log(f"export: LiteRT {variant}")
            _convert(f"LiteRT {variant}", export_tflite, model, folder / tflite_name(variant), variant, calibration, int8_io)


def check_all(model, run_dir: Path, folder: Path, formats, quantize, x_test, y_test, max_drop_pp: float,
              latency_repeats: int, threads: int | None, log: Log = print) -> dict[str, Any]:
    """Run every file in `folder` on the test images with the runtime a device uses; the parity report."""
    from kerastl import parity
    from kerastl.litert import interpreter_class

    try:
        keras_model, artifacts = _candidates(model, run_dir / "model.keras", folder, formats, quantize, threads)
        report = parity.parity_report(keras_model, artifacts, x_test, y_test, max_drop_pp, latency_repeats, log)
    except Exception as exc:
        raise ExportFailed(f"running the exported files failed ({first_line(exc)})") from exc
    report["interpreter"] = interpreter_class()[1] if "tflite" in formats else None
    return report


def _load_model(run_dir: Path):
    import keras

    path = run_dir / "model.keras"
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as exc:
        raise UserError(f"cannot load {path} ({first_line(exc)}); re-train the run or restore the file") from None


def keras_backend() -> str:
    import keras

    return keras.backend.backend()


def _staging_folder(run_dir: Path) -> Path:
    """A hidden temporary folder in the run folder, with the permissions of an ordinary new folder."""
    staging = Path(tempfile.mkdtemp(dir=run_dir, prefix=f".{EXPORT_DIR}-"))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)
    return staging


def _convert(what: str, export_fn, *args) -> None:
    try:
        export_fn(*args)
    except Exception as exc:
        raise ExportFailed(f"{what} conversion failed ({first_line(exc)})") from exc


def _check_choices(formats: Sequence[str], quantize: Sequence[str], int8_io: str) -> None:
    for values, allowed, flag in ((formats, FORMATS, "--formats"), (quantize, QUANTIZATIONS, "--quantize")):
        unknown = [v for v in values if v not in allowed]
        if unknown or not values:
            raise UserError(f"{flag}: unknown or empty value {','.join(unknown)!r}; choose from {','.join(allowed)}")
    if int8_io not in INT8_IO:
        raise UserError(f"--int8-io must be int8 or uint8, got {int8_io!r}")


def _move_into_place(staging: Path, target: Path) -> None:
    """Rename `staging` onto `target`; an old export is moved aside first and removed only afterwards."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}-old-{os.getpid()}")
        os.replace(target, old)
    try:
        os.replace(staging, target)
    except OSError:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _trained_backend(run_dir: Path) -> str | None:
    try:
        return json.loads((run_dir / "metrics.json").read_text()).get("backend")
    except (OSError, ValueError):
        return None


def _can_use_tensorflow_backend() -> bool:
    """True if Keras runs (or, not imported yet, will run) on TensorFlow in this process."""
    if "keras" in sys.modules:
        import keras

        return keras.backend.backend() == "tensorflow"
    if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        return False
    os.environ["KERAS_BACKEND"] = "tensorflow"
    return True


def _export_in_subprocess(run_dir, formats, quantize, force, int8_io, test_limit, calibration_images,
                          latency_repeats, max_drop_pp, threads) -> dict[str, Any]:
    """Keras already runs on JAX or PyTorch here: export in a fresh TensorFlow-backend process."""
    argv = [
        sys.executable, "-m", "kerastl.export", str(run_dir), "--formats", ",".join(formats),
        "--quantize", ",".join(quantize), "--int8-io", int8_io, "--calibration-images", str(calibration_images),
        "--latency-repeats", str(latency_repeats), "--max-drop", str(max_drop_pp), "--allow-drop",
    ]
    argv += ["--force"] if force else []
    argv += ["--test-limit", str(test_limit)] if test_limit is not None else []
    argv += ["--threads", str(threads)] if threads is not None else []
    result = subprocess.run(argv, env={**os.environ, "KERAS_BACKEND": "tensorflow"}, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith(f"{PROG}: error:")]
        message = errors[-1].split(": error: ", 1)[1] if errors else "\n".join(lines[-20:])
        if result.returncode == 2 and errors:
            raise UserError(message)
        if result.returncode == EXIT_EXPORT_FAILED and errors:
            raise ExportFailed(message)
        raise RuntimeError(f"the export subprocess failed (exit {result.returncode}): {message}")
    return json.loads((run_dir / EXPORT_DIR / REPORT).read_text())


# The command line


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_args(argv=None):
    p = OneLineParser(prog=PROG, description="Export a run as SavedModel and LiteRT files and check them on the test set.")
    p.add_argument("run_dir", help="a run folder written by `python -m kerastl.fit`")
    p.add_argument("--formats", type=_csv, default=list(FORMATS), help="comma-separated: saved_model,tflite (default: both)")
    p.add_argument("--quantize", type=_csv, default=list(QUANTIZATIONS),
                   help="LiteRT variants, comma-separated: float32,float16,dynamic,int8 (default: all)")
    p.add_argument("--int8-io", default="int8", choices=INT8_IO, help="input/output type of the int8 model (default: int8)")
    p.add_argument("--force", action="store_true", help="replace an existing RUN_DIR/export")
    p.add_argument("--test-limit", type=int, help="check on the first N test images only (quick checks)")
    p.add_argument("--allow-drop", action="store_true", help="exit 0 even if a file loses accuracy")
    p.add_argument("--max-drop", type=float, default=None, help="accuracy drop in pp that is flagged (default: 0.5)")
    p.add_argument("--calibration-images", type=int, default=CALIBRATION_IMAGES,
                   help=f"train images that calibrate the int8 model (default: {CALIBRATION_IMAGES})")
    p.add_argument("--latency-repeats", type=int, default=200, help="single-image calls timed per file (default: 200)")
    p.add_argument("--threads", type=int, default=1, help="LiteRT interpreter threads (default: 1)")
    args = p.parse_args(argv)
    for name in ("test_limit", "calibration_images", "latency_repeats", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ["KERAS_BACKEND"] = "tensorflow"  # before Keras is imported: only TensorFlow exports both formats
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from kerastl import parity

    try:
        report = export_run(
            args.run_dir, args.formats, args.quantize, args.force, args.int8_io, args.test_limit,
            args.calibration_images, args.latency_repeats, args.max_drop, args.threads,
        )
    except ExportFailed as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_EXPORT_FAILED
    print(parity.format_table(report))
    target = Path(args.run_dir) / EXPORT_DIR
    drops = parity.flagged(report)
    if drops and not args.allow_drop:
        names = ", ".join(f"{r['artifact']} ({r['delta_pp']:+.2f} pp)" for r in drops)
        print(f"{PROG}: accuracy dropped more than {report['max_drop_pp']} pp: {names}. The export is in {target} "
              "for inspection; pass --allow-drop to accept it.", file=sys.stderr)
        return EXIT_ACCURACY_DROP
    print(f"{PROG}: exported to {target}")
    return 0


def cli() -> int:
    return run_cli(PROG, main)


if __name__ == "__main__":
    sys.exit(cli())
