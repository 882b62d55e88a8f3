"""Datasets: MNIST and Fashion-MNIST as uint8 arrays, their splits, and the input pipeline."""

from kerastl.data.datasets import CLASS_NAMES, DATASETS, IMAGE_SHAPE
from kerastl.data.pipeline import fit_inputs, make_dataset, predict, validation_data
from kerastl.data.sources import load_arrays
from kerastl.data.splits import Splits, make_splits


def load_mnist(data_dir=None, log=print):
    """Official MNIST: ((x_train, y_train), (x_test, y_test)), uint8 (N,28,28,1) and int64 labels."""
    a = load_arrays("mnist", data_dir=data_dir, log=log)
    return (a["x_train"], a["y_train"]), (a["x_test"], a["y_test"])


def load_fashion_mnist(data_dir=None, log=print):
    """Official Fashion-MNIST, shaped like `load_mnist`."""
    a = load_arrays("fashion_mnist", data_dir=data_dir, log=log)
    return (a["x_train"], a["y_train"]), (a["x_test"], a["y_test"])


__all__ = ["CLASS_NAMES", "DATASETS", "IMAGE_SHAPE", "Splits", "fit_inputs", "load_arrays", "load_fashion_mnist", "load_mnist", "make_dataset", "make_splits", "predict", "validation_data"]
