"""A quiet start: TensorFlow's start-up chatter stays out of the terminal. All of it is set here.

`kerastl/__init__.py` imports this module first, so it runs before anything imports TensorFlow.
- `TF_CPP_MIN_LOG_LEVEL=2` hides TensorFlow's C++ INFO and WARNING lines (a value the user set wins).
- TensorFlow 2.21 writes a few lines through absl before that level applies: "All log messages
  before absl::InitializeLog() ...", "oneDNN custom operations are on ...", "Could not find cuda
  drivers ...", and, when it first lists its devices on a machine without a GPU, "failed call to
  cuInit". They go straight to file descriptor 2, so importing TensorFlow (and listing its devices)
  runs with that descriptor captured; exactly those lines are dropped, every other line is written
  to stderr afterwards. oneDNN itself stays on: nothing here changes numerics.
- absl's Python logger (tensorflow_datasets: "Variant folder ... has no dataset_info.json") shows
  errors only.
- TensorFlow's "N out of the last M calls ... triggered tf.function retracing" warning is dropped:
  kerastl compiles a model once per training stage, so a new trace per stage is by design.
Set `TF_CPP_MIN_LOG_LEVEL=0` to see everything TensorFlow prints.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import logging
import os
import re
import sys
import tempfile
from typing import Iterator

TENSORFLOW_NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\) is called"
    r"|oneDNN custom operations are on"
    r"|Could not find cuda drivers on your machine"
    r"|failed call to cuInit"
)


@contextlib.contextmanager
def filtered_stderr(noise: re.Pattern = TENSORFLOW_NOISE) -> Iterator[None]:
    """Capture file descriptor 2 for the block, then write back every line that is not `noise`."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr descriptor to capture
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode(errors="replace").splitlines(True) if not noise.search(line)]
            sys.stderr.write("".join(kept))
            sys.stderr.flush()


class _QuietLoader(importlib.abc.Loader):
    """Runs TensorFlow's own loader under `filtered_stderr`, then gets out of the way."""

    def __init__(self, loader: importlib.abc.Loader, finder: "_QuietTensorFlowImport"):
        self.loader, self.finder = loader, finder

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        module.__spec__.loader = module.__loader__ = self.loader
        self.finder.uninstall()
        with filtered_stderr():
            self.loader.exec_module(module)
            try:
                module.config.list_physical_devices()  # TensorFlow probes CUDA here ("failed call to cuInit")
            except Exception:  # noqa: BLE001  runtime.accelerator() lists them again and reports a failure
                pass


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Catches the first `import tensorflow`, whoever makes it (Keras, tf.data, kerastl)."""

    def __init__(self):
        self.finding = False

    def find_spec(self, fullname, path, target=None):
        if fullname != "tensorflow" or self.finding:
            return None
        self.finding = True  # the normal finders do the finding
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self.finding = False
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader, self)
        return spec

    def uninstall(self) -> None:
        if self in sys.meta_path:
            sys.meta_path.remove(self)


def _not_retracing(record: logging.LogRecord) -> bool:
    return "triggered tf.function retracing" not in record.getMessage()


def install() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0":  # the user asked to see everything
        return
    logging.getLogger("absl").setLevel(logging.ERROR)
    if _not_retracing not in logging.getLogger("tensorflow").filters:
        logging.getLogger("tensorflow").addFilter(_not_retracing)
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowImport())


install()
