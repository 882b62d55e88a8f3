import gzip
import hashlib
import pickle
import struct

import numpy as np
import pytest

from kerastl.data import make_splits, sources
from kerastl.data.idx import read_idx, read_idx_folder
from kerastl.errors import DataUnavailable, UserError
from kerastl.safe_pickle import UnsafePickle, load_numpy_pickle


TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
# sha256 of the arrays' bytes, as reconstructed from the package-index mirror
ARRAY_SHA256 = {
    "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "y_train": "e474323ac02fc156161b0bbb1f8c9cfeb327a74bcd9f9680a8385269a24f566c",
    "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "y_test": "2fd8de6bdb8d11780b4b96dc57847bcfe6953f7c32aa48bfcd8237c3b7847243",
}


def test_mnist_shapes_dtypes_and_label_counts(mnist):
    assert mnist["x_train"].shape == (60000, 28, 28, 1) and mnist["x_train"].dtype == np.uint8
    assert mnist["x_test"].shape == (10000, 28, 28, 1) and mnist["x_test"].dtype == np.uint8
    assert mnist["y_train"].dtype == np.int64
    assert np.bincount(mnist["y_train"]).tolist() == TRAIN_COUNTS
    assert np.bincount(mnist["y_test"]).tolist() == TEST_COUNTS
    assert mnist["x_train"].max() == 255 and mnist["x_train"].min() == 0


def test_mnist_arrays_match_the_mirror_reconstruction_exactly(mnist):
    for role, digest in ARRAY_SHA256.items():
        assert hashlib.sha256(np.ascontiguousarray(mnist[role]).tobytes()).hexdigest() == digest, role


def test_mirror_pickle_hash_is_checked():
    with pytest.raises(ValueError, match="sha256"):
        sources.mnist_from_mirror_pickle(b"not the mirror file")


def test_restricted_unpickler_refuses_code():
    class Evil:
        def __reduce__(self):
            import os

            return (os.system, ("echo pwned",))

    with pytest.raises(UnsafePickle):
        load_numpy_pickle(pickle.dumps(Evil()))
    arrays = load_numpy_pickle(pickle.dumps((np.arange(5, dtype=np.float32), np.int64(3))))
    assert arrays[0].tolist() == [0, 1, 2, 3, 4] and arrays[1] == 3


def _write_idx(path, array, gz):
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_folder_round_trip(tmp_path, rng, gz):
    images = {s: rng.integers(0, 256, (n, 28, 28), dtype=np.uint8) for s, n in (("train", 7), ("t10k", 3))}
    labels = {s: rng.integers(0, 10, len(images[s]), dtype=np.uint8) for s in images}
    suffix = ".gz" if gz else ""
    for s in images:
        _write_idx(tmp_path / f"{s}-images-idx3-ubyte{suffix}", images[s], gz)
        _write_idx(tmp_path / f"{s}-labels-idx1-ubyte{suffix}", labels[s], gz)
    arrays = read_idx_folder(tmp_path)
    assert arrays["x_train"].shape == (7, 28, 28, 1) and arrays["y_test"].dtype == np.int64
    np.testing.assert_array_equal(arrays["x_test"][..., 0], images["t10k"])
    np.testing.assert_array_equal(arrays["y_train"], labels["train"])
    loaded = sources.load_arrays("mnist", data_dir=tmp_path, log=lambda _: None)
    np.testing.assert_array_equal(loaded["x_train"], arrays["x_train"])


def test_idx_reader_rejects_truncated_file(tmp_path):
    path = tmp_path / "x-idx3-ubyte"
    _write_idx(path, np.zeros((4, 28, 28)), gz=False)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(UserError, match="truncated"):
        read_idx(path)


def test_fashion_mnist_from_debian_package():
    if not sources.FASHION_MNIST_DEBIAN_DIR.is_dir():
        pytest.skip("Debian package dataset-fashion-mnist not installed")
    arrays = read_idx_folder(sources.FASHION_MNIST_DEBIAN_DIR)
    assert arrays["x_train"].shape == (60000, 28, 28, 1) and arrays["x_test"].shape == (10000, 28, 28, 1)
    assert np.bincount(arrays["y_train"]).tolist() == [6000] * 10


def test_every_failed_source_is_named(monkeypatch):
    def fail(name):
        raise OSError("offline")

    monkeypatch.setattr(sources, "SOURCES", (("first source", fail), ("second source", fail)))
    with pytest.raises(DataUnavailable) as info:
        sources.load_arrays("mnist", log=lambda _: None)
    message = str(info.value)
    assert "first source: OSError: offline" in message and "second source" in message and "--data-dir" in message


def test_splits_are_seeded_disjoint_and_never_touch_test(mnist):
    a = make_splits(mnist, validation_fraction=0.1, seed=1)
    b = make_splits(mnist, validation_fraction=0.1, seed=1)
    assert a.sizes() == {"train": 54000, "validation": 6000, "test": 10000}
    np.testing.assert_array_equal(a.y_val, b.y_val)
    np.testing.assert_array_equal(a.x_test, mnist["x_test"])
    # train and validation are disjoint pieces of the official train split
    keys = lambda x: {hashlib.md5(img.tobytes()).hexdigest() for img in x}  # noqa: E731
    assert not keys(a.x_val[:500]) & keys(a.x_train)
    small = make_splits(mnist, validation_fraction=0.1, limit=300, test_limit=50, seed=1)
    assert small.sizes() == {"train": 300, "validation": 30, "test": 50}
    assert make_splits(mnist, limit=300, seed=2).y_train.tolist() != small.y_train.tolist()
