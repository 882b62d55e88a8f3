"""Run the test suite once per Keras backend (TensorFlow, JAX, PyTorch), each in its own process.

Usage: python tests/run_backends.py [pytest args...]; exits non-zero if any backend fails.

Tests marked `backend_independent` (registered in pyproject.toml) run under the first backend only:
they build, train, save and export no Keras model (argument parsing, the config schema, schedule
arithmetic, folder scanning, reports from fixed files, the notebook's static checks, packaging), so
KERAS_BACKEND cannot change their result and running them three times only costs time. Anything that
builds or runs a model on the current backend stays unmarked and runs under all three.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

BACKENDS = ("tensorflow", "jax", "torch")
ONCE = "backend_independent"


def pytest_args(args: list[str], first: bool) -> list[str]:
    """The arguments for one backend's session: after the first, backend-independent tests are left out
    (joined with the caller's own -m expression, if any)."""
    if first:
        return args
    args = list(args)
    if "-m" in args:
        i = args.index("-m") + 1
        args[i] = f"({args[i]}) and not {ONCE}"
        return args
    return [*args, "-m", f"not {ONCE}"]


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    results = {}
    for i, backend in enumerate(BACKENDS):
        print(f"\n=== KERAS_BACKEND={backend} ===", flush=True)
        start = time.perf_counter()
        code = subprocess.call(
            [sys.executable, "-m", "pytest", "-q", *pytest_args(sys.argv[1:], first=i == 0)], cwd=root,
            env={**os.environ, "KERAS_BACKEND": backend},
        )
        results[backend] = (code, time.perf_counter() - start)
    print("\nbackend     exit  seconds")
    for backend, (code, seconds) in results.items():
        print(f"{backend:<11} {code:>4}  {seconds:7.0f}")
    return 0 if all(code == 0 for code, _ in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
