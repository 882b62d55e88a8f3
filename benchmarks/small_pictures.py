"""What stored size suits pictures smaller than the CNN can see: scikit-learn's 8x8 digits (1,797
pictures, bundled with scikit-learn, offline) written as a folder of PNG files, `fit --mode cnn`
at stored sizes 8 (their own), 16 and 32, against the floor (a linear model on the raw pixels,
which `fit` records). Run: python benchmarks/small_pictures.py [SIZES...]"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_digits(root: Path) -> Path:
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for i, (image, label) in enumerate(zip(digits.images, digits.target)):
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.round(image * 255 / 16).astype("uint8")).save(folder / f"{i:04d}.png")
    return root


def main(sizes: list[int]) -> None:
    import kerastl

    tmp = Path(tempfile.mkdtemp())
    root = write_digits(tmp / "digits8x8")
    print("| stored size | CNN test accuracy | raw-pixel floor | wall time |")
    print("| --- | ---: | ---: | ---: |")
    for size in sizes:
        start = time.perf_counter()
        options = {} if size == 0 else {"stored_size": size}
        run = kerastl.run(mode="cnn", dataset=str(root), output_dir=str(tmp / "runs"), log=lambda _: None, **options)
        m = run.metrics
        print(f"| {m['image_shape'][0]} | {100 * m['test_accuracy']:.1f} % | {100 * m['pixel_floor_accuracy']:.1f} % | "
              f"{time.perf_counter() - start:.0f} s |", flush=True)


if __name__ == "__main__":
    main([int(v) for v in sys.argv[1:]] or [8, 16, 32])
