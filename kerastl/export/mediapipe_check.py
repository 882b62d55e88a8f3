"""Each LiteRT file in the client apps call: MediaPipe Tasks' ImageClassifier.

Android, iOS, web and Python apps share MediaPipe's C++ core, so a file it loads and classifies
in Python is one an app can ship. The test images go in as an app's pictures would: RGB (a grey
image's channel repeated), PICTURE_SCALE times the model's input size (each pixel a block), which
MediaPipe resizes to the input size itself. `mediapipe` is optional (`pip install 'kerastl[mobile]'`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kerastl.errors import first_line
from kerastl.litert import as_rgb

PICTURE_SCALE = 4
# The score threshold that answers every picture. MediaPipe takes 0 and below as "not set" (the
# file's own threshold then applies, measured with mediapipe 1.2.3), so the smallest positive
# float32: only a score of exactly 0 stays unanswered.
ANSWER_EVERYTHING = float(np.finfo(np.float32).tiny)
INSTALL = "pip install 'kerastl[mobile]'"


class Refused(Exception):
    """MediaPipe would not load the file, or failed to classify with it; the message says why."""


def availability() -> tuple[str | None, str | None]:
    """(mediapipe's version, None) if its ImageClassifier imports, else (None, why not)."""
    try:
        from importlib.metadata import version

        from mediapipe.tasks.python import vision  # noqa: F401

        return version("mediapipe"), None
    except ImportError:
        return None, f"mediapipe is not installed ({INSTALL})"
    except Exception as exc:  # a broken install: say so, do not fail the export
        return None, f"mediapipe does not import ({first_line(exc)})"


def picture(pixels: np.ndarray) -> np.ndarray:
    """One image [H, W, channels] as an app's RGB picture, PICTURE_SCALE times larger."""
    rgb = as_rgb(pixels).astype(np.uint8)
    return np.ascontiguousarray(rgb.repeat(PICTURE_SCALE, axis=0).repeat(PICTURE_SCALE, axis=1))


def classify(path: Path, images: np.ndarray, score_threshold: float | None = None) -> tuple[np.ndarray, list[str]]:
    """MediaPipe's top class of every image: (class indices, class names as MediaPipe returns them);
    -1 and "" where MediaPipe returns no class (every score below the file's default threshold, its
    metadata's, or `score_threshold` when given, as an app may set it). Refused if MediaPipe will
    not load the file or fails on an image."""
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=str(path)), max_results=1,
                                            score_threshold=score_threshold)
    try:
        with vision.ImageClassifier.create_from_options(options) as classifier:
            indices, names = [], []
            for pixels in images:
                result = classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=picture(pixels)))
                categories = result.classifications[0].categories
                indices.append(categories[0].index if categories else -1)
                names.append((categories[0].category_name or "") if categories else "")
    except (RuntimeError, ValueError) as exc:
        raise Refused(_reason(exc)) from None
    return np.array(indices, dtype=np.int64), names


def _reason(exc: Exception) -> str:
    """MediaPipe's message on one line, without its internal status code suffix."""
    text = " ".join(str(exc).split())
    return text.split(" [MediaPipeTasksStatus=")[0] or type(exc).__name__
