"""--distribute / --devices: data-parallel training on several (CPU) devices and processes.

Runs with several devices go to subprocesses (JAX needs XLA_FLAGS before it starts; TensorFlow its
logical devices), each bounded in time and only under its own backend's test session, so
run_backends.py runs each once. Tolerance between one device and two: 1e-5 relative on the loss
(float32 sums in another order), and the same test accuracy (to 1e-6: padded batches are weighted).
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from kerastl import distribute
from kerastl.errors import UserError
from kerastl.data import pipeline
from tests.helpers import QUIET, ROOT, backend, jax_only, run_fit, tf_only

FIT_FLAGS = ["--mode", "mlp", "--epochs", "1", "--limit", "256", "--test-limit", "101", "--batch-size", "64", "--seed", "0", "--min-steps", "0"]
TWO_JAX_CPUS = {"KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
TIMEOUT = 300
LOSS_TOLERANCE = 1e-5
ACCURACY_TOLERANCE = 1e-6  # far below one image in 101: the same images right, up to float rounding of the weights


_fit = run_fit  # python -m kerastl.fit, in this process


def _helper(*args, env: dict) -> dict:
    """Run tests/distributed_run.py in a fresh process; its last line is a JSON report."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.distributed_run", *args], cwd=ROOT, capture_output=True, text=True,
        timeout=TIMEOUT, env={**os.environ, **env},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _metrics(run_dir) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


# --- flags and their errors (this backend, in-process) ---


def test_devices_with_distribute_off_is_one_line_and_leaves_no_run(tmp_path, capsys):
    code, out, err = _fit([*FIT_FLAGS, "--distribute", "off", "--devices", "2", "--output-dir", str(tmp_path), "--run-name", "r"], capsys)
    assert code == 2
    assert err.strip() == "kerastl.fit: error: --devices 2 needs --distribute auto (it is off)"
    assert not (tmp_path / "r").exists()


def test_unknown_distribute_value_is_rejected(tmp_path, capsys):
    code, out, err = _fit([*FIT_FLAGS, "--distribute", "yes", "--output-dir", str(tmp_path)], capsys)
    assert code == 2 and "invalid distribute: 'yes'" in err and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(backend() == "torch", reason="PyTorch trains on one device whatever --devices says")
def test_more_devices_than_the_machine_has_is_a_user_error(tmp_path, capsys):
    code, out, err = _fit([*FIT_FLAGS, "--devices", "64", "--output-dir", str(tmp_path), "--run-name", "r"], capsys)
    assert code == 2 and "--devices 64:" in err and "sees only" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(backend() == "jax", reason="under JAX this would really try to join a cluster")
def test_several_processes_need_jax(monkeypatch):
    monkeypatch.setenv(distribute.ENV_PROCESSES, "2")
    with pytest.raises(UserError, match="only on the JAX backend"):
        distribute.connect_processes()


@pytest.mark.every_backend
@pytest.mark.skipif(backend() != "torch", reason="the PyTorch line")
def test_torch_says_it_trains_on_one_device(tmp_path, capsys):
    code, out, err = _fit([*FIT_FLAGS, "--devices", "2", "--output-dir", str(tmp_path), "--run-name", "r"], capsys)
    assert code == 0, err
    assert "distribute: Keras 3.15.1 has no distribution for PyTorch; training on one device" in out
    assert _metrics(tmp_path / "r")["distribution"] == {"kind": "single", "devices": 1, "processes": 1}


# --- even batches for JAX shards ---


@pytest.fixture
def two_devices(monkeypatch):
    monkeypatch.setattr(distribute, "_active", distribute.Placement("DataParallel", devices=2))


def test_evaluation_data_is_padded_with_zero_weights_that_keep_means_exact(two_devices):
    x, y = np.ones((101, 28, 28, 1), "uint8"), np.arange(101) % 10
    px, py, weights, drop = pipeline.even_batches(x, y, 64, training=False)
    assert (len(px), len(py), len(weights), drop) == (102, 102, 102, False)
    assert weights[-1] == 0 and np.allclose(weights[:101], 102 / 101)
    assert np.isclose(weights.sum(), len(weights))  # Keras divides the weighted sum by the padded count
    per_image = np.random.default_rng(0).random(101)
    assert np.isclose(np.sum(weights[:101] * per_image) / len(weights), per_image.mean())


def test_training_data_drops_a_batch_the_devices_cannot_split(two_devices):
    x, y = np.ones((101, 28, 28, 1), "uint8"), np.arange(101) % 10
    assert pipeline.even_batches(x, y, 64, training=True)[2:] == (None, True)
    assert pipeline.even_batches(x[:100], y[:100], 64, training=True)[2:] == (None, False)  # 36 images split 18 + 18


def test_one_device_changes_nothing():
    x, y = np.ones((101, 28, 28, 1), "uint8"), np.arange(101) % 10
    px, py, weights, drop = pipeline.even_batches(x, y, 64, training=False)
    assert px is x and py is y and weights is None and not drop


@pytest.mark.every_backend
def test_accelerators_train_on_full_batches_only():
    """One compiled step per stage on a GPU (and on JAX): the batch size becomes the batch multiple."""
    config = {"mode": "finetune", "batch_size": 256, "distribute": "auto", "devices": None}
    placement = distribute.place(config, has_accelerator=True, log=QUIET)
    with distribute.distributed(placement):
        assert distribute.active() is placement and placement.batch_multiple(256) == 256
        x, y = np.ones((1000, 28, 28, 1), "uint8"), np.arange(1000) % 10
        assert pipeline.even_batches(x, y, 256, training=True)[3] is True  # 232 left over: dropped
        assert len(pipeline.even_batches(x, y, 256, training=False)[0]) == 1024  # padded to 4 full batches
    assert distribute.active() is distribute.SINGLE
    placement = distribute.place(config, has_accelerator=False, log=QUIET)
    assert placement.batch_multiple(256) == (256 if backend() == "jax" else 1)  # JAX compiles per shape on a CPU too


def test_steps_per_epoch_counts_the_batches_the_pipeline_makes():
    """90 images, 6 passes, batch 16: 540 images make 33 full batches and a last one of 12, which a
    placement of full batches drops (JAX, an accelerator) and a single device keeps."""
    assert pipeline.steps_per_epoch(90, 16, 6, multiple=1) == 34
    assert pipeline.steps_per_epoch(90, 16, 6, multiple=16) == 33
    assert pipeline.steps_per_epoch(96, 16, 6, multiple=16) == 36  # nothing left over: nothing dropped
    assert pipeline.steps_per_epoch(101, 64, 1, multiple=2) == 1 and pipeline.steps_per_epoch(100, 64, 1, multiple=2) == 2


# --- JAX: two CPU devices, two processes ---




@pytest.mark.every_backend
@jax_only
def test_jax_trains_on_two_devices_like_on_one():
    report = _helper("check", env=TWO_JAX_CPUS)
    several, one = report["several"], report["one"]
    assert several["placement"] == {"kind": "DataParallel", "devices": 2, "processes": 1}
    assert several["variable_replicated"] and several["variable_devices"] == 2
    assert several["batch_shards"] == [[32, 28, 28, 1], [32, 28, 28, 1]] and several["batch_devices"] == 2
    for key in ("loss", "val_loss", "test_loss"):
        assert several[key] == pytest.approx(one[key], rel=LOSS_TOLERANCE), key
    assert several["test_accuracy"] == pytest.approx(one["test_accuracy"], abs=ACCURACY_TOLERANCE)


@pytest.fixture(scope="module")
def jax_one_device_run(tmp_path_factory):
    """The tiny mlp run through the command on one device (two exist), for comparison."""
    out = tmp_path_factory.mktemp("one")
    done = subprocess.run(
        [sys.executable, "-m", "kerastl.fit", *FIT_FLAGS, "--distribute", "off", "--output-dir", str(out), "--run-name", "r"],
        cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT, env={**os.environ, **TWO_JAX_CPUS},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return _metrics(out / "r")


@pytest.mark.every_backend
@jax_only
def test_jax_command_on_two_devices_matches_one_device(tmp_path, jax_one_device_run):
    done = subprocess.run(
        [sys.executable, "-m", "kerastl.fit", *FIT_FLAGS, "--devices", "2", "--output-dir", str(tmp_path), "--run-name", "r"],
        cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT, env={**os.environ, **TWO_JAX_CPUS},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "distribute: DataParallel over 2 devices, 32 images each of every batch of 64" in done.stdout
    metrics, one = _metrics(tmp_path / "r"), jax_one_device_run
    assert metrics["distribution"] == {"kind": "DataParallel", "devices": 2, "processes": 1}
    assert one["distribution"] == {"kind": "single", "devices": 1, "processes": 1}
    assert metrics["test_images"] == 101  # odd: the last batch was padded, and scored exactly
    assert metrics["test_loss"] == pytest.approx(one["test_loss"], rel=LOSS_TOLERANCE)
    assert metrics["test_accuracy"] == pytest.approx(one["test_accuracy"], abs=ACCURACY_TOLERANCE)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.every_backend
@jax_only
def test_jax_two_processes_each_read_their_shard_and_match_one_device(tmp_path, jax_one_device_run):
    env = {
        "KERAS_BACKEND": "jax", "KERAS_DISTRIBUTION_JOB_ADDRESSES": f"127.0.0.1:{_free_port()}",
        "KERAS_DISTRIBUTION_NUM_PROCESSES": "2", "XLA_FLAGS": "",
    }
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.distributed_run", "fit", *FIT_FLAGS, "--output-dir", str(tmp_path / f"p{i}"), "--run-name", "r"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **env, "KERAS_DISTRIBUTION_PROCESS_ID": str(i)},
        )
        for i in range(2)
    ]
    try:
        outputs = [w.communicate(timeout=TIMEOUT) for w in workers]
    finally:
        for w in workers:
            w.kill()
    reports = []
    for w, (out, err) in zip(workers, outputs):
        assert w.returncode == 0, err[-3000:]
        assert "distribute: DataParallel over 2 devices in 2 processes" in out
        reports.append(json.loads(out.strip().splitlines()[-1]))
    # the first global batch of labels 0..7: process 0 reads its first half, process 1 the second
    assert [r["labels_read"] for r in reports] == [[0, 0, 1, 2, 3], [1, 4, 5, 6, 7]]
    for i in range(2):
        metrics = _metrics(tmp_path / f"p{i}" / "r")
        assert metrics["distribution"] == {"kind": "DataParallel", "devices": 2, "processes": 2}
        assert metrics["test_loss"] == pytest.approx(jax_one_device_run["test_loss"], rel=LOSS_TOLERANCE)
        assert metrics["test_accuracy"] == pytest.approx(jax_one_device_run["test_accuracy"], abs=ACCURACY_TOLERANCE)


# --- TensorFlow: MirroredStrategy over two logical CPU devices ---


@tf_only
def test_tensorflow_mirrors_over_two_devices_like_one():
    report = _helper("check", env={"KERAS_BACKEND": "tensorflow"})
    several, one = report["several"], report["one"]
    assert several["placement"] == {"kind": "MirroredStrategy", "devices": 2, "processes": 1}
    assert several["replicas_in_sync"] == 2
    assert several["variable_replicated"] and several["variable_devices"] == 2
    assert several["batch_shards"] == [[32, 28, 28, 1], [32, 28, 28, 1]] and several["batch_devices"] == 2
    for key in ("loss", "val_loss", "test_loss"):
        assert several[key] == pytest.approx(one[key], rel=LOSS_TOLERANCE), key
    assert several["test_accuracy"] == pytest.approx(one["test_accuracy"], abs=ACCURACY_TOLERANCE)


@tf_only
def test_tensorflow_command_records_the_mirrored_run(tmp_path):
    report = _helper("fit", *FIT_FLAGS, "--devices", "2", "--output-dir", str(tmp_path), "--run-name", "r", env={"KERAS_BACKEND": "tensorflow"})
    assert report["exit"] == 0
    metrics = _metrics(tmp_path / "r")
    assert metrics["distribution"] == {"kind": "MirroredStrategy", "devices": 2, "processes": 1}
    assert metrics["test_images"] == 101 and metrics["test_accuracy"] > 0.3  # chance is 0.1
