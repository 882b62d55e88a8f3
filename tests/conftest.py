"""Fixtures shared by the tests; shared functions and constants are in tests/helpers.py."""

import numpy as np
import pytest

import kerastl  # noqa: F401  first: it sets OMP_WAIT_POLICY before a test module's `import keras` starts PyTorch


@pytest.fixture(scope="session")
def mnist():
    """Official MNIST from the first source that serves (the kerastl cache after the first run)."""
    from kerastl.data import load_arrays

    return load_arrays("mnist", log=lambda _: None)


@pytest.fixture(scope="session")
def mnist_slice(mnist):
    """A small seeded split for quick training runs."""
    from kerastl.data import make_splits

    return make_splits(mnist, validation_fraction=0.1, limit=600, test_limit=300, seed=0)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
