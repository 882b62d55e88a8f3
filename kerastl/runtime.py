"""What the run executes on: backend, accelerator, precision and XLA settings."""

from __future__ import annotations

import keras


def backend() -> str:
    return keras.backend.backend()


def accelerator() -> str | None:
    """A short name of the GPU/TPU the current backend will use, or None on a CPU-only machine."""
    name = backend()
    try:
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
    except Exception:
        return None


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
