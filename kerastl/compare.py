"""`python -m kerastl.compare`: MLP vs CNN vs transfer learning, measured on the same splits and drawn.

Trains the contenders at several labelled-data sizes and seeds (each an ordinary `kerastl.fit`
run folder inside the study folder), then writes `results.json`, `results.csv`, the figures and
`report.md`. Rerunning the same command continues an interrupted study: finished runs are reused.
"""

from __future__ import annotations

import json
import shlex
import shutil
import sys
import time
from pathlib import Path

from kerastl.cli import EXIT_INTERRUPTED, OneLineParser, run_cli
from kerastl.errors import UserError
from kerastl.study.plan import ALL, BUDGETS, CONTENDERS, check_contenders, parse_sizes

PROG = "kerastl.compare"
STUDY = "study.json"  # marks a study folder; its settings decide whether a rerun continues it
DEFAULT_ROOT = "saved_models"
SETTINGS = ("budget", "contenders", "sizes", "seeds", "test_limit", "max_epochs", "backend")


def parse_args(argv=None):
    p = OneLineParser(prog=PROG, description="Compare MLP, CNN and transfer learning on MNIST: accuracy, speed and data efficiency.")
    p.add_argument("--contenders", nargs="+", metavar="NAME", help=f"any of {', '.join(CONTENDERS)} (default: all)")
    p.add_argument("--per-class", nargs="+", metavar="N", help="labelled training images per class: numbers and/or 'all' (default: the budget's)")
    p.add_argument("--seeds", type=int, help="seeds for the small sizes (quick: up to 10 per class, default 2; full: up to 300, default 3); "
                   "larger sizes train seed 0")
    p.add_argument("--budget", choices=tuple(BUDGETS), help="quick (default without a GPU: about 30 minutes on 2 CPU cores) or full")
    p.add_argument("--output-dir", help="the study folder (default: continue the newest unfinished saved_models/compare-*, else a new one)")
    p.add_argument("--fresh", action="store_true", help="start over instead of reusing finished runs")
    p.add_argument("--test-limit", type=int, help="score only the first N test images in every run (smoke tests)")
    p.add_argument("--max-epochs", type=int, help="no stage trains more than N epochs (smoke tests)")
    return p.parse_args(argv)


def _check_numbers(args) -> None:
    if args.seeds is not None and args.seeds < 1:
        raise UserError(f"--seeds {args.seeds}: need at least one seed")
    for flag, value in (("--test-limit", args.test_limit), ("--max-epochs", args.max_epochs)):
        if value is not None and value < 1:
            raise UserError(f"{flag} {value}: must be at least 1")


def _check_sizes_fit_the_data(sizes: tuple) -> None:
    """Every per-class size must exist in every class of MNIST's training split."""
    import numpy as np

    from kerastl.data import load_arrays

    y = load_arrays("mnist", log=lambda _: None)["y_train"]
    classes, counts = np.unique(y, return_counts=True)
    for size in sizes:
        if size != ALL and size > counts.min():
            raise UserError(
                f"--per-class {size} is more than MNIST has: class {classes[counts.argmin()]} has {counts.min()} training images; "
                f"use at most {counts.min()}, or 'all'"
            )


def _is_study(folder: Path) -> bool:
    return (folder / STUDY).is_file()


def _same_settings(folder: Path, settings: dict) -> bool:
    try:
        recorded = json.loads((folder / STUDY).read_text())
    except (OSError, ValueError):
        return False
    return all(recorded.get(k) == settings[k] for k in SETTINGS)


def choose_study_dir(output_dir: str | None, fresh: bool, settings: dict) -> tuple[Path, bool]:
    """(study folder, continuing?) without creating anything yet."""
    if output_dir is None:
        root = Path(DEFAULT_ROOT)
        unfinished = sorted(
            (d for d in root.glob("compare-*") if _is_study(d) and not (d / "report.md").exists() and _same_settings(d, settings)),
            key=lambda d: d.name,
        ) if root.is_dir() and not fresh else []
        if unfinished:
            return unfinished[-1], True
        return root / f"compare-{time.strftime('%Y%m%d-%H%M%S')}", False
    folder = Path(output_dir).expanduser()
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--output-dir {folder} is a file, not a folder")
    if folder.is_dir() and any(folder.iterdir()) and not _is_study(folder):
        raise UserError(f"--output-dir {folder} is not empty and holds no {STUDY}: choose a new or empty folder, or a study folder")
    return folder, _is_study(folder) and not fresh


def _prepare(folder: Path, fresh: bool) -> None:
    """Create (or, with --fresh, empty) the study folder; one clear line if it cannot be written."""
    created = not folder.exists()
    try:
        if fresh and _is_study(folder):
            shutil.rmtree(folder)
            created = True
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        if created and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
        raise UserError(f"cannot write the study folder {folder}: {exc.strerror or exc}") from None


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    contenders = check_contenders([n for item in (args.contenders or list(CONTENDERS)) for n in item.split(",") if n])
    sizes = parse_sizes(args.per_class) if args.per_class else None
    _check_numbers(args)

    from kerastl import runtime  # imports Keras: after parsing, so --help is instant

    has_accelerator = runtime.accelerator() is not None
    budget = BUDGETS[args.budget or ("full" if has_accelerator else "quick")]
    sizes = sizes or budget.sizes
    _check_sizes_fit_the_data(sizes)
    seeds = args.seeds or budget.seeds
    settings = {
        "budget": budget.name, "contenders": list(contenders), "sizes": list(sizes), "seeds": seeds,
        "test_limit": args.test_limit, "max_epochs": args.max_epochs, "backend": runtime.backend(),
    }
    study_dir, continuing = choose_study_dir(args.output_dir, args.fresh, settings)

    from kerastl.study import plan, report, results, runner

    specs = plan.plan(contenders, sizes, seeds, budget, study_dir, has_accelerator, args.test_limit, args.max_epochs)
    if not any(s.contender in contenders for s in specs):
        raise UserError(f"nothing to train: in the {budget.name} budget {', '.join(contenders)} train on per-class sizes only; "
                        "add a size such as --per-class 100, or use --budget full")
    if continuing:
        runner.check_reusable(specs, study_dir)
    _prepare(study_dir, args.fresh)
    imagenet, domain = plan.backbones(has_accelerator)
    study = {
        **settings, "many_seeds_up_to": budget.many_seeds_up_to, "machine": results.machine(),
        "reductions": plan.reductions(budget, contenders, sizes, seeds, args.test_limit, args.max_epochs, imagenet, domain),
        "imagenet_backbone": {**imagenet, "label": results.BACKBONE_NAMES.get(imagenet["backbone"], imagenet["backbone"])},
        "domain_backbone": {**domain, "label": results.BACKBONE_NAMES.get(domain["backbone"], domain["backbone"])},
        "command": shlex.join(["python", "-m", PROG, *argv]),
    }
    from kerastl.files import atomic_write_text

    atomic_write_text(study_dir / STUDY, json.dumps(study, indent=1) + "\n")
    say = lambda line: print(f"{PROG}: {line}", flush=True)  # noqa: E731
    total = runner.pending_estimate(specs, study_dir)
    say(f"{'continuing' if continuing else 'starting'} study {study_dir}: {len(specs)} runs, budget {budget.name}, "
        f"first estimate {runner.clock(total)} on a 2-core CPU (run logs in {study_dir / runner.LOGS})")
    try:
        outcomes = runner.run_all(specs, study_dir, say)
    except runner.StudyInterrupted as exc:
        print(f"\n{PROG}: interrupted during run {exc}; finished runs are kept. Continue with: {study['command']}"
              + ("" if args.output_dir else f" --output-dir {study_dir}"), file=sys.stderr)
        return EXIT_INTERRUPTED
    rows = results.collect(specs, study_dir, outcomes)
    results.write(study_dir, study, rows)
    from kerastl.study import why

    why.explain_backbone(study_dir, study, say)  # the report's "Why" section, from a probe of every block
    path = report.build(study_dir, study["command"], log=say)
    failed = [r for r in rows if r["status"] != "ok"]
    reused = sum(1 for o in outcomes.values() if o.status == "reused")
    say(f"{len(rows)} runs ({reused} reused, {len(failed)} failed); report: {path}")
    return 1 if failed else 0


def cli() -> int:
    return run_cli(PROG, main)


if __name__ == "__main__":
    sys.exit(cli())
