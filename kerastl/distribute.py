"""Training on several devices, or several processes (hosts), with Keras' own distribution.

`--distribute auto` (the default) trains data-parallel on every local accelerator when there is
more than one; `--devices N` asks for N devices (CPU devices too, for tests); `--distribute off`
keeps one device. `--batch-size` is the global batch: each of N devices takes batch/N images.

- JAX: `keras.distribution.DataParallel` over a `DeviceMesh`, set before the model is built.
  Several processes join through `keras.distribution.initialize()`, configured by
  KERAS_DISTRIBUTION_JOB_ADDRESSES (the coordinator's host:port first), _NUM_PROCESSES and
  _PROCESS_ID; Keras then gives each process its own shard of every batched tf.data pipeline.
- TensorFlow: `tf.distribute.MirroredStrategy`; the model is built and compiled in its scope and
  Keras distributes the datasets.
- PyTorch: Keras 3.15 has no distribution for torch; it trains on one device.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass
from typing import Callable, Iterator

from kerastl.errors import UserError

ENV_PROCESSES = "KERAS_DISTRIBUTION_NUM_PROCESSES"
ENV_PROCESS_ID = "KERAS_DISTRIBUTION_PROCESS_ID"
ENV_ADDRESSES = "KERAS_DISTRIBUTION_JOB_ADDRESSES"


@dataclass(frozen=True)
class Placement:
    """Where training runs. `batch_multiple`: every batch must hold a multiple of this many images
    (JAX splits each batch evenly over its devices; the batch size itself for full batches only)."""

    kind: str  # "single", "DataParallel" or "MirroredStrategy"
    devices: int = 1
    processes: int = 1
    batch_multiple: int = 1

    def summary(self) -> dict:
        return {"kind": self.kind, "devices": self.devices, "processes": self.processes}


SINGLE = Placement("single")
_active = SINGLE


def active() -> Placement:
    """The placement of the training now running (SINGLE outside `distributed`)."""
    return _active


def processes_from_env() -> int:
    value = os.environ.get(ENV_PROCESSES, "1")
    try:
        count = int(value)
    except ValueError:
        raise UserError(f"{ENV_PROCESSES} must be a whole number, got {value!r}") from None
    if count < 1:
        raise UserError(f"{ENV_PROCESSES} must be at least 1, got {count}")
    return count


def connect_processes() -> int:
    """Join the other processes named by the KERAS_DISTRIBUTION_* variables; returns how many
    processes train together (1 when the variables are not set). JAX only, and it must run before
    JAX starts its devices, so `fit` calls it first."""
    count = processes_from_env()
    if count == 1:
        return 1
    import keras

    if keras.backend.backend() != "jax":
        raise UserError(
            f"{ENV_PROCESSES}={count}: several processes train together only on the JAX backend "
            f"(this is {keras.backend.backend()}); unset it or use KERAS_BACKEND=jax"
        )
    for name in (ENV_ADDRESSES, ENV_PROCESS_ID):
        if not os.environ.get(name):
            raise UserError(f"{ENV_PROCESSES}={count} needs {name} too")
    keras.distribution.initialize()
    return count


def _jax_devices(requested: int | None, processes: int) -> list:
    """The devices to train on: N per process, or every local accelerator ('auto')."""
    import jax

    local = jax.local_devices()
    accelerators = local[0].platform != "cpu"
    if requested is None and processes == 1 and not (accelerators and len(local) > 1):
        return []
    per_process = requested or len(local)
    if per_process > len(local):
        raise UserError(f"--devices {per_process}: this process sees only {len(local)} {local[0].platform} device(s)")
    by_process: dict[int, list] = {}
    for device in jax.devices():
        by_process.setdefault(device.process_index, []).append(device)
    return [d for p in sorted(by_process) for d in by_process[p][:per_process]]


def _tf_devices(requested: int | None) -> list[str]:
    import tensorflow as tf

    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    if requested is None:
        return gpus if len(gpus) > 1 else []
    pool = gpus or [d.name for d in tf.config.list_logical_devices("CPU")]
    if requested > len(pool):
        raise UserError(f"--devices {requested}: TensorFlow sees only {len(pool)} {'GPU' if gpus else 'CPU'} device(s)")
    return pool[:requested]


def _check_batch(batch_size: int, devices: int) -> None:
    if batch_size % devices:
        raise UserError(
            f"--batch-size {batch_size} (the global batch) must be a multiple of the {devices} devices; "
            f"try {batch_size - batch_size % devices or devices}"
        )


@contextlib.contextmanager
def distributed(config: dict, has_accelerator: bool = False, log: Callable[[str], None] = print) -> Iterator[Placement]:
    """Place the training built and run inside this block: set Keras' distribution (JAX) or enter a
    MirroredStrategy scope (TensorFlow). Yields the Placement, recorded in metrics.json.

    Where steps are compiled per batch shape (JAX; any accelerator) every batch is full: training
    drops a last partial batch and evaluation pads it with weight-0 images, so each stage compiles
    one step, not two (on a CPU, JAX's first fine-tuning epoch took 96 s, 60 of them compiling)."""
    import keras

    global _active
    placement, scope = _place(config, log)
    if has_accelerator or placement.processes > 1 or keras.backend.backend() == "jax":
        placement = dataclasses.replace(placement, batch_multiple=config["batch_size"])
    _active = placement
    try:
        with scope:
            yield placement
    finally:
        _active = SINGLE


def fit_batch_to(config: dict, train_images: int, log: Callable[[str], None]) -> None:
    """A batch larger than the training set would make no full batch (and no step where only full
    batches run): shrink it to the training set, in whole multiples of the devices."""
    global _active
    old = config["batch_size"]
    if train_images >= old:
        return
    new = max(_active.devices, train_images // _active.devices * _active.devices)
    config["batch_size"] = new
    if _active.batch_multiple == old:
        _active = dataclasses.replace(_active, batch_multiple=new)
    log(f"data: batch size {old} is more than the {train_images} training images; using {new}")


def _place(config: dict, log: Callable[[str], None]) -> tuple[Placement, contextlib.AbstractContextManager]:
    import keras

    mode, requested = config.get("distribute", "auto"), config.get("devices")
    processes = processes_from_env()
    one_device = (SINGLE, contextlib.nullcontext())
    if mode == "off":
        if requested not in (None, 1) or processes > 1:
            why = f"--devices {requested}" if requested not in (None, 1) else f"{ENV_PROCESSES}={processes}"
            raise UserError(f"{why} needs --distribute auto (it is off)")
        return one_device
    backend = keras.backend.backend()
    if processes > 1 and config["mode"] == "feature":
        raise UserError("feature mode computes its features in one process; run it without " + ENV_PROCESSES)

    if backend == "jax":
        devices = _jax_devices(requested, processes)
        if len(devices) < 2 and processes == 1:
            return one_device
        _check_batch(config["batch_size"], len(devices))
        mesh = keras.distribution.DeviceMesh((len(devices),), ["batch"], [f"{d.platform}:{d.id}" for d in devices])
        placement = Placement("DataParallel", len(devices), processes, len(devices))
        scope = keras.distribution.DataParallel(device_mesh=mesh).scope()
    elif backend == "tensorflow":
        devices = _tf_devices(requested)
        if len(devices) < 2:
            return one_device
        _check_batch(config["batch_size"], len(devices))
        import tensorflow as tf

        placement = Placement("MirroredStrategy", len(devices))
        scope = tf.distribute.MirroredStrategy(devices).scope()
    else:
        wanted = requested if requested is not None else _torch_gpu_count()
        if wanted > 1:
            log(f"distribute: Keras {keras.__version__} has no distribution for PyTorch; training on one device")
        return one_device

    share = f"{config['batch_size'] // placement.devices} images each of every batch of {config['batch_size']}"
    where = f" in {processes} processes" if processes > 1 else ""
    log(f"distribute: {placement.kind} over {placement.devices} devices{where}, {share}")
    return placement, scope


def _torch_gpu_count() -> int:
    import torch

    return torch.cuda.device_count()
