"""What the run executes on: backend, accelerator, precision and XLA settings."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import keras

from kerastl.errors import first_line
from kerastl.modes import BACKBONE_MODES


def backend() -> str:
    return keras.backend.backend()


# What a backend raises when its GPU stack is installed but broken (no driver, wrong CUDA version, a
# build without CUDA): reported in one line, then the run continues on the CPU. Anything else is a bug.
PROBE_ERRORS = (ImportError, OSError, RuntimeError, AssertionError, ValueError)
NVIDIA_DRIVER = Path("/proc/driver/nvidia/version")  # present when an NVIDIA driver is loaded


def _warn(message: str) -> None:
    print(f"kerastl: warning: {message}", file=sys.stderr)


def _probe(name: str) -> str | None:
    if name == "jax":
        import jax

        device = jax.devices()[0]
        return None if device.platform == "cpu" else f"{device.platform}:{device.device_kind}"
    if name == "torch":
        import torch

        return f"cuda:{torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else None
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return f"gpu:{gpus[0].name}" if gpus else None


@functools.cache
def accelerator() -> str | None:
    """A short name of the GPU/TPU the current backend will use, or None on a CPU-only machine.

    A probe that fails, or an NVIDIA driver that the backend cannot use, is reported in one
    warning line before falling back to the CPU. Asked once per process.
    """
    name = backend()
    try:
        found = _probe(name)
    except PROBE_ERRORS as exc:
        _warn(f"the {name} backend could not look for a GPU ({first_line(exc)}); running on the CPU")
        return None
    if found is None and NVIDIA_DRIVER.exists():
        _warn(f"an NVIDIA driver is loaded ({NVIDIA_DRIVER}) but the {name} backend sees no GPU "
              "(is its CUDA build installed?); running on the CPU")
    return found


def device_description() -> str:
    return accelerator() or "cpu"


def apply_precision(precision: str, has_accelerator: bool) -> str:
    """Set Keras' global dtype policy; "auto" is bfloat16 mixed precision on an accelerator."""
    policy = precision if precision != "auto" else ("mixed_bfloat16" if has_accelerator else "float32")
    keras.mixed_precision.set_global_policy(policy)
    return policy


def jit_setting(jit_compile, has_accelerator: bool):
    """XLA for `model.compile`. On TensorFlow without an accelerator XLA is off by default: here it
    made EfficientNet-Lite0 training about 8x slower (80 vs 684 images/s at 32 px on 2 cores)."""
    if jit_compile != "auto":
        return jit_compile
    if backend() == "tensorflow" and not has_accelerator:
        return False
    return "auto"


# Steady fine-tuning epoch of EfficientNet-Lite0 (40 px, batch 128) on 2 CPU cores, relative to
# TensorFlow with oneDNN: benchmarks/cpu_backends.py, see the README. Only the transfer modes were measured.
CPU_EPOCH_VS_TENSORFLOW = {"jax": 2.2, "torch": 2.6}


def cpu_backend_advice(mode: str, has_accelerator: bool) -> str | None:
    """One line naming the faster backend, where this one is known to be much slower on a CPU."""
    ratio = CPU_EPOCH_VS_TENSORFLOW.get(backend())
    if has_accelerator or ratio is None or mode not in BACKBONE_MODES:
        return None
    return (f"kerastl: on a CPU, {backend()} trains the backbones about {ratio:g}x slower than TensorFlow "
            f"(measured by benchmarks/cpu_backends.py); KERAS_BACKEND=tensorflow is the faster choice here")
