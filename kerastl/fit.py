"""`python -m kerastl.fit --mode MODE`: train a model and write its run folder.

The command line of `kerastl.run` (kerastl.api): each flag is one of its keywords, both made from
kerastl.config.SCHEMA. Flags override the mode's YAML config in configs/; the resolved config is
saved with the run.
"""

from __future__ import annotations

import argparse
import sys

from kerastl.cli import EXIT_EXPORT_FAILED, EXIT_INTERRUPTED, OneLineParser, run_cli
from kerastl.config import MODES, OPTIONS, RENAMED, SCHEMA
from kerastl.errors import ExportFailed, RunInterrupted
from kerastl.export.cli import report_outcome

PROG = "kerastl.fit"


def number_or_word(text: str) -> float | str:
    """A flag that takes a number or a word (`--lr 3e-4`, `--lr find`): the schema's check decides
    which words it allows."""
    try:
        return float(text)
    except ValueError:
        return text


class RenamedFlag(argparse.Action):
    """An old flag name (config.RENAMED): sets the new option and says so in one line on stderr."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{PROG}: warning: {option_string} is now called --{self.dest.replace('_', '-')}; "
              "the old name will go in a later version", file=sys.stderr)
        setattr(namespace, self.dest, values)


def build_parser() -> OneLineParser:
    """`--mode`, `--config`, `--resume`, and one flag per option of kerastl.config.SCHEMA (the
    keywords of `kerastl.run`), with its meaning as the help."""
    p = OneLineParser(prog=PROG, description="Train an MLP, a CNN or a pretrained backbone on MNIST or your own images.")
    p.add_argument("--mode", help=f"one of {', '.join(MODES)} (default: finetune; with --resume: the run's)")
    p.add_argument("--config", help="YAML config (default: configs/<mode>.yaml)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run (--run-name, else the newest unfinished one of --mode) "
                        "with its recorded config")
    for name in OPTIONS:
        key = SCHEMA[name]
        flag, meaning = f"--{name.replace('_', '-')}", key.meaning.replace("%", "%%")
        if key.types == (bool,):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=meaning)
        else:
            kind = (int if key.types == (int,) else number_or_word if str in key.types and float in key.types
                    else float if float in key.types else str)
            metavar = {int: "N", float: "X", number_or_word: "X"}.get(kind, name.split("_")[-1].upper())
            p.add_argument(flag, type=kind, metavar=metavar, help=meaning)
    for old, new in RENAMED.items():
        p.add_argument(f"--{old.replace('_', '-')}", dest=new, type=SCHEMA[new].types[0], action=RenamedFlag, help=argparse.SUPPRESS)
    return p


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from kerastl.api import run_with_options  # imports Keras: after parsing, so --help is instant

    options = {name: getattr(args, name) for name in OPTIONS}
    try:
        run = run_with_options(args.mode, args.config, options, args.resume, log=print)
    except RunInterrupted as exc:
        output_dir = f" --output-dir {exc.run_dir.parent}" if args.output_dir else ""
        print(f"\n{PROG}: interrupted; finished epochs are kept in {exc.run_dir}. Continue with: "
              f"python -m kerastl.fit --mode {exc.mode} --resume --run-name {exc.run_dir.name}{output_dir}",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:  # before the run's folder was made
        print(f"\n{PROG}: interrupted before training began; nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ExportFailed as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_EXPORT_FAILED
    if run.export_report is not None:
        return report_outcome(PROG, run.export_report, run.folder, allow_drop=False)
    return 0


def cli() -> int:
    return run_cli(PROG, main)


if __name__ == "__main__":
    sys.exit(cli())
