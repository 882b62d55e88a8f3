"""A comparison study of the contenders: plan, run, results and report.

    import kerastl
    study = kerastl.compare(contenders=["mlp", "cnn", "finetune"], per_class=[10, 100], seeds=2)
    study.folder, study.report, study.rows[0]["test_accuracy"]

`python -m kerastl.compare` is its command line (kerastl.study.command).
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from kerastl.backbones.registry import label as backbone_label
from kerastl.data import load_arrays
from kerastl.study.plan import ALL
from kerastl.errors import UserError
from kerastl.files import atomic_write_text
from kerastl.log import Log


@dataclass
class Study:
    folder: Path
    rows: list[dict[str, Any]]  # one per run, as in results.json
    report: Path

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["status"] != "ok"]


def compare(
    contenders: Sequence[str] | None = None, per_class: Sequence[int | str] | None = None, seeds: int | None = None,
    budget: str | None = None, output_dir: str | Path | None = None, fresh: bool = False, test_limit: int | None = None,
    max_epochs: int | None = None, explain: bool = True, log: Log = print, command: str | None = None,
) -> Study:
    """Train the contenders (default: all) at `per_class` labelled images per class (numbers and/or
    "all"; default: the budget's), on the same splits, and write the study folder with its report;
    returns the Study. A rerun with the same settings continues an unfinished study, reusing its
    finished runs (`fresh=True` starts over). `budget`: "quick" (default without a GPU) or "full".
    `explain` adds the report's "Why" section: a probe of every block of the ImageNet backbone
    (kerastl.explain, quick budget; about 3 minutes on 2 CPU cores, done once per study folder).
    Raises UserError for bad arguments, kerastl.study.runner.StudyInterrupted on Ctrl-C."""
    from kerastl import runtime  # deferred, as the study's modules: `compare --help` answers without Keras
    from kerastl.study import folder as study_folder
    from kerastl.study import plan, report, results, runner, why

    names = plan.check_contenders(list(contenders or plan.CONTENDERS))
    sizes = plan.parse_sizes([str(s) for s in per_class]) if per_class else None
    _check_numbers(seeds, test_limit, max_epochs)
    has_accelerator = runtime.accelerator() is not None
    if budget is not None and budget not in plan.STUDY_BUDGETS:
        raise UserError(f"unknown budget {budget!r}; choose one of {', '.join(plan.STUDY_BUDGETS)}")
    chosen = plan.STUDY_BUDGETS[budget or ("full" if has_accelerator else "quick")]
    sizes = sizes or chosen.sizes
    _check_sizes_fit_the_data(sizes)
    seeds = seeds or chosen.seeds
    settings = {
        "budget": chosen.name, "contenders": list(names), "sizes": list(sizes), "seeds": seeds,
        "test_limit": test_limit, "max_epochs": max_epochs, "backend": runtime.backend(),
    }
    study_dir, continuing = study_folder.choose(output_dir, fresh, settings)

    specs = plan.plan(names, sizes, seeds, chosen, study_dir, has_accelerator, test_limit, max_epochs)
    if not any(s.contender in names for s in specs):
        raise UserError(f"nothing to train: in the {chosen.name} budget {', '.join(names)} train on per-class sizes only; "
                        "add a size such as --per-class 100, or use --budget full")
    if continuing:
        runner.check_reusable(specs, study_dir)
    study_folder.prepare(study_dir, fresh)
    imagenet, domain = plan.backbones(has_accelerator)
    study = {
        **settings, "many_seeds_up_to": chosen.many_seeds_up_to, "machine": results.machine(),
        "reductions": plan.reductions(chosen, names, sizes, seeds, test_limit, max_epochs, imagenet, domain),
        "imagenet_backbone": {**imagenet, "label": backbone_label(imagenet["backbone"])},
        "domain_backbone": {**domain, "label": backbone_label(domain["backbone"])},
        "command": command or _as_command(contenders, per_class, seeds, budget, output_dir, test_limit, max_epochs, explain),
    }
    atomic_write_text(study_dir / study_folder.STUDY, json.dumps(study, indent=1) + "\n")
    log(f"{'continuing' if continuing else 'starting'} study {study_dir}: {len(specs)} runs, budget {chosen.name}, "
        f"first estimate {runner.clock(runner.pending_estimate(specs, study_dir))} on a 2-core CPU "
        f"(run logs in {study_dir / runner.LOGS})")
    try:
        outcomes = runner.run_all(specs, study_dir, log)
    except runner.StudyInterrupted as exc:
        exc.study_dir, exc.command = study_dir, study["command"]
        raise
    rows = results.collect(specs, study_dir, outcomes)
    results.write(study_dir, study, rows)
    if explain:
        why.explain_backbone(study_dir, study, log)
    path = report.build(study_dir, study["command"], log=log)
    reused = sum(1 for o in outcomes.values() if o.status == "reused")
    log(f"{len(rows)} runs ({reused} reused, {sum(r['status'] != 'ok' for r in rows)} failed); report: {path}")
    return Study(study_dir, rows, path)


def _as_command(contenders, per_class, seeds, budget, output_dir, test_limit, max_epochs, explain) -> str:
    """The `python -m kerastl.compare` line that reruns (continues) a study started from Python."""
    words = ["python", "-m", "kerastl.compare"]
    for flag, value in (("--contenders", contenders), ("--per-class", per_class)):
        words += [flag, *map(str, value)] if value else []
    for flag, value in (("--seeds", seeds), ("--budget", budget), ("--output-dir", output_dir),
                        ("--test-limit", test_limit), ("--max-epochs", max_epochs)):
        words += [flag, str(value)] if value is not None else []
    return shlex.join(words + ([] if explain else ["--no-explain"]))


def _check_numbers(seeds, test_limit, max_epochs) -> None:
    if seeds is not None and seeds < 1:
        raise UserError(f"--seeds {seeds}: need at least one seed")
    for flag, value in (("--test-limit", test_limit), ("--max-epochs", max_epochs)):
        if value is not None and value < 1:
            raise UserError(f"{flag} {value}: must be at least 1")


def _check_sizes_fit_the_data(sizes: tuple) -> None:
    """Every per-class size must exist in every class of MNIST's training split."""
    y = load_arrays("mnist", log=lambda _: None)["y_train"]
    classes, counts = np.unique(y, return_counts=True)
    for size in sizes:
        if size != ALL and size > counts.min():
            raise UserError(
                f"--per-class {size} is more than MNIST has: class {classes[counts.argmin()]} has {counts.min()} training images; "
                f"use at most {counts.min()}, or 'all'"
            )
