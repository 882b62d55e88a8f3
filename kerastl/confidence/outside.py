"""Pictures outside every class, to measure how often a model answers them: for MNIST, the
Fashion-MNIST test pictures, capital letters that look like no digit (rendered MNIST-style from
the DejaVu fonts matplotlib ships); for Fashion-MNIST, the MNIST test digits; for an image
folder, `--outside FOLDER` (pictures of no class) when given; and for every dataset uniform
noise, blank and all-white pictures (a camera pointed at nothing, or overexposed).

Every set is uint8 pixels of the model's stored shape, seeded, at most `limit` pictures."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from kerastl.data import load_arrays
from kerastl.data.folders import check_image, load_images
from kerastl.digit_image import fit_digit
from kerastl.errors import UserError
from kerastl.log import Log

LETTERS = "ACEFHKMNPRTUVWXY"  # capitals that look like no digit (not B, D, G, I, J, L, O, Q, S, Z)
FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSerif.ttf",
         "DejaVuSerif-Bold.ttf", "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSerif-Italic.ttf")
SYNTHETIC = 1000  # noise pictures per set (blank and white: a few, they are all alike)


def uniform_noise(shape: tuple[int, int, int], count: int = SYNTHETIC, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, *shape), dtype=np.uint8)


def constant(shape: tuple[int, int, int], value: int, count: int = 10) -> np.ndarray:
    return np.full((count, *shape), value, np.uint8)


CALIBRATION_EXTRAS = 10  # noise, blank and white pictures each, added to an int8 file's calibration images


def calibration_extras(shape: tuple[int, int, int]) -> np.ndarray:
    """Pictures of no class for a gated model's full-integer calibration: with digits alone, the
    int8 ranges of the gate's squared norms saturate on far-away pictures and their distances come
    out too small (the default CNN's int8 file answered every blank picture; with these 0 %)."""
    return np.concatenate([uniform_noise(shape, CALIBRATION_EXTRAS, seed=1), constant(shape, 0, CALIBRATION_EXTRAS),
                           constant(shape, 255, CALIBRATION_EXTRAS)])


def letters(count_per_font: int = 1, rotations: tuple[float, ...] = (0.0, -10.0, 10.0)) -> np.ndarray:
    """Capital letters drawn white on black, each fitted MNIST-style (a 20-pixel box centred by its
    centre of mass in 28x28, kerastl.digit_image.fit_digit): [n, 28, 28, 1] uint8."""
    import matplotlib  # deferred, with PIL's drawing: only a run on MNIST draws letters
    from PIL import Image, ImageDraw, ImageFont

    font_dir = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    pictures = []
    for name in FONTS:
        font = ImageFont.truetype(str(font_dir / name), 96)
        for letter in LETTERS:
            canvas = Image.new("L", (160, 160), 0)
            ImageDraw.Draw(canvas).text((30, 10), letter, fill=255, font=font)
            for angle in rotations:
                ink = np.asarray(canvas.rotate(angle, resample=Image.Resampling.BILINEAR), "float32") / 255.0
                pictures.extend([fit_digit(ink)[..., None]] * count_per_font)
    return np.stack(pictures)


def image_folder(folder: str | Path, shape: tuple[int, int, int], limit: int) -> np.ndarray:
    """Every readable picture under `folder` (any depth), decoded and resized as training did."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise UserError(f"--outside: no folder {root}")
    files = sorted(str(p) for p in root.rglob("*") if p.is_file() and check_image(str(p))[0] is not None)[:limit]
    if not files:
        raise UserError(f"--outside: no readable pictures in {root}")
    return load_images(files, shape[:2], shape[2])


def sets_for(dataset: str, shape: tuple[int, int, int], outside_folder: str | None = None, limit: int = 10_000,
             data_dir: str | None = None, log: Log = print) -> dict[str, Callable[[], np.ndarray]]:
    """{name: a function that makes the set} for a run's dataset (made only when measured)."""
    def other(name):
        return lambda: load_arrays(name, data_dir, log=log)["x_test"][:limit]

    common = {"noise": lambda: uniform_noise(shape, min(SYNTHETIC, limit)), "blank": lambda: constant(shape, 0),
              "white": lambda: constant(shape, 255)}
    if dataset == "mnist":
        return {"fashion_mnist": other("fashion_mnist"), "letters": letters, **common}
    if dataset == "fashion_mnist":
        return {"mnist": other("mnist"), **common}
    if outside_folder:
        return {"outside": lambda: image_folder(outside_folder, shape, limit), **common}
    return common
