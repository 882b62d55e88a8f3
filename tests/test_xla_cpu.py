"""JAX on a CPU: kerastl's depthwise and 1x1 convolutions give XLA's results and gradients."""

import numpy as np
import pytest

from kerastl import xla_cpu
from tests.helpers import backend, jax_only


TOLERANCE = 1e-5  # relative to the largest value; float32 sums in another order


def _reference(x, w, strides, padding):
    import jax

    return jax.lax.conv_general_dilated(
        x, w[:, :, None, :], strides, padding.upper(), dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=x.shape[-1]
    )


def _close(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and float(np.max(np.abs(a - b))) <= TOLERANCE * max(float(np.max(np.abs(a))), 1e-6)


@pytest.mark.every_backend
@jax_only
@pytest.mark.parametrize(
    "shape, kernel, stride, padding",
    [
        ((2, 2, 2, 8), 5, 1, "same"),  # small maps: per-channel matrices
        ((2, 3, 3, 8), 5, 2, "same"),
        ((2, 5, 5, 6), 3, 2, "same"),
        ((2, 9, 6, 5), 3, 1, "valid"),
        ((2, 21, 17, 3), 3, 1, "same"),  # larger maps: shifted windows
        ((2, 21, 17, 3), 3, 2, "same"),
        ((2, 30, 30, 2), 5, 1, "same"),
        ((2, 30, 30, 2), 5, 2, "valid"),
    ],
)
def test_depthwise_matches_xla_and_its_gradients(shape, kernel, stride, padding, rng):
    import jax
    import jax.numpy as jnp

    x = jnp.asarray(rng.standard_normal(shape).astype("float32"))
    w = jnp.asarray(rng.standard_normal((kernel, kernel, shape[-1])).astype("float32"))
    strides = (stride, stride)
    y_ref = _reference(x, w, strides, padding)
    cotangent = jnp.asarray(rng.standard_normal(y_ref.shape).astype("float32"))
    grads_ref = jax.grad(lambda x, w: jnp.sum(_reference(x, w, strides, padding) * cotangent), argnums=(0, 1))(x, w)
    fast = jax.jit(lambda x, w: xla_cpu.depthwise(x, w, strides, padding))
    grads = jax.jit(jax.grad(lambda x, w: jnp.sum(xla_cpu.depthwise(x, w, strides, padding) * cotangent), argnums=(0, 1)))(x, w)
    assert _close(y_ref, fast(x, w))
    assert _close(grads_ref[0], grads[0]) and _close(grads_ref[1], grads[1])


@pytest.mark.every_backend
@jax_only
def test_keras_layers_use_the_kernels_and_keep_their_results(rng):
    import jax
    import keras

    assert xla_cpu.use_fast_convolutions() == (jax.default_backend() == "cpu")
    x = rng.standard_normal((2, 10, 10, 6)).astype("float32")
    depthwise = keras.layers.DepthwiseConv2D(5, strides=2, padding="same", use_bias=False)
    pointwise = keras.layers.Conv2D(4, 1, use_bias=False)
    y = depthwise(x)
    kernel = np.asarray(depthwise.kernel)[:, :, :, 0]
    assert _close(_reference(x, kernel, (2, 2), "same"), y)
    z = pointwise(y)
    assert _close(np.einsum("bhwc,cd->bhwd", np.asarray(y), np.asarray(pointwise.kernel)[0, 0]), z)


@pytest.mark.every_backend
@pytest.mark.skipif(backend() == "jax", reason="the other backends")
def test_other_backends_are_left_alone():
    assert xla_cpu.use_fast_convolutions() is False
