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

from pathlib import Path
from typing import Any, Callable, Sequence

from kerastl import runs
from kerastl.config import DEFAULTS, OPTIONS, resolve_run_config
from kerastl.errors import RunInterrupted, UserError

DEFAULT_MODE = "finetune"
ALLOWED_WITH_RESUME = ("output_dir", "run_name")  # they find the run; everything else is recorded in it

Log = Callable[[str], None]


def run(
    mode: str | None = None,
    *,
    config: str | Path | None = None,
    dataset: str | None = None,
    data_dir: str | None = None,
    epochs: int | None = None,
    head_epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | str | None = None,  # or "find" (kerastl.lr_find)
    finetune_lr: float | str | None = None,
    lr_schedule: str | None = None,
    limit: int | None = None,
    per_class: int | None = None,
    test_limit: int | None = None,
    min_steps: int | None = None,
    max_epochs: int | None = None,
    seed: int | None = None,
    backbone: str | None = None,
    weights: str | None = None,
    img_size: int | None = None,
    image_size: int | None = None,
    unfreeze: int | None = None,
    precision: str | None = None,
    output_dir: str | None = None,
    run_name: str | None = None,
    export: bool | None = None,
    tensorboard: bool | None = None,
    augment: bool | None = None,
    label_smoothing: float | None = None,
    distribute: str | None = None,
    devices: int | None = None,
    resume: bool = False,
    callbacks: Sequence[Any] = (),
    log: Log = print,
) -> runs.Run:
    """Train `mode` (default finetune) and write its run folder; returns the finished Run.

    Every keyword left at None takes its value from `configs/<mode>.yaml` (or `config`), whose
    `cpu:` section applies without a GPU/TPU. `resume=True` continues an interrupted run
    (`run_name`, else the newest unfinished run of `mode`) with its recorded config, so it takes
    no other option. `callbacks` (keras.callbacks.Callback) are added to every stage's `fit`.
    `log` receives kerastl's progress lines. Raises kerastl.UserError for a mistake in the
    arguments or files, and kerastl.errors.RunInterrupted (a KeyboardInterrupt) on Ctrl-C.
    """
    given = locals()
    options = {name: given[name] for name in OPTIONS}
    return run_with_options(mode, config, options, resume, callbacks, log, origin="kerastl.run")


def run_with_options(
    mode: str | None, config_path: str | Path | None, options: dict[str, Any], resume: bool = False,
    callbacks: Sequence[Any] = (), log: Log = print, origin: str = "command line",
) -> runs.Run:
    """`run`, with the options as a dict (None: not given); `origin` names them in messages."""
    from kerastl import distribute, runtime  # imports Keras

    distribute.connect_processes()  # several hosts (JAX): before anything starts the devices
    has_accelerator = runtime.accelerator() is not None

    # Choose the run folder: a new one, or the interrupted run to continue
    if resume:
        _refuse_options_with_resume(config_path, options, origin)
        output_dir = options["output_dir"] or DEFAULTS["output_dir"]
        run_dir = runs.find_resumable(output_dir, options["run_name"], mode or DEFAULT_MODE)
    else:
        config = resolve_run_config(mode or DEFAULT_MODE, config_path, options, has_accelerator, origin)
        run_dir = runs.create_run_dir(config["output_dir"], config["run_name"], config["mode"], config["dataset"])

    # Train, holding the folder's lock
    try:
        with runs.lock(run_dir):
            if resume:
                config = _recorded_config(run_dir, mode)
                log(f"kerastl: resuming {run_dir} with its recorded config")
            advice = runtime.cpu_backend_advice(config["mode"], has_accelerator)
            if advice:
                log(advice)
            from kerastl.train import train

            with distribute.distributed(config, has_accelerator, log):
                result = train(config, run_dir, has_accelerator, log, callbacks)
    except UserError:
        if not resume:
            runs.remove_run(run_dir)
        raise
    except KeyboardInterrupt:
        raise RunInterrupted(run_dir, config["mode"]) from None
    metrics = result.metrics
    log(
        f"done: {config['mode']} test accuracy {100 * metrics['test_accuracy']:.2f} % "
        f"({metrics['test_images']} images), {metrics['wall_seconds']:.0f} s; run saved to {run_dir}"
    )

    # Export, if asked
    if config["export"]:
        from kerastl.export import export_run

        result.export_report = export_run(run_dir, test_limit=config["test_limit"], log=log)
    return result


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
    required = tuple(key for key in DEFAULTS if key != "cpu") + ("mode",)
    config = runs.read_config(run_dir, required)
    if mode is not None and config["mode"] != mode:
        raise UserError(f"--resume: {run_dir} is a {config['mode']} run, not {mode}")
    return config
