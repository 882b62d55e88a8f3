"""Helper process for tests/test_distribute.py: trains on several CPU devices and reports JSON.

    python -m tests.distributed_run check    # placement, replicated variables, split batches, and
                                             # one epoch on 2 devices against one device
    python -m tests.distributed_run fit ARGS # `kerastl.fit ARGS`; with several processes (the
                                             # KERAS_DISTRIBUTION_* variables) it then prints the
                                             # labels this process reads of a batched pipeline

JAX sees two CPU devices through XLA_FLAGS=--xla_force_host_platform_device_count=2 (set by the
test); TensorFlow gets two logical CPU devices here, before it starts. The last line printed is
the JSON report.
"""

from __future__ import annotations

import json
import sys

import keras
import numpy as np

CPU_DEVICES = 2
BATCH = 64


def _two_tensorflow_cpus() -> None:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * CPU_DEVICES)


def _data():
    from kerastl.data import load_arrays, make_splits

    splits = make_splits(load_arrays("mnist", log=lambda _: None), 0.1, 256, 101, 0)
    return splits


def _one_epoch(splits, config: dict) -> dict:
    """One epoch of a dropout-free MLP (so one device and several must agree) under `config`."""
    from kerastl import distribute
    from kerastl.data import fit_inputs, validation_data
    from kerastl.models import build_mlp

    keras.utils.set_random_seed(0)
    with distribute.distributed(distribute.place(config, has_accelerator=False, log=lambda _: None)) as placement:
        model = build_mlp(dropout=0.0)
        model.compile(keras.optimizers.SGD(0.05), "sparse_categorical_crossentropy", weighted_metrics=["accuracy"])
        # Not shuffled: under a strategy Keras' TensorFlow trainer draws one batch to build the model,
        # so a reshuffling dataset would start its first epoch one permutation later.
        train = fit_inputs(splits.x_train, splits.y_train, BATCH, shuffle=False, seed=0)
        history = model.fit(**train, validation_data=validation_data(splits.x_val, splits.y_val, BATCH), epochs=1, verbose=0)
        test_loss, test_accuracy = model.evaluate(**fit_inputs(splits.x_test, splits.y_test, BATCH, shuffle=False, seed=0), verbose=0)
        report = {
            "placement": placement.summary(),
            "loss": history.history["loss"][0],
            "val_loss": history.history["val_loss"][0],
            "test_loss": float(test_loss),
            "test_accuracy": float(test_accuracy),
        }
        if placement.devices > 1:
            report.update(_how_it_is_split(model, train["x"]))
    return report


def _how_it_is_split(model, dataset) -> dict:
    """Where one variable lives and how one training batch is cut, as each backend sees it."""
    x, _ = next(iter(dataset))
    if keras.backend.backend() == "jax":
        from keras.src.backend.jax.trainer import _distribute_data  # how Keras' JAX trainer feeds a step

        batch = _distribute_data(np.asarray(x))
        kernel = model.weights[0].value
        return {
            "variable_devices": len(kernel.sharding.device_set),
            "variable_replicated": bool(kernel.sharding.is_fully_replicated),
            "batch_shards": sorted([list(s.data.shape) for s in batch.addressable_shards]),
            "batch_devices": len({s.device for s in batch.addressable_shards}),
        }
    import tensorflow as tf

    strategy = tf.distribute.get_strategy()
    per_replica = next(iter(strategy.experimental_distribute_dataset(dataset)))[0]
    kernel = model.weights[0].value
    return {
        "replicas_in_sync": strategy.num_replicas_in_sync,
        "variable_devices": len({v.device for v in kernel.values}),
        "variable_replicated": bool(all(np.array_equal(kernel.values[0].numpy(), v.numpy()) for v in kernel.values)),
        "batch_shards": sorted([list(v.shape) for v in per_replica.values]),
        "batch_devices": len({v.device for v in per_replica.values}),
    }


def check() -> dict:
    splits = _data()
    base = {"mode": "mlp", "batch_size": BATCH}
    return {
        "several": _one_epoch(splits, {**base, "distribute": "auto", "devices": CPU_DEVICES}),
        "one": _one_epoch(splits, {**base, "distribute": "off", "devices": None}),
    }


def fit(argv: list[str]) -> dict:
    from kerastl import distribute, fit as fit_command
    from kerastl.cli import run_cli

    code = run_cli("kerastl.fit", lambda: fit_command.main(argv))
    report = {"exit": code}
    if distribute.processes_from_env() > 1:
        report["labels_read"] = _labels_read_by_this_process()
    return report


def _labels_read_by_this_process() -> list[int]:
    """The labels of the first global batch of 8 that Keras hands this process."""
    import jax

    from kerastl.data import make_dataset

    labels = np.arange(16) % 10
    pixels = np.zeros((16, 28, 28, 1), "uint8")
    dataset = make_dataset(pixels, labels, 8, shuffle=False)
    shard = keras.distribution.DataParallel().distribute_dataset(dataset)
    first = next(iter(shard))[1].numpy()
    return [int(jax.process_index())] + first.tolist()


def main() -> int:
    command, args = sys.argv[1], sys.argv[2:]
    if keras.backend.backend() == "tensorflow":
        _two_tensorflow_cpus()
    report = check() if command == "check" else fit(args)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
