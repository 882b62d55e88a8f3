"""kerastl: transfer learning on MNIST with Keras 3 (TensorFlow, JAX or PyTorch).

From Python (a notebook):

    import kerastl
    run = kerastl.run(mode="finetune", epochs=2)     # the flags of `python -m kerastl.fit`
    run.metrics["test_accuracy"], run.history, run.folder, run.model
    kerastl.export_run(run, quantize=["int8"])       # `python -m kerastl.export`
    kerastl.predict(run, ["digit.png"])              # `python -m kerastl.predict`
    kerastl.compare(per_class=[10, 100])             # `python -m kerastl.compare`
    kerastl.explain(run)                             # why transfer works: `python -m kerastl.explain`
    kerastl.inspect("photos/")                       # data health: `python -m kerastl.inspect`
    kerastl.lr_find(model, x, y).suggestion          # a learning rate from a sweep (`fit --lr find`)

Mistakes raise kerastl.UserError, with a message that says what to do.
"""

import os

# PyTorch on a CPU: OpenMP threads that spin while they wait made a fine-tuning step 13x slower on a
# busy 2-core machine (8.1 s against 0.6 s with passive waiting). Set before torch starts; a
# user's own setting wins. TensorFlow and JAX do not use OpenMP's thread pool.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from kerastl import quiet  # noqa: F401,E402  (before anything imports TensorFlow)

import importlib  # noqa: E402

from kerastl.errors import UserError  # noqa: E402

__all__ = ["Run", "UserError", "compare", "explain", "export_run", "inspect", "load_run", "lr_find", "predict", "run"]

# name -> the module that defines it. A command's entry module (kerastl/predict.py, kerastl/compare.py)
# shares the function's name and is never imported: importing it would rebind the package attribute.
_LAZY = {"run": "kerastl.api", "Run": "kerastl.finished_run", "load_run": "kerastl.finished_run", "export_run": "kerastl.export",
         "compare": "kerastl.study", "explain": "kerastl.explanation", "inspect": "kerastl.inspection", "lr_find": "kerastl.lr_finder", "predict": "kerastl.prediction"}


def __getattr__(name: str):
    """Import on first use: the commands (`python -m kerastl.fit --help`) must not wait for Keras."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kerastl' has no attribute {name!r}")
