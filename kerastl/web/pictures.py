"""A picture sent to a page: checked as an image folder's pictures are, made into a file for the
decoders that read files, and shown back as a data URL."""

from __future__ import annotations

import base64
import contextlib
import io
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from kerastl.data.folders import EXTENSIONS, check_image

MAX_UPLOAD = 20 * 1024 * 1024  # bytes; kerastl's 40-megapixel limit refuses larger pictures after decoding anyway
FORMAT_EXTENSIONS = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "BMP": ".bmp", "GIF": ".gif"}


class PictureError(ValueError):
    """A body that is not a usable picture; the message says why."""


def checked(picture: bytes) -> str:
    """The file extension of a usable picture (".png", ".jpg", ...); PictureError otherwise.

    The checks of kerastl.data.folders.check_image: a JPEG, PNG, BMP or GIF that decodes whole,
    at most 40 megapixels (a decompression bomb is refused before it is decoded), 8 bits.
    """
    from PIL import Image

    if not picture:
        raise PictureError("the picture is empty")
    info, reason = check_image(io.BytesIO(picture))
    if info is None:
        raise PictureError(reason)
    with Image.open(io.BytesIO(picture)) as image:
        extension = FORMAT_EXTENSIONS[image.format]
    assert extension in EXTENSIONS
    return extension


@contextlib.contextmanager
def as_file(picture: bytes, prefix: str = "kerastl-page-") -> Iterator[Path]:
    """The picture written to a temporary file (removed afterwards), for decoders that read files."""
    with tempfile.TemporaryDirectory(prefix=prefix) as folder:
        path = Path(folder) / "picture"
        path.write_bytes(picture)
        yield path


def png_data_url(pixels: np.ndarray) -> str:
    """uint8 pixels [height, width, channels] as a `data:image/png;base64,...` URL."""
    from PIL import Image

    array = np.asarray(pixels, dtype=np.uint8)
    image = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
