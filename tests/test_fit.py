"""The fit command: short real runs, run folders, resume, and every user error as one line + exit 2."""

import csv
import json
import os

import keras
import numpy as np
import pytest

import kerastl
from kerastl import fit, runs
from kerastl.api import run_with_options
from kerastl.config import OPTIONS
from kerastl.confidence.model import ungated
from kerastl.data import make_splits
from kerastl.errors import RunInterrupted
from tests.helpers import ROOT, backend, run_fit, run_module


def quick(limit: int = 600, test_limit: int = 300) -> list[str]:
    """A small seeded slice with a fixed schedule (test_sizing.py tests the sized ones)."""
    return ["--limit", str(limit), "--test-limit", str(test_limit), "--seed", "0", "--min-steps", "0"]


QUICK = quick()


_fit = run_fit  # python -m kerastl.fit, in this process


@pytest.mark.every_backend
def test_mlp_run_learns_and_writes_the_run_folder(tmp_path, capsys):
    code, out, err = _fit(["--mode", "mlp", "--epochs", "2", "--output-dir", str(tmp_path), "--run-name", "r", *QUICK], capsys)
    assert code == 0, err
    run = tmp_path / "r"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.65  # measured 0.793 TensorFlow, 0.733 JAX, 0.820 PyTorch; chance is 0.1
    assert metrics["test_images"] == 300 and metrics["train_images"] == 600
    assert metrics["backend"] == backend() and metrics["epochs_run"] == {"train": 2}
    assert metrics["parameters"] == 669_706 and metrics["images_per_second"] > 0
    # only what a user needs remains: no resume state, no lock, no stray weights
    assert {p.name for p in run.iterdir()} == {
        "model.keras", "history.csv", "metrics.json", "config.yaml", "labels.txt", "curves.png", "confusion.png", "test_predictions.npz",
        "reliability.png", "abstain_scores.png"}  # the last two: kerastl.confidence's figures
    with open(run / "history.csv") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["1", "2"]


def test_feature_mode_trains_the_head_on_cached_features(tmp_path, capsys):
    # 3 epochs: fewer than patience + 1, so early stopping cannot end the stage sooner. 2,000 images, not
    # QUICK's 600: on 600 the head reached 0.45-0.59 depending on the backend and the seeds' order
    argv = ["--mode", "feature", "--img-size", "32", "--epochs", "3", "--lr", "0.01", "--output-dir", str(tmp_path), "--run-name", "fe",
            *quick(limit=2000)]
    code, out, err = _fit(argv, capsys)
    assert code == 0, err
    metrics = json.loads((tmp_path / "fe" / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.60, metrics  # measured 0.707 TensorFlow, 0.693 JAX, 0.713 PyTorch (32 px, 3 head epochs)
    assert metrics["epochs_run"] == {"head": 3} and len(metrics["epoch_seconds"]["head"]) == 3
    assert metrics["stage_seconds"]["feature_extraction"] > 0
    assert out.count("backbone features computed once") == 1


class InterruptAfterEpoch(keras.callbacks.Callback):
    """Ctrl-C at the end of one epoch (after its resume point is committed)."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


class WorseFromNowOn(keras.callbacks.Callback):
    """Zeroes the weights before every epoch: each resumed epoch is worse than any trained one."""

    def on_epoch_begin(self, epoch, logs=None):
        for weight in self.model.weights:
            weight.assign(np.zeros(weight.shape, weight.dtype))


def _history(run_dir):
    with open(run_dir / "history.csv") as f:
        return [{key: float(value) for key, value in row.items() if key in ("epoch", "val_loss")} for row in csv.DictReader(f)]


@pytest.mark.every_backend
def test_resume_after_interruption_loses_no_epoch(tmp_path, capsys):
    argv = ["--mode", "mlp", "--epochs", "4", "--output-dir", str(tmp_path), "--run-name", "r", *QUICK]
    options = {name: getattr(fit.parse_args(argv), name) for name in OPTIONS}
    with pytest.raises(RunInterrupted) as interrupted:
        run_with_options("mlp", None, options, callbacks=[InterruptAfterEpoch(1)], log=lambda _: None)
    run = tmp_path / "r"
    assert interrupted.value.run_dir == run and "resume=True" in str(interrupted.value)
    state = json.loads((run / "backup" / "train" / "state.json").read_text())
    assert state["epochs_done"] == 2 and not (run / "metrics.json").exists() and not (run / ".lock").exists()
    code, out, err = _fit(["--resume", "--run-name", "r", "--output-dir", str(tmp_path)], capsys)
    assert code == 0, err
    assert "continuing after epoch 2" in out
    assert [row["epoch"] for row in _history(run)] == [1, 2, 3, 4]  # 1-2 from the first run, 3-4 after resuming
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs_run"] == {"train": 4} and len(metrics["epoch_seconds"]["train"]) == 4
    assert not (run / "backup").exists()


def test_resume_keeps_the_best_epoch_and_the_patience_count(tmp_path, mnist):
    """Epochs after the resume are all worse: the best epoch from before the interruption must stay
    the model, and early stopping must count patience from it (mlp: patience 4)."""
    options = dict(epochs=12, output_dir=str(tmp_path), run_name="r", limit=600, test_limit=300, seed=0, min_steps=0)
    with pytest.raises(RunInterrupted):
        kerastl.run("mlp", callbacks=[InterruptAfterEpoch(2)], log=lambda _: None, **options)
    before = _history(tmp_path / "r")
    best_epoch = min(range(3), key=lambda i: before[i]["val_loss"])
    run = kerastl.run("mlp", resume=True, run_name="r", output_dir=str(tmp_path), callbacks=[WorseFromNowOn()], log=lambda _: None)
    history = _history(run.folder)
    assert [row["epoch"] for row in history] == list(range(1, len(history) + 1))
    assert len(history) == best_epoch + 1 + 4 == run.metrics["epochs_run"]["train"]
    assert min(row["val_loss"] for row in history[3:]) > before[best_epoch]["val_loss"]
    splits = make_splits(mnist, 0.1, 600, 300, 0)
    trained = ungated(run.model)  # the probabilities before calibration and the gate (kerastl.confidence)
    trained.compile(loss="sparse_categorical_crossentropy")
    val_loss = trained.evaluate(splits.x_val.astype("float32"), splits.y_val, verbose=0, return_dict=True)["loss"]
    assert val_loss == pytest.approx(before[best_epoch]["val_loss"], rel=1e-4)


class InterruptInSecondStage(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.fits = 0

    def on_train_begin(self, logs=None):
        self.fits += 1

    def on_epoch_end(self, epoch, logs=None):
        if self.fits == 2:
            raise KeyboardInterrupt


def test_resume_in_the_second_stage_keeps_the_first_and_the_run_learns(tmp_path, capsys):
    """A fine-tuning run interrupted in its second stage, then finished by `fit --resume`: the
    finished head stage is kept, and the whole run is the short fine-tuning run that must learn."""
    argv = ["--mode", "finetune", "--img-size", "32", "--head-epochs", "2", "--epochs", "2", "--batch-size", "32",
            "--output-dir", str(tmp_path), "--run-name", "ft", *QUICK]
    options = {name: getattr(fit.parse_args(argv), name) for name in OPTIONS}
    with pytest.raises(RunInterrupted):
        run_with_options("finetune", None, options, callbacks=[InterruptInSecondStage()], log=lambda _: None)
    head = json.loads((tmp_path / "ft" / "backup" / "head" / "state.json").read_text())
    assert head["finished"]["epochs"] == 2
    code, out, err = _fit(["--resume", "--run-name", "ft", "--output-dir", str(tmp_path)], capsys)
    assert code == 0, err
    assert "stage head: already finished" in out and "stage finetune: 2 epoch(s)" in out and "continuing after epoch 1" in out
    metrics = json.loads((tmp_path / "ft" / "metrics.json").read_text())
    assert metrics["epochs_run"] == {"head": 2, "finetune": 2}
    assert metrics["epoch_seconds"]["head"] == head["finished"]["epoch_seconds"]
    assert len(_history(tmp_path / "ft")) == 4
    assert metrics["img_size"] == 32 and metrics["weights"] == "imagenet"
    assert metrics["test_accuracy"] > 0.70, metrics  # measured 0.810 TensorFlow, 0.813 JAX, 0.760 PyTorch (300 test images)


def test_resume_refuses_other_flags_and_a_live_run(tmp_path, capsys):
    with pytest.raises(RunInterrupted):
        kerastl.run("mlp", epochs=3, output_dir=str(tmp_path), run_name="r", limit=300, test_limit=100,
                    callbacks=[InterruptAfterEpoch(0)], log=lambda _: None)
    code, out, err = _fit(["--resume", "--run-name", "r", "--output-dir", str(tmp_path), "--epochs", "9", "--lr", "0.1"], capsys)
    assert code == 2 and err.strip().count("\n") == 0
    assert "these would be ignored: --epochs, --lr" in err
    with pytest.raises(kerastl.UserError, match="these would be ignored: epochs, config"):
        kerastl.run("mlp", resume=True, run_name="r", output_dir=str(tmp_path), epochs=9, config="x.yaml")
    code, out, err = _fit(["--mode", "cnn", "--resume", "--run-name", "r", "--output-dir", str(tmp_path)], capsys)
    assert code == 2 and "is a mlp run, not cnn" in err
    with runs.lock(tmp_path / "r"):  # as a second process training it would
        code, out, err = _fit(["--resume", "--run-name", "r", "--output-dir", str(tmp_path)], capsys)
        assert code == 2 and err.strip().count("\n") == 0
        assert f"{tmp_path / 'r'} is in use by another kerastl process (pid {os.getpid()})" in err
    assert (tmp_path / "r" / "config.yaml").is_file() and not (tmp_path / "r" / ".lock").exists()


def test_run_folders_started_in_the_same_second_get_their_own_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(runs.time, "strftime", lambda _: "20250101-000000")
    folders = [runs.create_run_dir(tmp_path, None, "mlp", "mnist") for _ in range(3)]
    assert [f.name for f in folders] == ["mlp-mnist-20250101-000000", "mlp-mnist-20250101-000000-2", "mlp-mnist-20250101-000000-3"]
    with pytest.raises(kerastl.UserError, match="already exists"):
        runs.create_run_dir(tmp_path, "mlp-mnist-20250101-000000", "mlp", "mnist")


def test_a_damaged_run_folder_is_one_line(tmp_path, capsys):
    run = tmp_path / "r"
    run.mkdir()
    (run / "config.yaml").write_text("mode: [mlp\n")
    code, out, err = _fit(["--resume", "--run-name", "r", "--output-dir", str(tmp_path)], capsys)
    assert code == 2 and err.strip().count("\n") == 0 and f"config {run / 'config.yaml'} is not valid YAML" in err
    (run / "config.yaml").write_text("mode: mlp\nepochs: 3\n")
    code, out, err = _fit(["--resume", "--run-name", "r", "--output-dir", str(tmp_path)], capsys)
    assert code == 2 and "lacks dataset" in err and "damaged" in err
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml"]  # a resumed folder is never removed


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--mode", "svm"], "unknown mode 'svm'"),
        (["--mode", "mlp", "--epochs", "0"], "invalid epochs: 0"),
        (["--mode", "mlp", "--config", "/nonexistent.yaml"], "cannot read config /nonexistent.yaml"),
        (["--mode", "mlp", "--data-dir", "/nonexistent"], "--data-dir /nonexistent is not a folder"),
        (["--mode", "finetune", "--backbone", "vgg99"], "unknown backbone 'vgg99'"),
        (["--mode", "mlp", "--resume"], "--resume: no unfinished mlp run"),
        (["--mode", "mlp", "--limit", "60000"], "--limit 60000 plus 6000 validation images exceeds the 60000 training images"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(tmp_path, capsys, argv, message):
    code, out, err = _fit(["--output-dir", str(tmp_path), *argv], capsys)  # a later --output-dir wins
    assert code == 2
    assert err.strip().count("\n") == 0 and message in err, err
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_an_output_folder_that_cannot_be_written_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    code, out, err = _fit(["--mode", "mlp", "--output-dir", str(tmp_path / "file" / "runs")], capsys)
    assert code == 2 and err.strip().count("\n") == 0
    assert f"cannot create the output folder {tmp_path / 'file' / 'runs'}: Not a directory" in err


def test_bad_config_files(tmp_path, capsys):
    cases = {
        "typo.yaml": ("mode: mlp\nepoch: 3\n", "unknown config key 'epoch'"),
        "type.yaml": ("mode: mlp\nlr: fast\n", "invalid lr: 'fast'"),
        "yaml.yaml": ("mode: [mlp\n", "not valid YAML"),
        "other.yaml": ("mode: cnn\n", "is for mode 'cnn'"),
    }
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        code, out, err = _fit(["--mode", "mlp", "--config", str(tmp_path / name), "--output-dir", str(tmp_path / "runs")], capsys)
        assert code == 2 and message in err and err.strip().count("\n") == 0, (name, err)
    assert not (tmp_path / "runs").exists()


def test_weights_that_cannot_be_had_exit_2_with_alternatives(tmp_path, capsys):
    code, out, err = _fit(["--mode", "finetune", "--weights", str(tmp_path / "nope.weights.h5"), "--output-dir", str(tmp_path / "runs"), *QUICK], capsys)
    assert code == 2 and "--weights none" in err and err.strip().count("\n") == 0
    assert not any((tmp_path / "runs").iterdir())


def test_command_line_exit_codes_in_a_real_process(tmp_path):
    bad = run_module("kerastl.fit", "--mode", "mlp", "--epochs", "abc")
    assert bad.returncode == 2 and "invalid int value: 'abc'" in bad.stderr and bad.stderr.count("\n") == 1
    help_ = run_module("kerastl.fit", "--help")
    assert help_.returncode == 0 and "--mode" in help_.stdout
    assert (ROOT / "configs" / "finetune.yaml").is_file()


def test_pretrain_then_transfer_with_the_saved_backbone(tmp_path, capsys):
    """The offline ResNet-18 loop: pretrain on one dataset, fine-tune from those weights with --weights."""
    # no accuracy is asserted, so 200 images (not QUICK's 600): still a full batch of 128 in every stage
    common = ["--backbone", "resnet18", "--img-size", "32", "--epochs", "1", "--output-dir", str(tmp_path), *quick(limit=200, test_limit=100)]
    code, out, err = _fit(["--mode", "pretrain", "--dataset", "mnist", "--run-name", "pre", *common], capsys)
    assert code == 0, err
    weights = tmp_path / "pre" / "backbone.weights.h5"
    assert weights.is_file() and "warning" not in json.loads((tmp_path / "pre" / "metrics.json").read_text())
    code, out, err = _fit(["--mode", "finetune", "--weights", str(weights), "--head-epochs", "1", "--run-name", "ft", *common], capsys)
    assert code == 0, err
    metrics = json.loads((tmp_path / "ft" / "metrics.json").read_text())
    assert metrics["weights"] == str(weights) and metrics["backbone"] == "resnet18"
    assert f"weights from {weights}" in out
