"""Run the test suite once per Keras backend (TensorFlow, JAX, PyTorch), each in its own process.

Usage: python tests/run_backends.py [pytest args...]; exits non-zero if any backend fails.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

BACKENDS = ("tensorflow", "jax", "torch")


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    results = {}
    for backend in BACKENDS:
        print(f"\n=== KERAS_BACKEND={backend} ===", flush=True)
        start = time.perf_counter()
        code = subprocess.call(
            [sys.executable, "-m", "pytest", "-q", *sys.argv[1:]], cwd=root, env={**os.environ, "KERAS_BACKEND": backend}
        )
        results[backend] = (code, time.perf_counter() - start)
    print("\nbackend     exit  seconds")
    for backend, (code, seconds) in results.items():
        print(f"{backend:<11} {code:>4}  {seconds:7.0f}")
    return 0 if all(code == 0 for code, _ in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
