"""Run the test suite under each Keras backend (TensorFlow, JAX, PyTorch), each in its own process.

Usage: python tests/run_backends.py [pytest args...]; exits non-zero if any backend fails.

The whole suite runs under TensorFlow, the default backend. JAX and PyTorch run the tests marked
`every_backend` (registered in pyproject.toml): the backend contract, on tiny models (build, a
training step, save, load, predict, export, distribute, and what a backend does its own way: batch
norm when frozen, XLA settings, converted weights' numerics). Everything else (the schedule, folders,
reports, the study, explain, the demo, the notebook) runs once: tests/README.md has the rule.

Each session runs its test files on several worker processes (pytest-xdist, `--dist loadfile`, so a
file's module fixtures are built once): one per CPU core, at most 4. Most tests keep one core busy
(small models, Python-bound steps, subprocesses), so on 2 cores two workers nearly halve the time.
Pass your own `-n` (e.g. `-n 0` for one process) to override. JAX sessions share a persistent XLA
compilation cache in a fresh temporary folder (removed afterwards, so every run starts cold): the
same model compiled again by a later test is read back instead of recompiled.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BACKENDS = ("tensorflow", "jax", "torch")
EVERY_BACKEND = "every_backend"
MAX_WORKERS = 4


def worker_args(args: list[str], cpus: int | None = None) -> list[str]:
    """xdist's arguments: one worker per core, at most MAX_WORKERS; none on one core, or when the
    caller's own arguments choose (`-n N`, `-p no:xdist`)."""
    if any(a.startswith(("-n", "--numprocesses")) or a == "no:xdist" for a in args):
        return []
    n = min(cpus or os.cpu_count() or 1, MAX_WORKERS)
    return ["-n", str(n), "--dist", "loadfile"] if n > 1 else []


def pytest_args(args: list[str], first: bool) -> list[str]:
    """The arguments for one backend's session: after the first, only the tests marked every_backend
    (joined with the caller's own -m expression, if any)."""
    if first:
        return args
    args = list(args)
    if "-m" in args:
        i = args.index("-m") + 1
        args[i] = f"({args[i]}) and {EVERY_BACKEND}"
        return args
    return [*args, "-m", EVERY_BACKEND]


def session_env(backend: str, jax_cache: str) -> dict[str, str]:
    """The environment of one backend's session; JAX's caches every compilation in `jax_cache`."""
    env = {**os.environ, "KERAS_BACKEND": backend}
    if backend == "jax":
        env.update(JAX_COMPILATION_CACHE_DIR=jax_cache, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    return env


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    args = sys.argv[1:]
    parallel = worker_args(args)
    results = {}
    jax_cache = tempfile.mkdtemp(prefix="kerastl-jax-cache-")
    try:
        for i, backend in enumerate(BACKENDS):
            print(f"\n=== KERAS_BACKEND={backend} ===", flush=True)
            start = time.perf_counter()
            code = subprocess.call(
                [sys.executable, "-m", "pytest", "-q", *parallel, *pytest_args(args, first=i == 0)], cwd=root,
                env=session_env(backend, jax_cache),
            )
            results[backend] = (code, time.perf_counter() - start)
    finally:
        shutil.rmtree(jax_cache, ignore_errors=True)
    print("\nbackend     exit  seconds")
    for backend, (code, seconds) in results.items():
        print(f"{backend:<11} {code:>4}  {seconds:7.0f}")
    return 0 if all(code == 0 for code, _ in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
