"""Convert a Keras model: a SavedModel with Keras' ExportArchive, LiteRT files with
`model.export(format="litert")` and TensorFlow's converter options (TensorFlow backend only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from kerastl.errors import ExportFailed, first_line

FORMATS = ("saved_model", "tflite")
QUANTIZATIONS = ("float32", "float16", "dynamic", "int8")
INT8_IO = ("int8", "uint8")
SAVED_MODEL = "saved_model"

Log = Callable[[str], None]


def tflite_name(variant: str) -> str:
    return f"model_{variant}.tflite"


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


def convert_all(model, folder: Path, formats: Sequence[str], quantize: Sequence[str], calibration, int8_io: str,
                log: Log = print) -> None:
    """Write the SavedModel and every LiteRT variant into `folder`; ExportFailed names the one that failed."""
    if "saved_model" in formats:
        log("export: SavedModel")
        _convert("SavedModel", export_saved_model, model, folder / SAVED_MODEL)
    if "tflite" in formats:
        for variant in quantize:
            log(f"export: LiteRT {variant}")
            _convert(f"LiteRT {variant}", export_tflite, model, folder / tflite_name(variant), variant, calibration, int8_io)


def _convert(what: str, export_fn, *args) -> None:
    try:
        export_fn(*args)
    except Exception as exc:
        raise ExportFailed(f"{what} conversion failed ({first_line(exc)})") from exc
