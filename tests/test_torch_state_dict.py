"""The `.pth` reader against crafted files, in both of PyTorch's layouts (legacy and zip).

The files are written here opcode by opcode, as `torch.save` writes them, so every field a
tampered file could carry (offsets, sizes, strides, storage references, dtypes) can be set at will.
"""

import pickle
import struct
import zipfile

import numpy as np
import pytest

from kerastl.backbones.torch_state_dict import LEGACY_MAGIC, read_state_dict
from kerastl.errors import UserError

STORAGE = np.arange(12, dtype="<f4")  # storage "0": 12 float32 values


def _plain(value) -> bytes:
    """Opcodes pushing a plain value (int, str, tuple, bool, None): a pickle without PROTO and STOP."""
    return pickle.dumps(value, protocol=2)[2:-1]


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _tensor(offset=0, size=(12,), stride=(1,), key="0", numel=12, storage="FloatStorage", legacy=False, pid=None) -> bytes:
    """`torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)`."""
    if pid is None:
        view = _plain(None) if legacy else b""
        pid = b"(" + _plain("storage") + _global("torch", storage) + _plain(key) + _plain("cpu") + _plain(numel) + view + b"t"
    return (
        _global("torch._utils", "_rebuild_tensor_v2") + b"("
        + pid + b"Q" + _plain(offset) + _plain(size) + _plain(stride) + _plain(False)
        + _global("collections", "OrderedDict") + b")R" + b"tR"
    )


def _state_dict(tensors: dict[str, bytes]) -> bytes:
    items = b"".join(_plain(name) + tensor for name, tensor in tensors.items())
    return b"\x80\x02" + _global("collections", "OrderedDict") + b")R(" + items + b"u."


def write_legacy(path, tensors: dict, storage: np.ndarray = STORAGE, count: int | None = None):
    sys_info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 8}}
    with open(path, "wb") as f:
        for header in (LEGACY_MAGIC, 1001, sys_info):
            pickle.dump(header, f, protocol=2)
        f.write(_state_dict({k: v(legacy=True) for k, v in tensors.items()}))
        pickle.dump(["0"], f, protocol=2)
        f.write(struct.pack("<q", len(storage) if count is None else count) + storage.tobytes())
    return path


def write_zip(path, tensors: dict, storage: np.ndarray = STORAGE):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", _state_dict({k: v(legacy=False) for k, v in tensors.items()}))
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/data/0", storage.tobytes())
        archive.writestr("archive/version", "3\n")
    return path


WRITERS = {"legacy": write_legacy, "zip": write_zip}


def tensor(**fields):
    return lambda legacy: _tensor(legacy=legacy, **fields)


@pytest.mark.parametrize("layout", WRITERS)
def test_crafted_files_read_like_torch_writes_them(tmp_path, layout):
    path = WRITERS[layout](tmp_path / "ok.pth", {
        "whole": tensor(),
        "transposed": tensor(offset=2, size=(3, 2), stride=(1, 3)),
        "row": tensor(offset=11, size=(1, 1), stride=(99, 99)),  # strides of size-1 dims are never used
        "empty": tensor(offset=0, size=(0, 5), stride=(5, 1)),
    })
    state = read_state_dict(path)
    np.testing.assert_array_equal(state["whole"], STORAGE)
    np.testing.assert_array_equal(state["transposed"], [[2, 5], [3, 6], [4, 7]])
    np.testing.assert_array_equal(state["row"], [[11]])
    assert state["empty"].shape == (0, 5)


@pytest.mark.parametrize("layout", WRITERS)
def test_torch_reads_the_crafted_files_the_same_way(tmp_path, layout):
    torch = pytest.importorskip("torch")
    path = WRITERS[layout](tmp_path / "ok.pth", {"t": tensor(offset=2, size=(3, 2), stride=(1, 3))})
    np.testing.assert_array_equal(torch.load(path, weights_only=True)["t"].numpy(), read_state_dict(path)["t"])


HOSTILE = {
    "offset past the end": (dict(offset=12, size=(1,)), "reads outside its storage"),
    "size past the end": (dict(offset=4, size=(9,)), "reads outside its storage"),
    "stride past the end": (dict(size=(2, 2), stride=(1, 11)), "reads outside its storage"),
    "huge stride": (dict(size=(2,), stride=(2**70,)), "reads outside its storage"),
    "huge size with stride 0": (dict(size=(2**62,), stride=(0,)), "reads outside its storage"),
    "negative offset": (dict(offset=-1, size=(2,)), "negative or non-integer"),
    "negative stride": (dict(offset=11, size=(2,), stride=(-1,)), "negative or non-integer"),
    "negative size": (dict(size=(-3,)), "negative or non-integer"),
    "float offset": (dict(offset=1.5, size=(2,)), "negative or non-integer"),
    "sizes without strides": (dict(size=(2, 2), stride=(1,)), "2 sizes but 1 strides"),
    "unknown dtype": (dict(storage="ComplexFloatStorage"), "unsupported tensor type torch.ComplexFloatStorage"),
    "storage of another file": (dict(key="7"), "storage '?7"),
    "storage bigger than its bytes": (dict(numel=13), "storage 0"),
    "persistent id too short": (dict(pid=b"(" + _plain("storage") + _global("torch", "FloatStorage") + b"t"), "malformed"),
    "persistent id not a tuple": (dict(pid=_plain("storage")), "malformed"),
    "persistent id with a negative count": (
        dict(pid=b"(" + _plain("storage") + _global("torch", "FloatStorage") + _plain("0") + _plain("cpu") + _plain(-5) + b"t"),
        "malformed",
    ),
}


@pytest.mark.parametrize("layout", WRITERS)
@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_tensors_are_refused_with_one_line(tmp_path, layout, case):
    fields, message = HOSTILE[case]
    path = WRITERS[layout](tmp_path / "hostile.pth", {"ok": tensor(), "bad": tensor(**fields)})
    with pytest.raises(UserError, match=message) as info:
        read_state_dict(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_broken_pickles_and_counts_are_user_errors(tmp_path):
    wrong_count = write_legacy(tmp_path / "count.pth", {"t": tensor()}, count=2**61)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(write_legacy(tmp_path / "full.pth", {"t": tensor()}).read_bytes()[:-10])
    bad_call = tmp_path / "call.pth"  # _rebuild_tensor_v2 called with one argument
    with open(bad_call, "wb") as f:
        for header in (LEGACY_MAGIC, 1001, {"little_endian": True}):
            pickle.dump(header, f, protocol=2)
        f.write(b"\x80\x02" + _global("torch._utils", "_rebuild_tensor_v2") + b"(" + _plain(1) + b"tR.")
    garbage_zip = tmp_path / "garbage.pth"
    with zipfile.ZipFile(garbage_zip, "w") as archive:
        archive.writestr("archive/data.pkl", b"\x80\x02(not a pickle")
    for path, message in ((wrong_count, "says it holds"), (truncated, "says it holds|truncated|not a readable"),
                          (bad_call, "not a readable PyTorch state dict"), (garbage_zip, "not a readable PyTorch state dict")):
        with pytest.raises(UserError, match=message):
            read_state_dict(path)


def test_a_hostile_weights_file_is_one_line_and_exit_2_from_the_command(tmp_path, capsys):
    from kerastl import fit
    from kerastl.cli import run_cli

    path = write_legacy(tmp_path / "hostile.pth", {"_conv_stem.weight": tensor(offset=10**9)})
    argv = ["--mode", "finetune", "--weights", str(path), "--limit", "100", "--test-limit", "50", "--epochs", "1",
            "--img-size", "32", "--output-dir", str(tmp_path / "runs")]
    assert run_cli("kerastl.fit", lambda: fit.main(argv)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "reads outside its storage" in err[0], err
    assert not any((tmp_path / "runs").glob("*/model.keras"))
