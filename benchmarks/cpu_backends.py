"""Time the CPU main job's fine-tuning epoch on TensorFlow, JAX and PyTorch, side by side.

    python benchmarks/cpu_backends.py                    # all three, defaults below
    python benchmarks/cpu_backends.py --backends tensorflow,jax --epochs 4
    python benchmarks/cpu_backends.py --limit 0 --test-limit 0 --epochs 4   # the whole CPU main job

Each backend runs `python -m kerastl.fit --mode finetune --limit 3000` (the CPU config: 40 px,
batch 128, 2,700 training and 300 validation images) in its own process, one after another, with
`--epochs` fine-tuning epochs. The first epoch of a stage includes compiling the step (XLA on JAX);
later epochs are steady, and their median is compared. Timings on a shared machine are noisy:
compare the ratios of one run, and run it again before trusting a small difference. The CPU-seconds
each run used (user + system) depend less on what else runs than the wall time does.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ("tensorflow", "jax", "torch")


def run_backend(backend: str, epochs: int, limit: int, test_limit: int, out: Path) -> dict:
    argv = [
        sys.executable, "-m", "kerastl.fit", "--mode", "finetune", "--head-epochs", "1", "--epochs", str(epochs),
        "--output-dir", str(out), "--run-name", backend,
        *(["--limit", str(limit)] if limit else []), *(["--test-limit", str(test_limit)] if test_limit else []),
    ]
    start, cpu_start = time.perf_counter(), _children_cpu_seconds()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "KERAS_BACKEND": backend})
    wall, cpu = time.perf_counter() - start, _children_cpu_seconds() - cpu_start
    if done.returncode:
        return {"backend": backend, "error": (done.stderr.strip().splitlines() or ["exit %d" % done.returncode])[-1]}
    metrics = json.loads((out / backend / "metrics.json").read_text())
    epochs_s = metrics["epoch_seconds"]["finetune"]
    steady = statistics.median(epochs_s[1:]) if len(epochs_s) > 1 else epochs_s[0]
    return {
        "backend": backend,
        "head_epoch": metrics["epoch_seconds"]["head"][0],
        "first_epoch": epochs_s[0],
        "steady_epoch": steady,
        "images_per_second": metrics["train_images"] / steady,
        "wall": wall,
        "cpu": cpu,
        "test_accuracy": metrics["test_accuracy"],
        "test_images": metrics["test_images"],
    }


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def table(rows: list[dict]) -> str:
    tf = next((r for r in rows if r["backend"] == "tensorflow" and "error" not in r), None)
    lines = [
        "| backend | head epoch (s) | 1st fine-tune epoch, incl. compile (s) | later epochs, median (s) | images/s | x TensorFlow | "
        "whole run (s) | whole run, CPU-seconds | x TensorFlow | test accuracy |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['backend']} | failed: {r['error']} | | | | | | | | |")
            continue
        ratio = f"{r['steady_epoch'] / tf['steady_epoch']:.1f}" if tf else "-"
        cpu_ratio = f"{r['cpu'] / tf['cpu']:.1f}" if tf else "-"
        lines.append(
            f"| {r['backend']} | {r['head_epoch']:.1f} | {r['first_epoch']:.1f} | {r['steady_epoch']:.1f} | "
            f"{r['images_per_second']:.0f} | {ratio} | {r['wall']:.0f} | {r['cpu']:.0f} | {cpu_ratio} | "
            f"{100 * r['test_accuracy']:.2f} % ({r['test_images']}) |"
        )
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backends", default=",".join(BACKENDS))
    p.add_argument("--epochs", type=int, default=3, help="fine-tuning epochs per backend (the first includes compiling)")
    p.add_argument("--limit", type=int, default=3000, help="training images (0: all, the CPU main job)")
    p.add_argument("--test-limit", type=int, default=1000, help="test images scored at the end (0: all 10,000)")
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="kerastl-cpu-bench-") as tmp:
        for backend in args.backends.split(","):
            print(f"[cpu_backends] {backend} ...", flush=True)
            rows.append(run_backend(backend, args.epochs, args.limit, args.test_limit, Path(tmp)))
    print(f"\nfinetune --limit {args.limit or 'all'}, {args.epochs} fine-tuning epoch(s), {os.cpu_count()} CPU cores "
          f"(load average at the end {os.getloadavg()[0]:.1f}; timings on a shared machine are noisy)\n")
    print(table(rows))
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
