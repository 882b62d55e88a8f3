"""Small data with `fit`'s defaults: the targets of the small-data issue, measured in one process.

    python benchmarks/small_data.py                       # every case below
    python benchmarks/small_data.py --cases mnist10 --seeds 2

Cases (each `kerastl.run` with no option but the data, unless the case says so):
- mnist10: MNIST `--per-class 10`, 2,000 test images; finetune, cnn, mlp.
- mnist100: MNIST `--per-class 100`, 2,000 test images; finetune, cnn.
- folder40: a photo-like folder of 4 Fashion-MNIST classes (colour JPEGs at 96 px, on coloured
  backgrounds), 40 images a class in train/ and 250 in test/; finetune, cnn.
- folder40-noaug: the same with `augment=False`, to check the digits' augmentation on clothes.
- folder40-levers: the CNN on the same folder stored at 48 px, and trained 3x as long; finetune
  without label smoothing.
- fashion-full-aug: CNN on all of Fashion-MNIST with and without augmentation (about 4 minutes each).
Prints one markdown table (mean ± sd over seeds where there are several) and writes results.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FASHION_CLASSES = {0: "t-shirt", 1: "trouser", 7: "sneaker", 8: "bag"}
CASES = ("mnist10", "mnist100", "folder40", "folder40-noaug", "folder40-levers", "fashion-full-aug")


def photo_like_folder(root: Path, train_per_class: int = 40, test_per_class: int = 250, side: int = 96, seed: int = 0,
                      classes: dict[int, str] = FASHION_CLASSES) -> Path:
    """Fashion-MNIST items as colour photos: upscaled, tinted, on a noisy coloured background, JPEG."""
    from PIL import Image

    from kerastl.data import load_fashion_mnist

    (x_train, y_train), (x_test, y_test) = load_fashion_mnist(log=lambda _: None)
    rng = np.random.default_rng(seed)
    for split, x, y, count in (("train", x_train, y_train, train_per_class), ("test", x_test, y_test, test_per_class)):
        for label, name in classes.items():
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i, index in enumerate(rng.choice(np.flatnonzero(y == label), size=count, replace=False)):
                grey = np.asarray(Image.fromarray(x[index, :, :, 0]).resize((side, side), Image.BICUBIC), "float32") / 255
                item, background = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
                noise = rng.normal(0, 12, (side, side, 3))
                rgb = grey[..., None] * item + (1 - grey[..., None]) * background + noise
                Image.fromarray(np.clip(rgb, 0, 255).astype("uint8")).save(folder / f"{name}{i:04d}.jpg", quality=90)
    return root


def mean_and_spread(values: list[float]) -> str:
    """`90.3 ± 1.5` (mean ± sample standard deviation), or the one value."""
    spread = f" ± {statistics.stdev(values):.1f}" if len(values) > 1 else ""
    return f"{statistics.mean(values):.1f}{spread}"


def runs_for(case: str, seeds: list[int], folder: Path | None) -> list[tuple[str, str, int, dict]]:
    """(case, mode, seed, options) of every run a case makes."""
    if case == "mnist10":
        return [(case, m, s, {"per_class": 10, "test_limit": 2000, "seed": s}) for m in ("finetune", "cnn", "mlp") for s in seeds]
    if case == "mnist100":
        return [(case, m, 0, {"per_class": 100, "test_limit": 2000, "seed": 0}) for m in ("finetune", "cnn")]
    if case in ("folder40", "folder40-noaug"):
        extra = {"augment": False} if case.endswith("noaug") else {}
        return [(case, m, 0, {"dataset": str(folder), **extra}) for m in ("finetune", "cnn")]
    if case == "folder40-levers":
        return [(case, m, 0, {"dataset": str(folder), **extra})
                for m, extra in (("cnn", {"stored_size": 48}), ("cnn", {"epochs": 36}), ("finetune", {"label_smoothing": 0.0}))]
    if case == "fashion-full-aug":
        return [(case, "cnn", 0, {"dataset": "fashion_mnist", "augment": a}) for a in (True, False)]
    raise SystemExit(f"unknown case {case!r}; choose from {', '.join(CASES)}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", nargs="+", default=list(CASES))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="seeds of mnist10")
    p.add_argument("--output", default="small_data_results.json")
    args = p.parse_args()

    import keras

    import kerastl

    work = Path(tempfile.mkdtemp(prefix="kerastl-small-data-"))
    folder = photo_like_folder(work / "clothes") if any(c.startswith("folder") for c in args.cases) else None
    rows = []
    for case, mode, seed, options in [r for c in args.cases for r in runs_for(c, args.seeds, folder)]:
        start = time.perf_counter()
        run = kerastl.run(mode, output_dir=str(work / "runs"), log=lambda _: None, **options)
        seconds = time.perf_counter() - start
        m = run.metrics
        rows.append({"case": case, "mode": mode, "seed": seed, "options": options, "test_accuracy": m["test_accuracy"],
                     "test_images": m["test_images"], "train_images": m["train_images"], "seconds": round(seconds, 1),
                     "schedule": m["schedule"], "epochs_run": m["epochs_run"], "img_size": m.get("img_size")})
        print(f"{case} {mode} seed {seed} {options.get('augment', '')}: {100 * m['test_accuracy']:.2f} % in {seconds:.0f} s "
              f"(schedule {m['schedule']}, epochs run {m['epochs_run']})", flush=True)
        keras.backend.clear_session()
    Path(args.output).write_text(json.dumps(rows, indent=2) + "\n")

    print("\n| case | mode | options | runs | test accuracy % | seconds (median) | train images | batch | epochs run |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        options = {k: v for k, v in row["options"].items() if k not in ("seed", "dataset", "per_class", "test_limit")}
        groups.setdefault((row["case"], row["mode"], ", ".join(f"{k}={v}" for k, v in options.items()) or "defaults"), []).append(row)
    for (case, mode, options), group in groups.items():
        acc = [100 * r["test_accuracy"] for r in group]
        print(f"| {case} | {mode} | {options} | {len(group)} | {mean_and_spread(acc)} | "
              f"{statistics.median(r['seconds'] for r in group):.0f} | {group[0]['train_images']} | "
              f"{group[0]['schedule']['batch_size']} | {group[0]['epochs_run']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
