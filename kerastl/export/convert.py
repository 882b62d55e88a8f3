"""Convert a Keras model: a SavedModel with Keras' ExportArchive, LiteRT files by TensorFlow's
converter (TensorFlow backend only).

LiteRT files are converted as Keras' `model.export(format="litert")` converts them (an
ExportArchive written out as a SavedModel, then `TFLiteConverter.from_saved_model` with the same
op sets), except that the archive is written once and every variant is converted from it:
`model.export` traces and writes it again for each file (EfficientNet-Lite0 on 2 cores: 5.2 s of
each variant's 10 s).

The SavedModel takes the trained model's own input (grey [batch, 28, 28, 1] for MNIST), for
servers and Python. Every LiteRT file takes what apps deliver, RGB pixels [batch, H, W, 3] 0..255
(`app_model`): MediaPipe Tasks and the TFLite Task Library accept only 3 (or 4) channels.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Sequence

from kerastl.errors import ExportFailed, first_line
from kerastl.litert import as_rgb
from kerastl.log import Log

FORMATS = ("saved_model", "tflite")
QUANTIZATIONS = ("float32", "float16", "dynamic", "int8")
VARIANTS = {  # what each file is, for its metadata; {io} is the full-integer file's input/output type
    "float32": "float32 weights and activations",
    "float16": "float16 weights, float32 activations",
    "dynamic": "int8 weights, activations quantized on the fly (dynamic range)",
    "int8": "full integer (int8), calibrated on training images, {io} input and output",
}
INT8_IO = ("uint8", "int8")  # input/output type of the full-integer file; MediaPipe refuses int8
DEFAULT_INT8_IO = "uint8"
SAVED_MODEL = "saved_model"



def tflite_name(variant: str) -> str:
    return f"model_{variant}.tflite"


def app_model(model):
    """The graph every LiteRT file holds: RGB pixels [batch, H, W, 3] (0..255), then for a model
    trained on grey images their grey levels (PIL's weights, as `predict` converts pictures), then
    the trained model. A model trained on colour images already takes RGB."""
    import keras

    from kerastl.preprocessing import rgb_to_grey

    height, width, channels = model.input_shape[1:]
    if channels == 3:
        return model
    pixels = keras.Input((height, width, 3), dtype="float32", name="pixels")
    return keras.Model(pixels, model(rgb_to_grey(pixels)), name=f"{model.name}_rgb")


def export_saved_model(model, path: Path) -> None:
    """A SavedModel whose signatures take float32 (`serving_default`) or uint8 (`serve_uint8`)
    pixels [batch, H, W, channels] as the model was trained (28x28x1 for MNIST) and return
    {"probabilities": [batch, classes]}."""
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


def converter_options(variant: str, calibration=None, int8_io: str = DEFAULT_INT8_IO) -> dict[str, Any]:
    """TFLiteConverter settings for one variant (attribute names; `target_spec` a dict of its own)."""
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
                yield [as_rgb(image[None]).astype("float32")]

        return {
            "optimizations": [tf.lite.Optimize.DEFAULT],
            "representative_dataset": representative_dataset,
            "target_spec": {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]},
            "inference_input_type": io_type,
            "inference_output_type": io_type,
        }
    raise ValueError(f"unknown quantization {variant!r}")


def write_litert_source(model, path: Path) -> None:
    """The SavedModel every LiteRT variant of `model` (an `app_model`) is converted from: its call in
    inference mode on float32 pixels, as `model.export(format="litert")` writes it."""
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serve", lambda pixels: model(pixels, training=False),
        input_signature=[tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name="pixels")],
    )
    archive.write_out(str(path), verbose=False)


def export_tflite(source: Path, path: Path, variant: str, calibration=None, int8_io: str = DEFAULT_INT8_IO) -> None:
    """One LiteRT variant converted from `source` (write_litert_source), calibrated on `calibration` if int8."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(source))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]  # as Keras sets them
    converter.experimental_enable_resource_variables = True
    for name, value in converter_options(variant, calibration, int8_io).items():
        if name == "target_spec":
            for key, setting in value.items():
                setattr(converter.target_spec, key, setting)
        else:
            setattr(converter, name, value)
    path.write_bytes(converter.convert())


def convert_all(model, folder: Path, formats: Sequence[str], quantize: Sequence[str], calibration, int8_io: str,
                log: Log = print) -> None:
    """Write the SavedModel and every LiteRT variant into `folder`; ExportFailed names the one that failed."""
    if "saved_model" in formats:
        log("export: SavedModel")
        _convert("SavedModel", export_saved_model, model, folder / SAVED_MODEL)
    if "tflite" in formats:
        with tempfile.TemporaryDirectory(prefix="kerastl-litert-") as source:
            _convert("LiteRT", write_litert_source, app_model(model), Path(source))
            for variant in quantize:
                log(f"export: LiteRT {variant}")
                _convert(f"LiteRT {variant}", export_tflite, Path(source), folder / tflite_name(variant), variant, calibration, int8_io)


def _convert(what: str, export_fn, *args) -> None:
    try:
        export_fn(*args)
    except Exception as exc:
        raise ExportFailed(f"{what} conversion failed ({first_line(exc)})") from exc
