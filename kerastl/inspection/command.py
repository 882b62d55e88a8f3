"""`python -m kerastl.inspect DATASET [--output-dir DIR]` (or `kerastl-inspect`): the command line of
`kerastl.inspect(...)`."""

from __future__ import annotations

from kerastl.cli import OneLineParser, run_cli

PROG = "kerastl.inspect"


def parse_args(argv=None):
    p = OneLineParser(prog=PROG, description="Check a dataset before training: copies across train and test, near copies, "
                      "pictures in the wrong class folder, broken and odd files, lopsided classes, and the accuracy a "
                      "linear model reaches. Never changes the dataset.")
    p.add_argument("dataset", metavar="DATASET", help="mnist, fashion_mnist, or a folder of images with one subfolder per "
                   "class (or train/, val/, test/ folders of them)")
    p.add_argument("--output-dir", help="the folder to write (default: saved_models/inspect-<dataset>-<time>); must be new or empty")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from kerastl.inspection import inspect  # imports Keras: after parsing, so --help is instant

    inspect(args.dataset, output_dir=args.output_dir)
    return 0


def cli() -> int:
    return run_cli(PROG, main)
