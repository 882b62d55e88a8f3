"""What the tests share: running commands in process and as processes, writing run folders and
image folders, a prepared run for a single stage, and a few constants. Fixtures are in conftest.py."""

import contextlib
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np

from kerastl.log import quiet

ROOT = Path(__file__).resolve().parent.parent
QUIET = quiet  # a `log` that drops every line
TINY = dict(limit=300, test_limit=100, seed=0, min_steps=0)  # kerastl.run keywords: a tiny run on a fixed schedule


def backend() -> str:
    import keras

    return keras.backend.backend()


def only_under(name: str):
    """Skip the test except in the `name` backend's session (it tests that backend's own behaviour)."""
    import pytest

    return pytest.mark.skipif(backend() != name, reason=f"runs under the {name} test session")


jax_only = only_under("jax")
tf_only = only_under("tensorflow")


def run_in_process(prog: str, main, argv: list[str], capsys) -> tuple[int, str, str]:
    """A command's `main(argv)` as its console script runs it (one-line errors, exit codes), in this
    process: (exit code, stdout, stderr). One real process per command is tested elsewhere."""
    from kerastl.cli import run_cli

    try:
        code = run_cli(prog, lambda: main(argv))
    except SystemExit as exc:  # argparse refused a flag
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def run_fit(argv: list[str], capsys) -> tuple[int, str, str]:
    """`python -m kerastl.fit ARGV`, in this process."""
    from kerastl import fit

    return run_in_process("kerastl.fit", fit.main, argv, capsys)


def run_export(argv: list[str], capsys, monkeypatch) -> tuple[int, str, str]:
    """`python -m kerastl.export ARGV`, in this process. Its main sets KERAS_BACKEND=tensorflow for
    the export process it starts under JAX or PyTorch; monkeypatch gives this test session's back."""
    from kerastl.export import cli

    monkeypatch.setenv("KERAS_BACKEND", backend())
    return run_in_process(cli.PROG, cli.main, argv, capsys)


def run_module(*args: str, env: dict | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run `python -m ...` in the repo root as a user would, capturing output."""
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def write_run(run_dir: Path, model, dataset: str = "mnist", data_dir: Path | None = None) -> Path:
    """A finished run folder as `kerastl.fit` writes it (model.keras, config.yaml, metrics.json),
    for a model trained in the test."""
    from kerastl import runs

    run_dir.mkdir(parents=True)
    model.save(run_dir / runs.MODEL)
    runs.write_config(run_dir, {"mode": "mlp", "dataset": dataset, "data_dir": str(data_dir) if data_dir else None})
    runs.write_metrics(run_dir, {"backend": backend(), "test_accuracy": None})
    return run_dir


def train_small(mnist, builder, images: int, epochs: int = 1, batch_size: int = 32, **build):
    """A small model (`builder(**build)`, e.g. kerastl.models.build_mlp) trained on the first `images`
    MNIST training digits, seeded, with Adam(2e-3): the model the export and predict tests write as a run."""
    import keras

    keras.utils.set_random_seed(0)
    model = builder(**build)
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy")
    model.fit(mnist["x_train"][:images].astype("float32"), mnist["y_train"][:images], epochs=epochs, batch_size=batch_size, verbose=0)
    return model


def prepared_run(config: dict, splits):
    """A kerastl.train.PreparedRun for fitting one stage directly (tests of fit_stage): one device,
    no accelerator, the config as given (not sized)."""
    import time

    from kerastl import distribute, sizing
    from kerastl.data.datasets import builtin_info
    from kerastl.train import PreparedRun

    config = sizing.freeze(config)
    schedule = sizing.Schedule.of(config, len(splits.y_train))
    return PreparedRun(config, splits, builtin_info("mnist"), None, distribute.SINGLE, schedule, False, "float32",
                       time.perf_counter())


SHAPES = ("circle", "square", "triangle")


def make_image_folder(root: Path, per_class: int = 12, seed: int = 0, classes=SHAPES) -> Path:
    """A small folder of drawn shapes, one subfolder per class, as users' folders are: PNG, JPEG,
    BMP and GIF files of several sizes, colour and grey, plus a text file (ignored). Every image
    can be decoded; add broken ones in the test that needs them."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    formats = (("png", "RGB"), ("jpg", "RGB"), ("bmp", "L"), ("gif", "RGB"), ("png", "L"), ("jpg", "L"))
    for c, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            side = int(rng.integers(24, 48))
            ext, mode = formats[i % len(formats)]
            paper = tuple(int(v) for v in rng.integers(0, 80, 3))
            ink = tuple(int(v) for v in rng.integers(170, 256, 3))
            image = Image.new("RGB", (side, side + int(rng.integers(0, 8))), paper)
            draw = ImageDraw.Draw(image)
            a, b = int(side * rng.uniform(0.1, 0.25)), int(side * rng.uniform(0.75, 0.9))
            if name == "circle":
                draw.ellipse((a, a, b, b), fill=ink)
            elif name == "square":
                draw.rectangle((a, a, b, b), fill=ink)
            else:
                draw.polygon([((a + b) // 2, a), (a, b), (b, b)], fill=ink)
            image.convert(mode).save(folder / f"{name}{i:03d}.{ext}")
    (root / classes[0] / "notes.txt").write_text("not an image\n")
    return root


@contextlib.contextmanager
def in_a_thread(httpd):
    """A kerastl page's server (demo, teach) serving in a thread of this process; yields its URL and
    shuts it down afterwards."""
    from kerastl.web.server import url_of

    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield url_of(httpd)
    finally:
        httpd.shutdown()
        httpd.server_close()
