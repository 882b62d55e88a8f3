"""The per-block probe on MNIST and on Fashion-MNIST in one figure (ImageNet vs random weights).

    python benchmarks/probe_two_datasets.py [MNIST_EXPLAIN_DIR FASHION_EXPLAIN_DIR] [--output FILE]

Without folders it runs `kerastl.explain` (quick budget, no check run) on both datasets first.
Prints each dataset's best block and its accuracy, and writes the figure (default
probe_mnist_vs_fashion.png).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="*", help="two kerastl.explain folders: MNIST's, then Fashion-MNIST's")
    p.add_argument("--output", default="probe_mnist_vs_fashion.png")
    args = p.parse_args()
    import kerastl
    from kerastl.explanation import figures, probe, report

    folders = [Path(f) for f in args.folders]
    if not folders:
        root = Path(tempfile.mkdtemp(prefix="probe-"))
        folders = [kerastl.explain(dataset=d, output_dir=root / d, check=False) for d in ("mnist", "fashion_mnist")]
    lines = {name: probe.read_csv(folder / probe.PROBE_CSV) for name, folder in zip(("MNIST", "Fashion-MNIST"), folders)}
    first = next(iter(lines.values()))
    n_train, n_test = first[0].train_images, first[0].test_images
    figures.probe_by_dataset(lines, Path(args.output), "Linear probe after every block of EfficientNet-Lite0 (64 px): digits vs "
                             f"clothes\n{n_train:,} training / {n_test:,} test images each; each block's output global-average-pooled")
    for name, rows in lines.items():
        best = report.best_block(rows)
        top = [r for r in rows if r.weights == probe.IMAGENET][-1]
        print(f"{name}: best after {best.block} ({100 * best.test_accuracy:.1f} %), top {100 * top.test_accuracy:.1f} %")
    print(f"figure: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
