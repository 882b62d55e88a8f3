"""Train the study's runs one after another: reuse finished ones, report failures, show progress.

Each run is `kerastl.run` called in this process with the run's options (kerastl.study.plan), so its folder is
an ordinary run folder (resumable, exportable, with its figures). In-process rather than one
subprocess per run: on the 2-core CPU importing TensorFlow and Keras costs 6-9 s per process,
3-4 minutes of a 30-minute study of ~30 runs. What a subprocess would give is kept otherwise: a
failing run is caught and recorded with its one-line reason, the next run starts from a cleared
Keras session, each run's output goes to its own log, and a crash that kills the process loses
only the run in progress (rerunning the study reuses the finished ones).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from kerastl import runs
from kerastl.config import OPTIONS
from kerastl.errors import UserError, first_line
from kerastl.study.plan import ALL, RunSpec
from kerastl.log import Log

LOGS = "logs"  # per-run output of fit, in the study folder
IGNORED_KEYS = ("output_dir", "run_name")  # set by the study's folder, not part of the recipe


@dataclass
class Outcome:
    status: str  # "trained", "reused" or "failed"
    reason: str = ""
    seconds: float = 0.0


class StudyInterrupted(Exception):
    """Ctrl-C during a run: the study stops; rerunning it continues from the finished runs."""

    study_dir = None  # set by kerastl.study.compare, with the command that continues the study
    command = None


def differing_keys(recorded: dict, planned: dict) -> list[str]:
    """Config keys whose recorded value differs from the planned one (img_size: null means native)."""
    def comparable(config: dict) -> dict:  # the study's folder options are not part of the recipe
        return {**config, "given": sorted(set(config.get("given") or ()) - set(IGNORED_KEYS))}

    recorded, planned = comparable(recorded), comparable(planned)
    keys = set(recorded) | set(planned)
    return sorted(
        k for k in keys
        if k not in IGNORED_KEYS and recorded.get(k) != planned.get(k)
        and not (k == "img_size" and planned.get(k) is None)
    )


def check_reusable(specs: list[RunSpec], study_dir: Path) -> None:
    """Refuse, before training anything, a study folder whose finished runs used other settings."""
    for spec in specs:
        run_dir = study_dir / spec.name
        if runs.is_complete(run_dir):
            diff = differing_keys(runs.read_config(run_dir), spec.config)
            if diff:
                raise UserError(
                    f"{run_dir} was trained with other settings ({', '.join(diff)}); "
                    "add --fresh to start the study over, or choose another --output-dir"
                )


def _describe(spec: RunSpec) -> str:
    size = "all images" if spec.size == ALL else f"{spec.size} per class"
    return f"{spec.contender}, {size}, seed {spec.seed}"


def clock(seconds: float) -> str:
    """`45s`, `12m05s`."""
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def pending_estimate(specs: list[RunSpec], study_dir: Path) -> float:
    """Estimated seconds of the runs not finished yet."""
    return sum(s.estimate_s for s in specs if not runs.is_complete(study_dir / s.name))


class Progress:
    """`[k/n] contender, size, seed: elapsed, about T left`, the estimate corrected by the runs done."""

    def __init__(self, specs: list[RunSpec], print_line: Log, finished: set[str]):
        self.specs, self.print, self.finished = specs, print_line, finished
        self.start = time.perf_counter()
        self.estimated_done = self.actual_done = 0.0

    def left(self, k: int) -> float:
        remaining = sum(s.estimate_s for s in self.specs[k:] if s.name not in self.finished)
        pace = self.actual_done / self.estimated_done if self.estimated_done else 1.0
        return remaining * pace

    def begin(self, k: int, spec: RunSpec) -> None:
        elapsed = time.perf_counter() - self.start
        self.print(f"[{k}/{len(self.specs)}] {_describe(spec)}: training ({clock(elapsed)} elapsed, about {clock(self.left(k - 1))} left)")

    def end(self, k: int, spec: RunSpec, outcome: Outcome, summary: str) -> None:
        if outcome.status == "trained" and outcome.seconds > 0:
            self.actual_done += outcome.seconds
            self.estimated_done += spec.estimate_s
        elapsed = time.perf_counter() - self.start
        self.print(f"[{k}/{len(self.specs)}] {_describe(spec)}: {summary} ({clock(elapsed)} elapsed, about {clock(self.left(k))} left)")


def train_one(spec: RunSpec, study_dir: Path, log_path: Path) -> None:
    """`kerastl.run(mode, **spec.options)` in this process, into the study folder, output to `log_path`."""
    import keras  # the study's command parses its flags before Keras starts

    from kerastl.api import run_with_options  # imports Keras

    log_path.parent.mkdir(parents=True, exist_ok=True)
    options = {**dict.fromkeys(OPTIONS), **spec.options, "output_dir": str(study_dir), "run_name": spec.name}
    tf_logger = logging.getLogger("tensorflow")
    level = tf_logger.level
    tf_logger.setLevel(logging.ERROR)  # retracing notes: many models in one process is the point here
    with open(log_path, "w") as log:
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                run_with_options(spec.config["mode"], None, options, log=print, origin="study")
        except Exception:
            log.write(traceback.format_exc())
            raise
        finally:
            tf_logger.setLevel(level)
            keras.backend.clear_session()
            gc.collect()


def run_all(specs: list[RunSpec], study_dir: Path, print_line: Log) -> dict[str, Outcome]:
    """Train every run not yet finished; returns each run's outcome by name."""
    progress = Progress(specs, print_line, {s.name for s in specs if runs.is_complete(study_dir / s.name)})
    outcomes: dict[str, Outcome] = {}
    for k, spec in enumerate(specs, 1):
        run_dir = study_dir / spec.name
        if runs.is_complete(run_dir):
            outcomes[spec.name] = Outcome("reused")
            progress.end(k, spec, outcomes[spec.name], "finished before, reused")
            continue
        if spec.needs and outcomes.get(spec.needs, Outcome("failed")).status == "failed":
            reason = f"needs run {spec.needs}, which failed"
            outcomes[spec.name] = Outcome("failed", reason)
            progress.end(k, spec, outcomes[spec.name], f"FAILED: {reason}")
            continue
        if run_dir.exists():  # left unfinished by an interrupted or failed study: start it again
            runs.remove_run(run_dir)
        progress.begin(k, spec)
        start = time.perf_counter()
        try:
            train_one(spec, study_dir, study_dir / LOGS / f"{spec.name}.log")
        except KeyboardInterrupt:  # kerastl.errors.RunInterrupted too
            raise StudyInterrupted(spec.name) from None
        except Exception as exc:  # one failing run must not stop the study
            outcomes[spec.name] = Outcome("failed", first_line(exc), time.perf_counter() - start)
            progress.end(k, spec, outcomes[spec.name], f"FAILED: {first_line(exc)}")
            continue
        outcomes[spec.name] = Outcome("trained", seconds=time.perf_counter() - start)
        metrics = runs.read_metrics(run_dir)
        progress.end(k, spec, outcomes[spec.name], f"test accuracy {100 * metrics['test_accuracy']:.2f} % in {clock(outcomes[spec.name].seconds)}")
    return outcomes
