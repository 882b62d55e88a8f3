"""Faster convolutions for JAX on a CPU (XLA:CPU), where EfficientNet-Lite0 trained 14x slower than
on TensorFlow.

Measured on 2 cores (JAX 0.10.2, batch 128, 40 px): XLA:CPU runs depthwise convolutions through a
generic grouped-convolution path, and computes their kernel gradient as a dense C x C convolution
(a 5x5x1152x1152 tensor for the last blocks), so the 16 depthwise layers took 5.6 CPU-seconds per
training step, against 0.16 s for TensorFlow's oneDNN kernels. The same arithmetic written as
elementwise shifts and small per-channel matrix products takes 0.34 s; 1x1 convolutions become
plain matrix products. `use_fast_convolutions()` swaps these into Keras' JAX backend when JAX runs
on the CPU; models, weights and saved files are unchanged (the layers stay Keras' own).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

_installed = False


def use_fast_convolutions() -> bool:
    """On the JAX backend with a CPU device, route Keras' depthwise and 1x1 convolutions through
    the kernels below. Returns whether they are in use. Idempotent."""
    global _installed
    import keras

    if keras.backend.backend() != "jax":
        return False
    import jax

    if jax.default_backend() != "cpu":
        return False
    if not _installed:
        from keras.src.backend.jax import nn as jax_nn

        jax_nn.depthwise_conv = _keras_depthwise(jax_nn.depthwise_conv)
        jax_nn.conv = _keras_conv(jax_nn.conv)
        _installed = True
    return True


def _ones(v) -> bool:
    return all(s == 1 for s in (v if isinstance(v, (tuple, list)) else (v,)))


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _keras_depthwise(original):
    def depthwise_conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
        import keras

        channels_last = (data_format or keras.config.image_data_format()) == "channels_last"
        if inputs.ndim != 4 or not channels_last or not _ones(dilation_rate) or kernel.shape[-1] != 1:
            return original(inputs, kernel, strides, padding, data_format, dilation_rate)
        return depthwise(inputs, kernel[:, :, :, 0].astype(inputs.dtype), _pair(strides), padding.lower())

    return depthwise_conv


def _keras_conv(original):
    def conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
        import keras
        from jax import lax

        channels_last = (data_format or keras.config.image_data_format()) == "channels_last"
        pointwise = inputs.ndim == 4 and kernel.shape[:2] == (1, 1) and kernel.shape[2] == inputs.shape[3]
        if not (channels_last and pointwise and _ones(strides) and _ones(dilation_rate)):
            return original(inputs, kernel, strides, padding, data_format, dilation_rate)
        return lax.dot_general(inputs, kernel[0, 0].astype(inputs.dtype), (((3,), (0,)), ((), ())))

    return conv


# --- depthwise convolution, NHWC, one filter per channel: x (B, H, W, C), w (kh, kw, C) ---


def _padding(size: int, k: int, stride: int, padding: str) -> tuple[tuple[int, int], int]:
    """(before, after) padding and output size, as TensorFlow/Keras define 'same' and 'valid'."""
    if padding == "valid":
        return (0, 0), (size - k) // stride + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    return (total // 2, total - total // 2), out


def depthwise(x, w, strides: tuple[int, int], padding: str):
    """Depthwise convolution with the same result as `lax.conv_general_dilated(feature_group_count=C)`:
    per-channel matrices over positions for small feature maps, shifted windows for large ones."""
    kh, kw = w.shape[:2]
    (ph, oh), (pw, ow) = _padding(x.shape[1], kh, strides[0], padding), _padding(x.shape[2], kw, strides[1], padding)
    frame = (x.shape[1] + sum(ph)) * (x.shape[2] + sum(pw))
    if frame <= 8 * kh * kw:
        return _depthwise_as_matrices(x, w, strides, (ph, pw), (oh, ow))
    return _shifted()(x, w, tuple(strides), (tuple(ph), tuple(pw)))


def _depthwise_as_matrices(x, w, strides, pads, out_hw):
    """y[b, p, c] = sum_q M[p, q, c] x[b, q, c] over the padded input positions q; M holds the
    kernel taps (and zeros), so autodiff gives matrix products and a small scatter for the taps."""
    import jax.numpy as jnp

    kh, kw, c = w.shape
    xp = jnp.pad(x, ((0, 0), *pads, (0, 0)))
    b, hp, wp, _ = xp.shape
    index = _tap_index(hp, wp, *out_hw, kh, kw, *strides)
    taps = jnp.concatenate([w.reshape(kh * kw, c), jnp.zeros((1, c), w.dtype)])  # last row: no tap
    y = jnp.einsum("pqc,bqc->bpc", taps[index], xp.reshape(b, hp * wp, c))
    return y.reshape(b, *out_hw, c)


@lru_cache(maxsize=None)
def _tap_index(hp, wp, oh, ow, kh, kw, sh, sw) -> np.ndarray:
    """index[p, q]: which kernel tap links output position p to padded input position q (kh*kw: none)."""
    index = np.full((oh * ow, hp * wp), kh * kw, np.int32)
    for o in range(oh):
        for p in range(ow):
            for i in range(kh):
                for j in range(kw):
                    index[o * ow + p, (o * sh + i) * wp + (p * sw + j)] = i * kw + j
    return index


def _window_sum(xp, w, strides, out_hw):
    """sum over the kernel taps of the strided window of xp at that tap, times the tap's weights."""
    from jax import lax

    (sh, sw), (oh, ow) = strides, out_hw
    b, _, _, c = xp.shape
    y = None
    for i in range(w.shape[0]):
        for j in range(w.shape[1]):
            window = lax.slice(xp, (0, i, j, 0), (b, i + (oh - 1) * sh + 1, j + (ow - 1) * sw + 1, c), (1, sh, sw, 1))
            y = window * w[i, j] if y is None else y + window * w[i, j]
    return y


@lru_cache(maxsize=None)
def _shifted():
    """Depthwise convolution by shifted windows, with the gradient below (jax imported lazily)."""
    import jax

    shifted = jax.custom_vjp(lambda x, w, strides, pads: _shifted_forward(x, w, strides, pads)[0], nondiff_argnums=(2, 3))
    shifted.defvjp(_shifted_forward, _shifted_backward)
    return shifted


def _shifted_forward(x, w, strides, pads):
    import jax.numpy as jnp
    from jax import lax

    kh, kw = w.shape[:2]
    xp = lax.optimization_barrier(jnp.pad(x, ((0, 0), *pads, (0, 0))))
    out_hw = tuple((xp.shape[1 + d] - (kh, kw)[d]) // strides[d] + 1 for d in (0, 1))
    return _window_sum(xp, w, strides, out_hw), (xp, w)


def _shifted_backward(strides, pads, residuals, dy):
    """Input gradient: the output gradient, dilated by the stride, correlated with the flipped
    kernel. Kernel gradient: per tap, the padded input times the output gradient placed at the
    tap's offset (stride 1), or times that tap's window (strided)."""
    import jax.numpy as jnp
    from jax import lax

    (xp, w), (ph, pw) = residuals, pads
    xp, dy = lax.optimization_barrier((xp, dy))
    (sh, sw), (kh, kw) = strides, w.shape[:2]
    b, hp, wp, c = xp.shape
    oh, ow = dy.shape[1:3]
    zero = jnp.zeros((), dy.dtype)
    spread = lax.pad(dy, zero, ((0, 0, 0), (kh - 1, hp - (oh - 1) * sh - 1, sh - 1), (kw - 1, wp - (ow - 1) * sw - 1, sw - 1), (0, 0, 0)))
    dxp = _window_sum(spread, w[::-1, ::-1], (1, 1), (hp, wp))
    dx = lax.slice(dxp, (0, ph[0], pw[0], 0), (b, hp - ph[1], wp - pw[1], c))
    taps = []
    for i in range(kh):
        for j in range(kw):
            if (sh, sw) == (1, 1):
                at_tap = lax.pad(dy, zero, ((0, 0, 0), (i, hp - i - oh, 0), (j, wp - j - ow, 0), (0, 0, 0)))
                taps.append(jnp.sum(xp * at_tap, axis=(0, 1, 2)))
            else:
                window = lax.slice(xp, (0, i, j, 0), (b, i + (oh - 1) * sh + 1, j + (ow - 1) * sw + 1, c), (1, sh, sw, 1))
                taps.append(jnp.sum(window * dy, axis=(0, 1, 2)))
    return dx, jnp.stack(taps).reshape(kh, kw, c).astype(w.dtype)
