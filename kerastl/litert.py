"""Run a `.tflite` model the way a phone would: the LiteRT interpreter, on raw pixels.

The interpreter comes from the `ai-edge-litert` package where it installs (it needs no
TensorFlow), else from `tf.lite.Interpreter`. A full-integer model's int8/uint8 input and output
are quantized and dequantized here with the scale and zero point stored in the file, so callers
always pass pixel values 0..255 and get float probabilities back. kerastl's files take RGB pixels,
as apps deliver them; grey pixels given to such a file are repeated into its three channels.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

from kerastl.errors import UserError, first_line


def interpreter_class() -> tuple[type, str]:
    """The Interpreter class and a name for reports: ai-edge-litert if installed, else TensorFlow's."""
    try:
        from ai_edge_litert.interpreter import Interpreter
        from importlib.metadata import version

        return Interpreter, f"ai-edge-litert {version('ai-edge-litert')}"
    except ImportError:
        import tensorflow as tf

        return tf.lite.Interpreter, f"tf.lite.Interpreter (tensorflow {tf.__version__})"


def as_rgb(pixels: np.ndarray) -> np.ndarray:
    """Pixels [..., channels] as RGB: a grey channel repeated three times, colour unchanged."""
    return pixels if pixels.shape[-1] == 3 else np.repeat(pixels, 3, axis=-1)


class LiteRTModel:
    """A `.tflite` classifier: pixels [n, height, width, channels] (0..255) in, probabilities
    [n, classes] out. Grey pixels are repeated into RGB for a file that takes RGB."""

    def __init__(self, path: str | Path, num_threads: int | None = None):
        self.path = Path(path)
        Interpreter, self.runtime = interpreter_class()
        try:
            self.interpreter = Interpreter(model_path=str(self.path), num_threads=num_threads)
        except (ValueError, RuntimeError) as exc:
            raise UserError(f"{self.path} is not a valid .tflite model ({first_line(exc)})") from None
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.batch = None
        self._allocate(1)

    @property
    def input_dtype(self) -> np.dtype:
        return np.dtype(self.input["dtype"])

    @property
    def output_dtype(self) -> np.dtype:
        return np.dtype(self.output["dtype"])

    def _allocate(self, batch: int) -> None:
        if batch != self.batch:
            shape = [batch, *self.input["shape_signature"][1:]]
            self.interpreter.resize_tensor_input(self.input["index"], shape)
            self.interpreter.allocate_tensors()
            self.batch = batch

    def _quantize(self, pixels: np.ndarray) -> np.ndarray:
        dtype = self.input_dtype
        if not np.issubdtype(dtype, np.integer):
            return pixels.astype(dtype)
        scale, zero_point = self.input["quantization"]
        info = np.iinfo(dtype)
        q = np.round(pixels.astype(np.float32) / scale) + zero_point
        return np.clip(q, info.min, info.max).astype(dtype)

    def _dequantize(self, values: np.ndarray) -> np.ndarray:
        if not np.issubdtype(self.output_dtype, np.integer):
            return values.astype(np.float32)
        scale, zero_point = self.output["quantization"]
        return (values.astype(np.float32) - zero_point) * scale

    def _invoke(self, batch: np.ndarray) -> np.ndarray:
        self._allocate(len(batch))
        if self.input["shape"][-1] == 3:
            batch = as_rgb(batch)
        self.interpreter.set_tensor(self.input["index"], self._quantize(batch))
        self.interpreter.invoke()
        return self._dequantize(self.interpreter.get_tensor(self.output["index"]))

    def predict(self, pixels: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Probabilities for every image, run `batch_size` images per interpreter call."""
        outputs = [self._invoke(pixels[i : i + batch_size]) for i in range(0, len(pixels), batch_size)]
        return np.concatenate(outputs) if outputs else np.zeros((0, self.output["shape"][-1]), np.float32)


LATENCY_REPEATS = 200  # single-image calls timed per file (their median is the latency)


def median_latency_ms(call, repeats: int = LATENCY_REPEATS) -> float:
    """Median milliseconds of `call()` over `repeats` calls, after one warm-up call."""
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)
