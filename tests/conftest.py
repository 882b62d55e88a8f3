import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

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
