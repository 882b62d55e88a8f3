"""Modules that are also the function they are named after: `kerastl.predict(...)`, `kerastl.lr_find(...)`,
`kerastl.explain(...)`.

Importing `kerastl.predict` makes the package attribute `predict` that module (Python sets it), so
the module itself must be what `kerastl.predict(model, images)` calls.
"""

from __future__ import annotations

import sys
import types
from typing import Callable


def make_callable(module_name: str, function: Callable) -> None:
    """Calling the module `module_name` calls `function`."""

    class CallableModule(types.ModuleType):

        def __call__(self, *args, **kwargs):
            return function(*args, **kwargs)

    sys.modules[module_name].__class__ = CallableModule
