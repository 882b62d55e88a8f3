"""Training on a folder of images: is reading the files the bottleneck, and does memory grow with the folder?

    python benchmarks/image_folder.py [--sizes 5000,20000] [--epochs 12] [--keep DIR]

Fashion-MNIST's training images are written out as PNG files, one subfolder per class (what a user's
own folder looks like), at each size in `--sizes`. For each folder the script measures, each in its
own process:
- the scan (every file opened and decoded once with Pillow to find broken ones), images/s;
- the input pipeline alone: one epoch of kerastl's tf.data pipeline over the training split without
  a model (parallel decode, resize, batching), then a second epoch read from the on-disk cache;
- `python -m kerastl.fit --mode cnn --dataset FOLDER --epochs 1`: training images/s of the first
  epoch (which also fills the cache) and the peak resident memory of the whole process.
Then it trains the CNN with its default config (`--epochs`) on the largest folder and prints the
commands and the figures for the README's "Your own images" section.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def write_folder(root: Path, count: int) -> Path:
    """The first `count` Fashion-MNIST training images as PNG files, class-balanced by their order."""
    from PIL import Image

    from kerastl.data import DATASETS, load_arrays

    arrays = load_arrays("fashion_mnist", log=lambda _: None)
    names = [name.replace("/", "-") for name in DATASETS["fashion_mnist"].class_names]
    for name in names:
        (root / name).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(arrays["x_train"][i, ..., 0]).save(root / names[arrays["y_train"][i]] / f"{i:05d}.png")
    return root


PIPELINE = """
import json, sys, time
import numpy as np
from kerastl.data import folders
from kerastl.data.pipeline import make_dataset
start = time.perf_counter()
data = folders.scan(sys.argv[1], log=lambda _: None)
scan = time.perf_counter() - start
x, y = data.images("train").cached_at(sys.argv[2]), data.labels("train")
ds = make_dataset(x, y, 128, shuffle=True, seed=0)
seconds = []
for epoch in range(2):
    start = time.perf_counter()
    n = sum(int(batch[1].shape[0]) for batch in ds)
    seconds.append(time.perf_counter() - start)
images = int(sum(len(data.labels(s)) for s in ("train", "val", "test")))
print(json.dumps({"images": images, "scan_s": scan, "train_images": n, "epoch_s": seconds}))
"""


def pipeline_alone(folder: Path, cache: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", PIPELINE, str(folder), str(cache)], cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"pipeline run failed: {done.stderr.strip().splitlines()[-1]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def fit_run(folder: Path, out: Path, name: str, *extra: str) -> dict:
    """`kerastl.fit --mode cnn` on the folder; its metrics and the process's peak memory (MiB)."""
    argv = [sys.executable, "-m", "kerastl.fit", "--mode", "cnn", "--dataset", str(folder), "--output-dir", str(out),
            "--run-name", name, *extra]
    start = time.perf_counter()
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if status:
        raise SystemExit(f"fit failed:\n{output[-2000:]}")
    metrics = json.loads((out / name / "metrics.json").read_text())
    return {"metrics": metrics, "peak_mib": usage.ru_maxrss / 1024, "wall_s": wall}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="5000,20000", help="images per folder, comma-separated")
    p.add_argument("--epochs", type=int, default=None, help="epochs of the final CNN run (default: configs/cnn.yaml)")
    p.add_argument("--keep", help="write the folders here and keep them (default: a temporary folder)")
    args = p.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="kerastl-folder-bench-") as tmp:
        base = Path(args.keep or tmp)
        rows = []
        for size in sizes:
            folder = base / f"fashion-{size}"
            start = time.perf_counter()
            if not folder.exists():
                write_folder(folder, size)
            print(f"[image_folder] {size:,} PNG files in {folder} ({time.perf_counter() - start:.0f} s to write)", flush=True)
            alone = pipeline_alone(folder, Path(tmp) / f"cache-{size}")
            one = fit_run(folder, Path(tmp) / "runs", f"one-epoch-{size}", "--epochs", "1")
            train_s = one["metrics"]["epoch_seconds"]["train"][0]
            rows.append({
                "images": size, "scan_images_per_s": alone["images"] / alone["scan_s"],
                "pipeline_images_per_s": alone["train_images"] / alone["epoch_s"][0],
                "cached_images_per_s": alone["train_images"] / alone["epoch_s"][1],
                "train_images_per_s": one["metrics"]["train_images"] / train_s,
                "peak_mib": one["peak_mib"], "accuracy_1_epoch": one["metrics"]["test_accuracy"],
            })
            print(f"[image_folder] {json.dumps(rows[-1])}", flush=True)
        largest = base / f"fashion-{max(sizes)}"
        final = fit_run(largest, base / "runs" if args.keep else Path(tmp) / "runs", "cnn-default",
                        *(["--epochs", str(args.epochs)] if args.epochs else []))
    print(f"\n{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}; one run each\n")
    print("| images in the folder | scan (Pillow check), images/s | pipeline alone, 1st epoch (decode), images/s | "
          "pipeline alone, from the cache, images/s | CNN training, 1st epoch, images/s | peak memory of `fit` (MiB) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['images']:,} | {r['scan_images_per_s']:,.0f} | {r['pipeline_images_per_s']:,.0f} | "
              f"{r['cached_images_per_s']:,.0f} | {r['train_images_per_s']:,.0f} | {r['peak_mib']:,.0f} |")
    m = final["metrics"]
    print(f"\nCNN, default config, on {max(sizes):,} Fashion-MNIST PNGs ({m['train_images']:,}/{m['validation_images']:,}/"
          f"{m['test_images']:,} train/val/test): test accuracy {100 * m['test_accuracy']:.2f} %, "
          f"{sum(m['epochs_run'].values())} epochs, {m['train_seconds']:.0f} s training, {final['wall_s']:.0f} s in all, "
          f"peak memory {final['peak_mib']:,.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
