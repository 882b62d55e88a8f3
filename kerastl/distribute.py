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
from typing import Iterator

from kerastl.errors import UserError
from kerastl.log import Log

ENV_PROCESSES = "KERAS_DISTRIBUTION_NUM_PROCESSES"
ENV_PROCESS_ID = "KERAS_DISTRIBUTION_PROCESS_ID"
ENV_ADDRESSES = "KERAS_DISTRIBUTION_JOB_ADDRESSES"


@dataclass(frozen=True)
class Placement:
    """Where training runs: decided once per run (`place`), before the schedule is sized to it.

    `full_batches`: every training batch is full and every evaluation batch padded to the batch
    size, so that each stage compiles one step, not two (JAX, any accelerator, several processes:
    on a CPU, JAX's first fine-tuning epoch took 96 s, 60 of them compiling). Otherwise a batch
    need only split evenly over the devices."""

    kind: str  # "single", "DataParallel" or "MirroredStrategy"
    devices: int = 1
    processes: int = 1
    full_batches: bool = False
    device_names: tuple[str, ...] = ()  # what the scope spreads over (empty: one device)

    def batch_multiple(self, batch_size: int) -> int:
        """Every batch must hold a multiple of this many images."""
        return batch_size if self.full_batches else self.devices

    def summary(self) -> dict:
        return {"kind": self.kind, "devices": self.devices, "processes": self.processes}

    def describe(self, batch_size: int) -> str | None:
        """The log line of a run spread over several devices (None on one)."""
        if self.kind == "single":
            return None
        where = f" in {self.processes} processes" if self.processes > 1 else ""
        return (f"distribute: {self.kind} over {self.devices} devices{where}, "
                f"{batch_size // self.devices} images each of every batch of {batch_size}")


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


def place(config: dict, has_accelerator: bool, log: Log = print) -> Placement:
    """Where this run trains: one device, or data-parallel over several (`distribute`, `devices`).

    Where steps are compiled per batch shape (JAX; any accelerator; several processes) every batch
    is full (`Placement.full_batches`)."""
    import keras

    placement = _place(config, log)
    full = has_accelerator or placement.processes > 1 or keras.backend.backend() == "jax"
    return dataclasses.replace(placement, full_batches=full)


@contextlib.contextmanager
def distributed(placement: Placement) -> Iterator[Placement]:
    """Train inside this block on `placement`: Keras' distribution (JAX) or a MirroredStrategy scope
    (TensorFlow) is set while the model is built and trained. `active()` answers `placement` meanwhile."""
    global _active
    _active = placement
    try:
        with _scope(placement):
            yield placement
    finally:
        _active = SINGLE


def _scope(placement: Placement) -> contextlib.AbstractContextManager:
    import keras

    if placement.kind == "DataParallel":
        mesh = keras.distribution.DeviceMesh((placement.devices,), ["batch"], list(placement.device_names))
        return keras.distribution.DataParallel(device_mesh=mesh).scope()
    if placement.kind == "MirroredStrategy":
        import tensorflow as tf

        return tf.distribute.MirroredStrategy(list(placement.device_names)).scope()
    return contextlib.nullcontext()


def _place(config: dict, log: Log) -> Placement:
    import keras

    mode, requested = config.get("distribute", "auto"), config.get("devices")
    processes = processes_from_env()
    if mode == "off":
        if requested not in (None, 1) or processes > 1:
            why = f"--devices {requested}" if requested not in (None, 1) else f"{ENV_PROCESSES}={processes}"
            raise UserError(f"{why} needs --distribute auto (it is off)")
        return SINGLE
    backend = keras.backend.backend()
    if processes > 1 and config["mode"] == "feature":
        raise UserError("feature mode computes its features in one process; run it without " + ENV_PROCESSES)

    if backend == "jax":
        devices = _jax_devices(requested, processes)
        if len(devices) < 2 and processes == 1:
            return SINGLE
        _check_batch(config["batch_size"], len(devices))
        placement = Placement("DataParallel", len(devices), processes, device_names=tuple(f"{d.platform}:{d.id}" for d in devices))
    elif backend == "tensorflow":
        devices = _tf_devices(requested)
        if len(devices) < 2:
            return SINGLE
        _check_batch(config["batch_size"], len(devices))
        placement = Placement("MirroredStrategy", len(devices), device_names=tuple(devices))
    else:
        wanted = requested if requested is not None else _torch_gpu_count()
        if wanted > 1:
            log(f"distribute: Keras {keras.__version__} has no distribution for PyTorch; training on one device")
        return SINGLE

    return placement


def _torch_gpu_count() -> int:
    import torch

    return torch.cuda.device_count()
