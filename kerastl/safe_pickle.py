"""Unpicklers that rebuild only what a dataset or a weight file legitimately holds.

A pickle can run arbitrary code when loaded. The files kerastl reads (the MNIST mirror, PyTorch
state dicts) need only numpy arrays, tensors and dicts, so everything else is refused.
"""

from __future__ import annotations

import io
import pickle
from typing import Any, Callable, Mapping

from kerastl.errors import UserError


class UnsafePickle(UserError):
    """The file asked to build something other than arrays; it is refused rather than run."""


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler whose `find_class` only returns objects from an explicit allow-list."""

    def __init__(self, file: io.BufferedIOBase, allowed: Mapping[tuple[str, str], Any], **kwargs):
        super().__init__(file, **kwargs)
        self._allowed = dict(allowed)

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafePickle(
                f"refusing to load {module}.{name} from a pickle: only array data is allowed"
            ) from None


def _numpy_allowed() -> dict[tuple[str, str], Callable]:
    import numpy as np

    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar
    allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = _reconstruct
        allowed[(module, "scalar")] = scalar
    return allowed


def load_numpy_pickle(data: bytes) -> Any:
    """Unpickle `data`, allowing only numpy arrays, dtypes and plain Python containers."""
    return RestrictedUnpickler(io.BytesIO(data), _numpy_allowed(), encoding="latin1").load()
