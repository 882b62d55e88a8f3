"""A training process killed with SIGKILL in the middle of an epoch, then resumed: every epoch is in
the history exactly once, and the final model is the epoch best on validation."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from kerastl.confidence.model import ungated
from kerastl.data import make_splits
from kerastl.model_files import load_keras_model
from tests.helpers import ROOT, backend, run_module

# Small batches: epochs of a second or more with little compute, so the kill lands inside an epoch
# rather than in the end-of-epoch writes. A PyTorch-backend step costs far more here (eager), so
# fewer, larger batches keep its test short.
LIMIT, TEST_LIMIT = 1000, 200
BATCH = 32 if backend() == "torch" else 8


def history_rows(path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def wait_for_rows(path, count: int, process, deadline: float) -> float:
    """Poll the history until it has `count` rows; the time they were first seen."""
    while len(history_rows(path)) < count:
        assert process.poll() is None, "training ended before it could be killed"
        assert time.monotonic() < deadline, "training made no progress"
        time.sleep(0.02)
    return time.monotonic()


@pytest.mark.every_backend
def test_sigkill_in_the_middle_of_an_epoch_then_resume(tmp_path, mnist):
    run = tmp_path / "r"
    argv = ["--mode", "mlp", "--epochs", "6", "--limit", str(LIMIT), "--test-limit", str(TEST_LIMIT),
            "--batch-size", str(BATCH), "--seed", "0", "--output-dir", str(tmp_path), "--run-name", "r"]
    with open(tmp_path / "first.log", "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "kerastl.fit", *argv], cwd=ROOT, stdout=log, stderr=log,
                                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        deadline = time.monotonic() + 600
        first = wait_for_rows(run / "history.csv", 1, process, deadline)
        second = wait_for_rows(run / "history.csv", 2, process, deadline)
        time.sleep((second - first) / 2)  # halfway through the third epoch
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (run / "metrics.json").exists() and (run / "backup").is_dir()
    killed_at = json.loads((run / "backup" / "train" / "state.json").read_text())["epochs_done"]
    # the history row of an epoch is written just before the epoch's commit: a kill between the two
    # leaves one row more than the commit, and the resumed run trains that epoch again
    assert len(history_rows(run / "history.csv")) in (killed_at, killed_at + 1) and killed_at >= 2

    result = run_module("kerastl.fit", "--resume", "--run-name", "r", "--output-dir", str(tmp_path),
                        env={"TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, (tmp_path / "first.log").read_text()[-2000:] + result.stderr[-3000:]
    assert f"continuing after epoch {killed_at}" in result.stdout

    # Every epoch exactly once, in order
    history = history_rows(run / "history.csv")
    epochs = [int(row["epoch"]) for row in history]
    assert epochs == list(range(1, len(epochs) + 1))  # history counts epochs from 1
    metrics_text = (run / "metrics.json").read_text()
    assert f'"train": {len(epochs)}' in metrics_text and len(epochs) > killed_at

    # The final model is the epoch best on validation
    val_losses = np.array([float(row["val_loss"]) for row in history])
    splits = make_splits(mnist, 0.1, LIMIT, TEST_LIMIT, 0)
    model = ungated(load_keras_model(run / "model.keras"))  # the trained probabilities, before calibration and the gate
    model.compile(loss="sparse_categorical_crossentropy")
    loss = model.evaluate(splits.x_val.astype("float32"), splits.y_val, batch_size=BATCH, verbose=0, return_dict=True)["loss"]
    assert loss == pytest.approx(val_losses.min(), rel=1e-4), val_losses

    # Only what a user needs is left
    assert sorted(p.name for p in run.iterdir() if p.suffix != ".png") == [
        "config.yaml", "history.csv", "labels.txt", "metrics.json", "model.keras", "test_predictions.npz"]
