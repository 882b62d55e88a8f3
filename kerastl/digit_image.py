"""Turn any picture of a digit into a 28x28 MNIST-style image.

MNIST digits are light on a dark background; each was scaled so its bounding box fits 20x20
pixels, keeping its aspect ratio (anti-aliased, so edges are grey), then placed in a 28x28 field
so that its centre of mass is at the centre. `to_mnist` repeats those steps for a photo or a
drawing of any size, colour or grey, after inverting it if it is dark ink on light paper.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from kerastl.data.datasets import IMAGE_SHAPE
from kerastl.data.folders import MAX_PIXELS  # a larger image is refused as a likely decompression bomb

WORKING_SIZE = 512  # larger images are shrunk to this first: the digit ends up 20 pixels tall anyway
DIGIT_BOX = 20
FIELD = IMAGE_SHAPE[0]
INVERT_CHOICES = ("auto", "yes", "no")


class ImageError(ValueError):
    """An image file that cannot be turned into a digit; the message names the problem."""


def load_grey(path: str | Path) -> np.ndarray:
    """The image as float32 grey levels 0..255, [height, width], at most WORKING_SIZE on a side.

    Raises ImageError for a missing, unreadable, truncated or absurdly large file.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageError("no such file" if not path.exists() else "not a file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if image.width * image.height > MAX_PIXELS:
                    raise ImageError(f"image is {image.width}x{image.height} pixels, over the {MAX_PIXELS // 1_000_000} megapixel limit")
                image.draft("L", (WORKING_SIZE, WORKING_SIZE))  # JPEG: decode at reduced size, cheaply
                image.load()
                image = ImageOps.exif_transpose(image)
                image = _flatten_alpha(image).convert("L")
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"refused as a likely decompression bomb ({exc})") from None
    except UnidentifiedImageError:
        raise ImageError("not an image PIL can read (PNG, JPEG, BMP, ...)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"cannot decode the image ({exc}); is it truncated or corrupt?") from None
    image.thumbnail((WORKING_SIZE, WORKING_SIZE), Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.float32)


def _flatten_alpha(image: Image.Image) -> Image.Image:
    """Composite a transparent image onto white paper."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(paper, rgba).convert("RGB")
    return image


def border_level(grey: np.ndarray) -> float:
    """Median grey level of the outer frame (5% of each side, at least one pixel): the background."""
    h, w = grey.shape
    dy, dx = max(1, h // 20), max(1, w // 20)
    frame = np.concatenate([grey[:dy].ravel(), grey[-dy:].ravel(), grey[:, :dx].ravel(), grey[:, -dx:].ravel()])
    return float(np.median(frame))


def to_ink(grey: np.ndarray, invert: str = "auto") -> np.ndarray:
    """Ink intensity 0..1 (1 = darkest stroke of a dark-on-light image), background removed.

    `invert`: "yes" for dark ink on light paper, "no" for light on dark, "auto" decides from the
    border (a light border means dark ink).
    """
    if invert not in INVERT_CHOICES:
        raise ValueError(f"invert must be one of {INVERT_CHOICES}, got {invert!r}")
    background = border_level(grey)
    if invert == "yes" or (invert == "auto" and background > 127.5):
        grey, background = 255.0 - grey, 255.0 - background
    ink = grey - background
    peak = float(ink.max())
    if peak < 8:  # less than ~3% contrast: nothing drawn
        raise ImageError("no digit found (the image is blank or has no contrast with its border)")
    ink = np.clip(ink / peak, 0.0, 1.0)
    ink[ink < 0.1] = 0.0  # paper texture and JPEG noise
    return ink


def fit_digit(ink: np.ndarray) -> np.ndarray:
    """Crop to the digit, scale its bounding box to fit 20x20 keeping the aspect ratio, and centre it
    by its centre of mass in a 28x28 field. Returns uint8 [28, 28], digit light on dark."""
    rows = np.flatnonzero(ink.max(axis=1) > 0)
    cols = np.flatnonzero(ink.max(axis=0) > 0)
    digit = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = digit.shape
    scale = DIGIT_BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    resized = Image.fromarray((digit * 255).astype(np.float32)).resize(size, Image.Resampling.BILINEAR)
    small = np.clip(np.asarray(resized), 0, None)
    small = small * (255.0 / small.max())  # thin strokes fade when shrunk; MNIST's stroke cores are 255

    field = np.zeros((FIELD, FIELD), np.float32)
    top, left = (FIELD - small.shape[0]) // 2, (FIELD - small.shape[1]) // 2
    field[top : top + small.shape[0], left : left + small.shape[1]] = small
    cy, cx = _centre_of_mass(field)
    shift_y, shift_x = round(FIELD / 2 - cy), round(FIELD / 2 - cx)  # MNIST's centre of mass: (14.0, 14.0)
    field = _shift(field, shift_y, shift_x)
    return np.round(field).astype(np.uint8)


def _centre_of_mass(a: np.ndarray) -> tuple[float, float]:
    total = a.sum()
    ys, xs = np.indices(a.shape)
    return float((ys * a).sum() / total), float((xs * a).sum() / total)


def _shift(a: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Translate by whole pixels, filling with zeros (nothing wraps around)."""
    out = np.zeros_like(a)
    h, w = a.shape
    src = a[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)]
    out[max(0, dy) : max(0, dy) + src.shape[0], max(0, dx) : max(0, dx) + src.shape[1]] = src
    return out


def to_mnist(path: str | Path, invert: str = "auto") -> np.ndarray:
    """An image file as one MNIST-style digit: uint8 [28, 28, 1], light digit on black, centred."""
    return fit_digit(to_ink(load_grey(path), invert))[..., None]
