"""`python -m kerastl.explain` (or `kerastl-explain`): the command line of `kerastl.explain(...)`.

    python -m kerastl.explain [RUN_DIR] [--backbone NAME|hub:PRESET] [--dataset mnist|fashion_mnist|FOLDER]
                              [--budget quick|full] [--output-dir DIR]
"""

from __future__ import annotations

import shlex
import sys

from kerastl.backbones.registry import names as backbone_names
from kerastl.cli import OneLineParser, run_cli

PROG = "kerastl.explain"


def parse_args(argv=None):
    p = OneLineParser(prog=PROG, description="Why transfer works, measured: a linear probe after every block of a backbone "
                      "(ImageNet vs random vs a run's fine-tuned weights), what it sees, embeddings and saliency.")
    p.add_argument("run", nargs="?", metavar="RUN_DIR", help="a finished feature/finetune/partial run: its backbone, data, "
                   "input size and fine-tuned weights are explained")
    p.add_argument("--backbone", help=f"{backbone_names()} or hub:PRESET (default: efficientnet_lite0)")
    p.add_argument("--dataset", help="mnist (default), fashion_mnist or a folder of images with one subfolder per class")
    p.add_argument("--budget", choices=("quick", "full"), help="quick (default: 1,000 training / 2,000 test images at 64 px, "
                   "minutes on a CPU) or full (5,000 / 10,000 at 96 px)")
    p.add_argument("--train-images", type=int, help="the probe's training images (default: the budget's)")
    p.add_argument("--test-images", type=int, help="test images scored (default: the budget's)")
    p.add_argument("--no-check", action="store_true", help="skip the short partial run that checks the advice on --unfreeze")
    p.add_argument("--output-dir", help="the folder to write (default: saved_models/explain-<dataset>-<time>); must be new or empty")
    return p.parse_args(argv)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    from kerastl.explanation import explain  # imports Keras: after parsing, so --help is instant

    explain(args.run, backbone=args.backbone, dataset=args.dataset, budget=args.budget or "quick", output_dir=args.output_dir,
            train_images=args.train_images, test_images=args.test_images, check=not args.no_check,
            command=shlex.join(["python", "-m", PROG, *argv]))
    return 0


def cli() -> int:
    return run_cli(PROG, main)

