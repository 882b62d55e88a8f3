"""Load a saved model in any of kerastl's formats, for `predict` and the export's parity check.

`.keras` (any backend), a SavedModel folder (TensorFlow) or a `.tflite` file (the LiteRT
interpreter). Each loader returns a function from raw pixels [n, height, width, channels] (0..255;
28x28x1 for MNIST, which kerastl's LiteRT files take as RGB) to class probabilities [n, classes];
a file that cannot be loaded is a one-line UserError.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from kerastl import runs
from kerastl.errors import UserError, first_line
from kerastl.files import atomic_path
from kerastl.litert import LiteRTModel

Predict = Callable[[np.ndarray], np.ndarray]
BATCH_SIZE = 256


def save_keras_model(model, path: Path) -> None:
    """`model.keras`, recompiled with Keras' own loss so that plain `keras.saving.load_model` opens
    it without kerastl (the label-smoothed training loss is kerastl's class), written atomically."""
    model.compile(optimizer=model.optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    if not model.optimizer.built:  # its (zero) slots are saved too, so loading warns of no mismatch
        model.optimizer.build(model.trainable_variables)
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)


def load_keras_model(path: Path):
    """A `.keras` file as a keras.Model (without its training configuration)."""
    import keras

    try:
        try:
            return keras.saving.load_model(path, compile=False)
        except TypeError:  # an unknown class: a keras-hub layer, registered when keras-hub is imported
            import keras_hub  # noqa: F401

            return keras.saving.load_model(path, compile=False)
    except Exception as exc:
        raise UserError(f"cannot load {path} ({first_line(exc)}); re-train the run or restore the file") from None


def keras_predict(model) -> Predict:
    import keras

    return lambda pixels: keras.ops.convert_to_numpy(
        model.predict(pixels.astype("float32"), batch_size=BATCH_SIZE, verbose=0)
    )


def saved_model_predict(path: Path) -> Predict:
    """A SavedModel's `serve_uint8` signature (kerastl's exports have it), else `serving_default`."""
    import tensorflow as tf

    try:
        signatures = tf.saved_model.load(str(path)).signatures
    except Exception as exc:
        raise UserError(f"cannot load the SavedModel {path} ({first_line(exc)})") from None
    uint8 = "serve_uint8" in signatures
    if not uint8 and "serving_default" not in signatures:
        raise UserError(f"the SavedModel {path} has neither a serve_uint8 nor a serving_default signature")
    serve = signatures["serve_uint8" if uint8 else "serving_default"]
    (input_name,) = serve.structured_input_signature[1].keys()

    def predict_batch(pixels: np.ndarray) -> np.ndarray:
        outputs = serve(**{input_name: tf.constant(pixels if uint8 else pixels.astype("float32"))})
        return (outputs["probabilities"] if "probabilities" in outputs else next(iter(outputs.values()))).numpy()

    def predict(pixels: np.ndarray) -> np.ndarray:
        return np.concatenate([predict_batch(pixels[i : i + BATCH_SIZE]) for i in range(0, len(pixels), BATCH_SIZE)])

    predict.image_shape = tuple(int(d) for d in serve.structured_input_signature[1][input_name].shape[1:])
    return predict


def model_kind(model: str | Path) -> str:
    """"keras" (a run folder or a `.keras` file), "saved_model" or "tflite"; checked without loading."""
    path = Path(model).expanduser()
    if not path.exists():
        raise UserError(f"no model at {path}; pass a run folder, a .keras file, a SavedModel folder or a .tflite file")
    if (path.is_dir() and (path / runs.MODEL).is_file()) or (path.is_file() and path.suffix == ".keras"):
        return "keras"
    if path.is_dir() and (path / "saved_model.pb").is_file():
        return "saved_model"
    if path.is_file() and path.suffix == ".tflite":
        return "tflite"
    if path.is_dir() and (path / runs.CONFIG).is_file():
        raise UserError(f"{path} has no {runs.MODEL}: the run has not finished (resume it with --resume)")
    raise UserError(f"{path} is not a run folder, .keras file, SavedModel folder or .tflite file")


def load_predict_function(model: str | Path) -> tuple[Predict, str, tuple[int, int, int]]:
    """A run folder, `.keras` file, SavedModel folder or `.tflite` file: (predict, kind, the
    shape of one input image)."""
    path = Path(model).expanduser()
    kind = model_kind(path)
    if kind == "keras":
        keras_model = load_keras_model(path / runs.MODEL if path.is_dir() else path)
        return keras_predict(keras_model), kind, tuple(keras_model.input_shape[1:])
    if kind == "saved_model":
        predict = saved_model_predict(path)
        return predict, kind, predict.image_shape
    lite = LiteRTModel(path)
    return lite.predict, kind, tuple(int(d) for d in lite.input["shape"][1:])
