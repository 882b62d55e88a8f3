"""`python -m kerastl.compare` (or `kerastl-compare`): the command line of `kerastl.compare`.

Trains the contenders at several labelled-data sizes and seeds (each an ordinary `kerastl.fit`
run folder inside the study folder), then writes `results.json`, `results.csv`, the figures and
`report.md`. Rerunning the same command continues an interrupted study: finished runs are reused.
"""

from __future__ import annotations

import shlex
import sys

from kerastl.cli import EXIT_INTERRUPTED, OneLineParser, run_cli
from kerastl.study.plan import STUDY_BUDGETS, CONTENDERS

PROG = "kerastl.compare"


def parse_args(argv=None):
    p = OneLineParser(prog=PROG, description="Compare MLP, CNN and transfer learning on MNIST: accuracy, speed and data efficiency.")
    p.add_argument("--contenders", nargs="+", metavar="NAME", help=f"any of {', '.join(CONTENDERS)} (default: all)")
    p.add_argument("--per-class", nargs="+", metavar="N", help="labelled training images per class: numbers and/or 'all' (default: the budget's)")
    p.add_argument("--seeds", type=int, help="seeds for the small sizes (quick: up to 10 per class, default 2; full: up to 300, default 3); "
                   "larger sizes train seed 0")
    p.add_argument("--budget", choices=tuple(STUDY_BUDGETS), help="quick (default without a GPU: about 30 minutes on 2 CPU cores) or full")
    p.add_argument("--output-dir", help="the study folder (default: continue the newest unfinished saved_models/compare-*, else a new one)")
    p.add_argument("--fresh", action="store_true", help="start over instead of reusing finished runs")
    p.add_argument("--test-limit", type=int, help="score only the first N test images in every run (smoke tests)")
    p.add_argument("--max-epochs", type=int, help="no stage trains more than N epochs (smoke tests)")
    p.add_argument("--no-explain", action="store_true", help="leave out the report's Why section (a probe of every block "
                   "of the ImageNet backbone, about 3 minutes on 2 CPU cores)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    from kerastl.study import compare  # imports Keras: after parsing, so --help is instant
    from kerastl.study.runner import StudyInterrupted

    contenders = [n for item in (args.contenders or list(CONTENDERS)) for n in item.split(",") if n]
    command = shlex.join(["python", "-m", PROG, *argv])
    try:
        study = compare(contenders, args.per_class, args.seeds, args.budget, args.output_dir, args.fresh, args.test_limit,
                        args.max_epochs, explain=not args.no_explain, log=lambda line: print(f"{PROG}: {line}", flush=True), command=command)
    except StudyInterrupted as exc:
        print(f"\n{PROG}: interrupted during run {exc}; finished runs are kept. Continue with: {command}"
              + ("" if args.output_dir else f" --output-dir {exc.study_dir}"), file=sys.stderr)
        return EXIT_INTERRUPTED
    return 1 if study.failed else 0


def cli() -> int:
    return run_cli(PROG, main)
