"""Falling back to the CPU is never silent."""

import numpy as np
import pytest

from kerastl import runtime
from tests.helpers import backend


@pytest.fixture(autouse=True)
def fresh_probe():
    clear = getattr(runtime.accelerator, "cache_clear", lambda: None)  # the probe runs once per process
    clear()
    yield
    clear()


def _break_the_probe(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("CUDA driver version is insufficient for CUDA runtime version")

    name = backend()
    if name == "jax":
        import jax

        monkeypatch.setattr(jax, "devices", broken)
    elif name == "torch":
        import torch

        monkeypatch.setattr(torch.cuda, "is_available", broken)
    else:
        import tensorflow as tf

        monkeypatch.setattr(tf.config, "list_physical_devices", broken)


@pytest.mark.every_backend
def test_a_failing_gpu_probe_warns_in_one_line_and_falls_back_to_the_cpu(monkeypatch, capsys):
    _break_the_probe(monkeypatch)
    assert runtime.accelerator() is None
    assert runtime.device_description() == "cpu"  # asked again: no second warning
    err = capsys.readouterr().err.splitlines()
    assert err == [f"kerastl: warning: the {backend()} backend could not look for a GPU (RuntimeError: "
                   "CUDA driver version is insufficient for CUDA runtime version); running on the CPU"]


@pytest.mark.every_backend
def test_an_nvidia_driver_the_backend_cannot_use_is_named(monkeypatch, capsys, tmp_path):
    driver = tmp_path / "version"
    driver.write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module\n")
    monkeypatch.setattr(runtime, "NVIDIA_DRIVER", driver)
    assert runtime.accelerator() is None  # this machine has no GPU
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "NVIDIA driver is loaded" in err[0] and "running on the CPU" in err[0], err


@pytest.mark.every_backend
def test_a_cpu_only_machine_says_nothing(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(runtime, "NVIDIA_DRIVER", tmp_path / "absent")
    assert runtime.accelerator() is None
    assert capsys.readouterr().err == ""


@pytest.mark.every_backend
def test_jax_compiles_models_with_augmentation_layers():
    """Keras' jit_compile="auto" turns XLA off for a model holding RandomTranslation & co; under
    JAX kerastl's augmentation layers compile (op by op a step was several times slower); on
    TensorFlow without an accelerator XLA stays off, and PyTorch keeps Keras' choice (off)."""
    import keras

    from kerastl.config import resolve
    from kerastl.models import build_cnn
    from kerastl.train import _compile

    config = resolve("cnn", None, {}, False)
    model = build_cnn(augment=True)
    assert "augment_shift" in [layer.name for layer in model.layers]
    _compile(model, 1e-3, config, has_accelerator=False)
    model.fit(np.zeros((8, 28, 28, 1), "float32"), np.zeros(8, "int64"), batch_size=8, epochs=1, verbose=0)
    expected = {"jax": True, "tensorflow": False, "torch": False}[keras.backend.backend()]
    assert model.jit_compile is expected


@pytest.mark.every_backend
def test_a_backend_known_to_be_slower_on_a_cpu_names_the_faster_one():
    advice = runtime.cpu_backend_advice("finetune", has_accelerator=False)
    if backend() == "tensorflow":
        assert advice is None
    else:
        ratio = {"jax": "2.2x", "torch": "2.6x"}[backend()]
        assert f"{backend()} trains the backbones about {ratio} slower than TensorFlow" in advice
        assert "KERAS_BACKEND=tensorflow is the faster choice here" in advice
    assert runtime.cpu_backend_advice("finetune", has_accelerator=True) is None
    assert runtime.cpu_backend_advice("cnn", has_accelerator=False) is None
