"""Balanced, seeded `--per-class N` subsets: exact counts per class, validation from the same budget."""

import numpy as np
import pytest

from kerastl import fit
from kerastl.cli import run_cli
from kerastl.data.splits import balanced_indices, make_splits
from kerastl.errors import UserError



def _labels(per_class_counts):
    return np.repeat(np.arange(len(per_class_counts)), per_class_counts)[np.random.default_rng(1).permutation(sum(per_class_counts))]


def test_exact_counts_per_class_disjoint_and_seeded():
    y = _labels([50, 60, 40, 70, 55, 45, 65, 52, 58, 49])
    val, train = balanced_indices(y, per_class=30, validation_fraction=0.1, seed=0)
    assert np.bincount(y[train], minlength=10).tolist() == [27] * 10
    assert np.bincount(y[val], minlength=10).tolist() == [3] * 10
    assert not set(val) & set(train)
    again_val, again_train = balanced_indices(y, 30, 0.1, seed=0)
    assert np.array_equal(again_train, train) and np.array_equal(again_val, val)
    other_val, other_train = balanced_indices(y, 30, 0.1, seed=1)
    assert set(other_train) != set(train)


@pytest.mark.parametrize("per_class, n_val", [(10, 1), (5, 1), (2, 1), (100, 10)])
def test_validation_is_ten_percent_of_the_budget_at_least_one(per_class, n_val):
    y = _labels([200] * 10)
    val, train = balanced_indices(y, per_class, 0.1, seed=0)
    assert np.bincount(y[val], minlength=10).tolist() == [n_val] * 10
    assert np.bincount(y[train], minlength=10).tolist() == [per_class - n_val] * 10


def test_make_splits_per_class_on_mnist(mnist):
    splits = make_splits(mnist, validation_fraction=0.1, test_limit=100, seed=3, per_class=20)
    assert splits.sizes() == {"train": 180, "validation": 20, "test": 100}
    assert np.bincount(splits.y_train, minlength=10).tolist() == [18] * 10
    assert np.bincount(splits.y_val, minlength=10).tolist() == [2] * 10


def test_more_than_a_class_has_is_a_clear_error(mnist):
    with pytest.raises(UserError, match=r"--per-class 5422 is more than class 5 has \(5421 training images\); use at most 5421"):
        make_splits(mnist, per_class=5422)
    with pytest.raises(UserError, match="--limit or --per-class, not both"):
        make_splits(mnist, limit=100, per_class=10)
    with pytest.raises(UserError, match="leaves no training image"):
        balanced_indices(np.arange(10).repeat(5), per_class=1, validation_fraction=0.1, seed=0)


def test_fit_per_class_too_large_exits_2_and_writes_nothing(tmp_path, capsys):
    code = run_cli("kerastl.fit", lambda: fit.main(["--mode", "mlp", "--per-class", "6000", "--output-dir", str(tmp_path)]))
    err = capsys.readouterr().err
    assert code == 2 and err.strip().count("\n") == 0 and "more than class 5 has (5421 training images)" in err, err
    assert list(tmp_path.iterdir()) == []


def test_several_passes_per_epoch_show_every_image_that_many_times():
    from kerastl.data import pipeline

    x = np.arange(10, dtype="uint8").reshape(10, 1, 1, 1) * np.ones((1, 28, 28, 1), "uint8")
    y = np.arange(10)
    batches = list(pipeline.make_dataset(x, y, batch_size=4, shuffle=True, seed=0, passes=3))
    seen = np.concatenate([b[1].numpy() for b in batches])
    assert len(batches) == 8 and np.bincount(seen).tolist() == [3] * 10
