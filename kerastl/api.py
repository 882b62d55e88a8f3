"""`kerastl.run(...)`: train a model from Python and get the finished run back.

    import kerastl
    run = kerastl.run(mode="mlp", epochs=3, limit=5000)
    print(run.metrics["test_accuracy"], run.folder)
    run.history[-1]["val_loss"], run.model.summary()

The keywords are the flags of `python -m kerastl.fit` with underscores, checked the same way; a
mistake raises kerastl.UserError (the command prints it on one line and exits with status 2).
`python -m kerastl.fit` is a thin wrapper over `run_with_options`.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator, Sequence

from kerastl import distribute, runs, runtime
from kerastl.config import DEFAULTS, OPTIONS, SCHEMA, renamed, resolve_run_config
from kerastl.errors import RunInterrupted, UserError
from kerastl.export import export_run
from kerastl.finished_run import Run
from kerastl.log import Log
from kerastl.train import PreparedRun, prepare, train

DEFAULT_MODE = "finetune"
ALLOWED_WITH_RESUME = ("output_dir", "run_name")  # they find the run; everything else is recorded in it


def run(
    mode: str | None = None,
    *,
    config: str | Path | None = None,
    resume: bool = False,
    callbacks: Sequence[Any] = (),
    log: Log = print,
    **options: Any,
) -> Run:
    """Train `mode` (default finetune) and write its run folder; returns the finished Run.

    `options` are the flags of `python -m kerastl.fit` with underscores (listed below, from
    kerastl.config.SCHEMA). Every option not given takes its value from `configs/<mode>.yaml` (or
    `config`), whose `cpu:` section applies without a GPU/TPU. `resume=True` continues an
    interrupted run (`run_name`, else the newest unfinished run of `mode`) with its recorded
    config, so it takes no other option. `callbacks` (keras.callbacks.Callback) are added to every
    stage's `fit`. `log` receives kerastl's progress lines. Raises kerastl.UserError for a mistake
    in the arguments or files (an unknown option too), and kerastl.errors.RunInterrupted (a
    KeyboardInterrupt) on Ctrl-C.
    """
    options = renamed(options, warn=lambda line: log(f"kerastl.run: warning: {line}"), origin="kerastl.run")
    return run_with_options(mode, config, {**dict.fromkeys(OPTIONS), **options}, resume, callbacks, log, origin="kerastl.run")


run.__doc__ += "\n    Options:\n" + "".join(f"        {name}: {SCHEMA[name].meaning}\n" for name in OPTIONS)


def run_with_options(
    mode: str | None, config_path: str | Path | None, options: dict[str, Any], resume: bool = False,
    callbacks: Sequence[Any] = (), log: Log = print, origin: str = "command line",
) -> Run:
    """`run`, with the options as a dict (None: not given); `origin` names them in messages.

    A new run is resolved and prepared (data loaded, schedule sized, config frozen) before its
    folder is made, so config.yaml is written once with what the run will do; a resumed run is
    prepared from the config.yaml it recorded."""
    distribute.connect_processes()  # several hosts (JAX): before anything starts the devices
    has_accelerator = runtime.accelerator() is not None
    if resume:
        _refuse_options_with_resume(config_path, options, origin)
        run_dir = runs.find_resumable(options["output_dir"] or DEFAULTS["output_dir"], options["run_name"], mode or DEFAULT_MODE)
        with runs.lock(run_dir):
            config = _recorded_config(run_dir, mode)
            log(f"kerastl: resuming {run_dir} with its recorded config")
            with _kept_for_resume(run_dir, config["mode"]):
                result = _train(run_dir, _prepare(config, has_accelerator, log, recorded=True), callbacks, log)
    else:
        config = resolve_run_config(mode or DEFAULT_MODE, config_path, options, has_accelerator, origin)
        prepared = _prepare(config, has_accelerator, log)
        run_dir = runs.create_run_dir(config["output_dir"], config["run_name"], config["mode"], config["dataset"])
        with runs.lock(run_dir), _removed_on_mistake(run_dir), _kept_for_resume(run_dir, config["mode"]):
            runs.write_config(run_dir, prepared.config)  # first, and once: a resume continues with it
            result = _train(run_dir, prepared, callbacks, log)
    metrics = result.metrics
    log(
        f"done: {result.config['mode']} test accuracy {100 * metrics['test_accuracy']:.2f} % "
        f"({metrics['test_images']} images), {metrics['wall_seconds']:.0f} s; run saved to {run_dir}"
    )
    if result.config["export"]:
        result.export_report = export_run(run_dir, test_limit=result.config["test_limit"], log=log)
    return result


def _prepare(config, has_accelerator: bool, log: Log, recorded: bool = False) -> PreparedRun:
    """kerastl.train.prepare: the data, the devices and the schedule; the config frozen."""
    advice = runtime.cpu_backend_advice(config["mode"], has_accelerator)
    if advice:
        log(advice)
    return prepare(config, has_accelerator, log, recorded)


def _train(run_dir: Path, prepared: PreparedRun, callbacks, log: Log) -> Run:
    with distribute.distributed(prepared.placement):
        return train(prepared, run_dir, log, callbacks)


@contextlib.contextmanager
def _removed_on_mistake(run_dir: Path) -> Iterator[None]:
    """A new run that stops on a user's mistake leaves no folder behind."""
    try:
        yield
    except UserError:
        runs.remove_run(run_dir)
        raise


@contextlib.contextmanager
def _kept_for_resume(run_dir: Path, mode: str) -> Iterator[None]:
    """Ctrl-C keeps the folder, with its finished epochs, for a resume."""
    try:
        yield
    except KeyboardInterrupt:
        raise RunInterrupted(run_dir, mode) from None


def option_name(key: str, origin: str) -> str:
    """How the user spelled an option: `--data-dir` on the command line, `data_dir` in Python."""
    return f"--{key.replace('_', '-')}" if origin == "command line" else key


def _refuse_options_with_resume(config_path, options: dict[str, Any], origin: str) -> None:
    ignored = [key for key, value in options.items() if value is not None and key not in ALLOWED_WITH_RESUME]
    ignored += ["config"] if config_path is not None else []
    if ignored:
        names = ", ".join(option_name(key, origin) for key in ignored)
        raise UserError(
            f"{option_name('resume', origin)} continues a run with its recorded config, so these would be "
            f"ignored: {names}; drop them, or start a new run"
        )


def _recorded_config(run_dir: Path, mode: str | None) -> dict[str, Any]:
    """The config of the run to resume, checked (its lock is held, so it cannot finish meanwhile)."""
    if runs.is_complete(run_dir):
        raise UserError(f"--resume: {run_dir} already finished")
    newer = ("cpu", "sized", "keep_in_distribution", "outside")  # cpu: not recorded; the others: absent from runs recorded before them
    required = tuple(key for key in DEFAULTS if key not in newer) + ("mode",)
    config = runs.read_config(run_dir, required)
    if mode is not None and config["mode"] != mode:
        raise UserError(f"--resume: {run_dir} is a {config['mode']} run, not {mode}")
    return config
