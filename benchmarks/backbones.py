"""EfficientNet-Lite0, Lite1 and Lite2 side by side, so a practitioner can choose (the README's table).

    python benchmarks/backbones.py [--seeds 0 1] [--output backbones_results.json]

For each backbone: its parameters without the ImageNet head, the size of its ImageNet weights file,
the CPU latency of one picture through the backbone and a Dense(10) head in Keras
(`predict_on_batch`, batch 1, median of 50 calls after 5 warm-up calls, at the small-data input
size, 96 px, and at its native size; `--latency-only` measures just these, for a quiet machine), and
the test accuracy of `fit --mode finetune` with no option but the data (the small-data defaults):
- MNIST `--per-class 10` (100 training pictures), 2,000 test images, over `--seeds`;
- the photo-like folder of 4 Fashion-MNIST classes of benchmarks/small_data.py (40 a class in
  train/, 250 in test/).
Prints one markdown table and writes the rows as JSON.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from small_data import mean_and_spread  # noqa: E402  (benchmarks/small_data.py)

LITES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


def latency_ms(name: str, size: int) -> float:
    import keras

    from kerastl.backbones import build_backbone

    backbone = build_backbone(name, size, "none", log=lambda _: None)
    model = keras.Sequential([backbone, keras.layers.Dense(10, activation="softmax")])
    x = np.random.default_rng(0).random((1, size, size, 3), dtype=np.float32)
    for _ in range(5):
        model.predict_on_batch(x)  # the first call compiles
    times = []
    for _ in range(50):
        start = time.perf_counter()
        model.predict_on_batch(x)
        times.append(time.perf_counter() - start)
    keras.backend.clear_session()
    return 1000 * statistics.median(times)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--output", default="backbones_results.json")
    p.add_argument("--latency-only", action="store_true", help="only the latencies (seconds, not minutes)")
    args = p.parse_args()

    import keras

    import kerastl
    from kerastl.backbones import build_backbone
    from kerastl.backbones.registry import BACKBONES
    from kerastl.backbones.weights import packaged_pth
    from small_data import photo_like_folder

    work = Path(tempfile.mkdtemp(prefix="kerastl-backbones-"))
    folder = None if args.latency_only else photo_like_folder(work / "clothes")
    rows = []
    for name in LITES:
        spec = BACKBONES[name]
        backbone = build_backbone(name, 96, "none", log=lambda _: None)
        row = {"backbone": name, "native_size": spec.input_size, "parameters": backbone.count_params(),
               "weights_mb": packaged_pth(spec.imagenet, name).stat().st_size / 1e6,
               "latency_ms_96": latency_ms(name, 96), "latency_ms_native": latency_ms(name, spec.input_size)}
        keras.backend.clear_session()
        if args.latency_only:
            print(f"{name}: {row['latency_ms_96']:.1f} ms at 96 px, {row['latency_ms_native']:.1f} ms at {spec.input_size} px", flush=True)
            continue
        runs = {}
        for case, options in [(f"mnist10-seed{s}", {"per_class": 10, "test_limit": 2000, "seed": s}) for s in args.seeds] + [
                ("folder40", {"dataset": str(folder)})]:
            start = time.perf_counter()
            run = kerastl.run("finetune", backbone=name, output_dir=str(work / "runs"), log=lambda _: None, **options)
            runs[case] = {"test_accuracy": run.metrics["test_accuracy"], "seconds": round(time.perf_counter() - start, 1),
                          "img_size": run.metrics["img_size"]}
            print(f"{name} {case}: {100 * runs[case]['test_accuracy']:.2f} % in {runs[case]['seconds']:.0f} s", flush=True)
            keras.backend.clear_session()
        row["runs"] = runs
        rows.append(row)
    if args.latency_only:
        return 0
    Path(args.output).write_text(json.dumps(rows, indent=2) + "\n")

    print("\n| backbone | native size | parameters | weights file | latency, 96 px | latency, native | MNIST 10 a class | "
          "4 clothes classes, 40 a class |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        mnist = [100 * r["test_accuracy"] for case, r in row["runs"].items() if case.startswith("mnist10")]
        seconds = [r["seconds"] for case, r in row["runs"].items() if case.startswith("mnist10")]
        folder_run = row["runs"]["folder40"]
        print(f"| {row['backbone']} | {row['native_size']} px | {row['parameters'] / 1e6:.2f} M | {row['weights_mb']:.1f} MB | "
              f"{row['latency_ms_96']:.1f} ms | {row['latency_ms_native']:.1f} ms | {mean_and_spread(mnist)} % "
              f"({statistics.median(seconds):.0f} s) | {100 * folder_run['test_accuracy']:.1f} % ({folder_run['seconds']:.0f} s) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
