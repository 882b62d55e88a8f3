"""A folder of Fashion-MNIST pictures with known problems planted in it, for `kerastl.inspect`'s
tests and its benchmark (benchmarks/data_health.py).

    ROOT/train/<class>/*.png   `per_class` training pictures a class (Fashion-MNIST's train split)
    ROOT/test/<class>/*.png    `test_per_class` test pictures a class (its test split)

Planted: `copies` test pictures copied byte for byte into train/ (same class, new name);
`reencoded` more test pictures saved into train/ as JPEG at another size, a little brighter and
shifted by 1-2 px; `moved` training pictures moved into another class's folder.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Fashion-MNIST label -> folder name: four classes a person tells apart at a glance
CLASSES = {0: "T-shirt_top", 1: "Trouser", 7: "Sneaker", 8: "Bag"}


@dataclass
class Planted:
    root: Path
    copies: list[tuple[str, str]] = field(default_factory=list)  # (train copy, test original), relative paths
    reencoded: list[tuple[str, str]] = field(default_factory=list)  # (train re-encoding, test original)
    moved: list[tuple[str, str]] = field(default_factory=list)  # (its path now, its true class)


def build(root: Path, arrays: dict, per_class: int = 100, test_per_class: int = 50, copies: int = 8,
          reencoded: int = 8, moved: int = 12, seed: int = 0) -> Planted:
    """Write the folder under `root` from Fashion-MNIST's arrays (kerastl.data.load_arrays)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    planted = Planted(Path(root))
    written: dict[str, list[str]] = {"train": [], "test": []}
    for split, count in (("train", per_class), ("test", test_per_class)):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        for label, name in CLASSES.items():
            folder = planted.root / split / name
            folder.mkdir(parents=True)
            for index in rng.choice(np.flatnonzero(y == label), count, replace=False):
                path = folder / f"{split}{int(index):05d}.png"
                Image.fromarray(x[index, :, :, 0]).save(path)
                written[split].append(str(path.relative_to(planted.root)))
    chosen = rng.choice(written["test"], copies + reencoded, replace=False)
    for i, original in enumerate(chosen):
        class_folder = planted.root / "train" / Path(original).parent.name
        if i < copies:
            copy = class_folder / f"copy{i:02d}.png"
            shutil.copyfile(planted.root / original, copy)
            planted.copies.append((str(copy.relative_to(planted.root)), str(original)))
        else:
            copy = class_folder / f"reencoded{i:02d}.jpg"
            _reencode(planted.root / original, copy, rng)
            planted.reencoded.append((str(copy.relative_to(planted.root)), str(original)))
    names = list(CLASSES.values())
    for i, path in enumerate(rng.choice(written["train"], moved, replace=False)):
        true_class = Path(path).parent.name
        wrong = names[(names.index(true_class) + 1 + i % (len(names) - 1)) % len(names)]
        target = planted.root / "train" / wrong / Path(path).name
        shutil.move(planted.root / path, target)
        planted.moved.append((str(target.relative_to(planted.root)), true_class))
    return planted


def _reencode(source: Path, target: Path, rng: np.random.Generator) -> None:
    """Another size (34-40 px), 8-12 % brighter, shifted 1-2 px right and down, saved as JPEG."""
    from PIL import Image

    pixels = np.asarray(Image.open(source), dtype="float32")
    dx, dy = (int(v) for v in rng.integers(1, 3, 2))
    shifted = np.zeros_like(pixels)
    shifted[dy:, dx:] = pixels[:-dy, :-dx]
    brighter = np.clip(shifted * rng.uniform(1.08, 1.12) + 4, 0, 255).astype("uint8")
    side = int(rng.integers(34, 41))
    Image.fromarray(brighter).resize((side, side), Image.BILINEAR).convert("RGB").save(target, quality=90)
