import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import kerastl  # noqa: F401  first: it sets OMP_WAIT_POLICY before a test module's `import keras` starts PyTorch

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def mnist():
    """Official MNIST from the first source that serves (the kerastl cache after the first run)."""
    from kerastl.data import load_arrays

    return load_arrays("mnist", log=lambda _: None)


@pytest.fixture(scope="session")
def mnist_slice(mnist):
    """A small seeded split for quick training runs."""
    from kerastl.data import make_splits

    return make_splits(mnist, validation_fraction=0.1, limit=600, test_limit=300, seed=0)


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


def backend() -> str:
    import keras

    return keras.backend.backend()


@pytest.fixture
def rng():
    return np.random.default_rng(0)


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
