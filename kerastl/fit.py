"""`python -m kerastl.fit --mode MODE`: train a model and write its run folder.

A thin wrapper over `kerastl.run` (kerastl.api): each flag is one of its keywords. Flags override
the mode's YAML config in configs/; the resolved config is saved with the run.
"""

from __future__ import annotations

import argparse
import sys

from kerastl.cli import EXIT_INTERRUPTED, OneLineParser, run_cli
from kerastl.config import DEFAULTS, MODES, OPTIONS

PROG = "kerastl.fit"
EXIT_ACCURACY_DROP = 1  # --export: a file lost accuracy (as `kerastl.export` exits)
EXIT_EXPORT_FAILED = 3


def learning_rate(text: str) -> float | str:
    """A number, or "find" (kerastl.lr_find sweeps for the rate)."""
    if text == "find":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'find', got {text!r}") from None


def build_parser() -> OneLineParser:
    """One flag per keyword of `kerastl.run` (tests/test_api.py checks they stay the same)."""
    p = OneLineParser(prog=PROG, description="Train an MLP, a CNN or a pretrained backbone on MNIST.")
    p.add_argument("--mode", help=f"one of {', '.join(MODES)} (default: finetune; with --resume: the run's)")
    p.add_argument("--config", help="YAML config (default: configs/<mode>.yaml)")
    p.add_argument("--dataset", help="mnist, fashion_mnist, or a folder of images with one subfolder per class")
    p.add_argument("--data-dir", help="folder with the four IDX files, used instead of the download sources")
    p.add_argument("--epochs", type=int, help="epochs (finetune/partial: of the fine-tuning stage)")
    p.add_argument("--head-epochs", type=int, help="finetune/partial: epochs of the head-only stage")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=learning_rate, help="learning rate (finetune/partial: of the head stage), or 'find': "
                   "sweep for one before each stage that trains (kerastl.lr_find)")
    p.add_argument("--finetune-lr", type=learning_rate, help="learning rate of the fine-tuning stage, or 'find' (default: "
                   "the config's, lr/10 if it sets none; 'find' when --lr find)")
    p.add_argument("--lr-schedule", help="constant, or cosine decay after a 10 %% warm-up")
    p.add_argument("--limit", type=int, help="train on a seeded subset of N training images")
    p.add_argument("--per-class", type=int, help="train on N labelled images per class, balanced and seeded (10 %% of them validate)")
    p.add_argument("--test-limit", type=int, help="score only the first N test images (smoke tests)")
    p.add_argument("--min-steps", type=int, help="optimiser steps each stage takes at least: a small training set gets a "
                   "smaller batch and more epochs (default 300; 0: epochs as configured)")
    p.add_argument("--max-epochs", type=int, help="no stage trains more epochs than N (default 40)")
    p.add_argument("--seed", type=int)
    p.add_argument("--backbone", help="efficientnet_lite0, resnet18, resnet50, mobilenet_v2, or hub:PRESET (a keras-hub preset name or folder)")
    p.add_argument("--weights", help="imagenet, none, or a .weights.h5 / .pth file")
    p.add_argument("--img-size", type=int, help="backbone input size (default: native on a GPU, smaller on a CPU)")
    p.add_argument("--image-size", type=int, help="image folders: side of the stored images (default: their own size, 64 if mixed)")
    p.add_argument("--unfreeze", type=int, help="partial: blocks to train, counted from the top")
    p.add_argument("--precision", help="auto, float32, mixed_bfloat16 or mixed_float16")
    p.add_argument("--distribute", help="auto (every local accelerator when there are several) or off")
    p.add_argument("--devices", type=int, help="data-parallel over N devices per process (also CPU devices)")
    p.add_argument("--output-dir", help=f"where run folders go (default: {DEFAULTS['output_dir']})")
    p.add_argument("--run-name", help="run folder name (default: <mode>-<dataset>-<time>)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run (--run-name, else the newest unfinished one of --mode) "
                        "with its recorded config")
    p.add_argument("--export", action="store_true", default=None, help="export SavedModel and TFLite afterwards")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="random shifts, rotations and zooms of the training images (never flips)")
    p.add_argument("--label-smoothing", type=float, help="share of each label spread over the other classes (0-1)")
    p.add_argument("--tensorboard", action="store_true", default=None, help="log to <run>/tensorboard for TensorBoard")
    return p


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from kerastl.api import run_with_options  # imports Keras: after parsing, so --help is instant
    from kerastl.errors import RunInterrupted
    from kerastl.export import ExportFailed

    options = {name: getattr(args, name) for name in OPTIONS}
    try:
        run = run_with_options(args.mode, args.config, options, args.resume, log=print)
    except RunInterrupted as exc:
        output_dir = f" --output-dir {exc.run_dir.parent}" if args.output_dir else ""
        print(f"\n{PROG}: interrupted; finished epochs are kept in {exc.run_dir}. Continue with: "
              f"python -m kerastl.fit --mode {exc.mode} --resume --run-name {exc.run_dir.name}{output_dir}",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except ExportFailed as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_EXPORT_FAILED
    if run.export_report is not None:
        from kerastl.export.cli import report_outcome

        return report_outcome(PROG, run.export_report, run.folder, allow_drop=False)
    return 0


def cli() -> int:
    return run_cli(PROG, main)


if __name__ == "__main__":
    sys.exit(cli())
