"""The fit command: short real runs, run folders, resume, and every user error as one line + exit 2."""

import csv
import json

import pytest

from kerastl import fit
from kerastl.cli import run_cli
from tests.conftest import ROOT, backend, run_module

QUICK = ["--limit", "600", "--test-limit", "300", "--seed", "0"]


def _fit(argv, capsys):
    code = run_cli("kerastl.fit", lambda: fit.main(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_mlp_run_beats_chance_and_writes_the_run_folder(tmp_path, capsys):
    code, out, err = _fit(["--mode", "mlp", "--epochs", "2", "--output-dir", str(tmp_path), "--run-name", "r", *QUICK], capsys)
    assert code == 0, err
    run = tmp_path / "r"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.6  # chance is 0.1
    assert metrics["test_images"] == 300 and metrics["train_images"] == 600
    assert metrics["backend"] == backend() and metrics["epochs_run"] == {"train": 2}
    assert metrics["parameters"] == 669_706 and metrics["images_per_second"] > 0
    assert {p.name for p in run.iterdir()} >= {
        "model.keras", "history.csv", "metrics.json", "config.yaml", "stage-train.weights.h5", "curves.png", "confusion.png"}
    assert not (run / "backup").exists()
    with open(run / "history.csv") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["1", "2"]


def test_finetune_short_run_beats_chance(tmp_path, capsys):
    argv = ["--mode", "finetune", "--img-size", "32", "--head-epochs", "1", "--epochs", "2", "--batch-size", "32", "--lr", "0.01",
            "--output-dir", str(tmp_path), "--run-name", "ft", *QUICK]
    code, out, err = _fit(argv, capsys)
    assert code == 0, err
    metrics = json.loads((tmp_path / "ft" / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.5, metrics
    assert metrics["img_size"] == 32 and metrics["weights"] == "imagenet"
    assert set(metrics["epochs_run"]) == {"head", "finetune"}


def test_feature_mode_trains_the_head_on_cached_features(tmp_path, capsys):
    argv = ["--mode", "feature", "--img-size", "32", "--epochs", "8", "--lr", "0.01", "--output-dir", str(tmp_path), "--run-name", "fe", *QUICK]
    code, out, err = _fit(argv, capsys)
    assert code == 0, err
    metrics = json.loads((tmp_path / "fe" / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.4, metrics
    assert "feature_extraction" in metrics["stage_seconds"] and len(metrics["epoch_seconds"]["head"]) >= 3


class Interrupt(Exception):
    pass


def test_resume_after_interruption_loses_no_epoch(tmp_path, capsys, monkeypatch):
    import keras

    from kerastl import train

    class StopAfterSecondEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    original = train._callbacks
    monkeypatch.setattr(train, "_callbacks", lambda *a: original(*a) + [StopAfterSecondEpoch()])
    argv = ["--mode", "mlp", "--epochs", "4", "--output-dir", str(tmp_path), "--run-name", "r", *QUICK]
    code, out, err = _fit(argv, capsys)
    assert code == 130 and "--resume" in err
    run = tmp_path / "r"
    assert not (run / "metrics.json").exists() and (run / "backup").is_dir()
    monkeypatch.setattr(train, "_callbacks", original)
    code, out, err = _fit(["--mode", "mlp", "--resume", "--run-name", "r", "--output-dir", str(tmp_path)], capsys)
    assert code == 0, err
    with open(run / "history.csv") as f:
        epochs = [row["epoch"] for row in csv.DictReader(f)]
    assert epochs == ["1", "2", "3", "4"]  # epochs 1-2 from the first run, 3-4 after resuming
    assert json.loads((run / "metrics.json").read_text())["epochs_run"] == {"train": 4}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--mode", "svm"], "unknown mode 'svm'"),
        (["--mode", "mlp", "--epochs", "0"], "invalid epochs: 0"),
        (["--mode", "mlp", "--config", "/nonexistent.yaml"], "cannot read config /nonexistent.yaml"),
        (["--mode", "mlp", "--data-dir", "/nonexistent"], "--data-dir /nonexistent is not a folder"),
        (["--mode", "finetune", "--backbone", "vgg99"], "unknown backbone 'vgg99'"),
        (["--mode", "mlp", "--resume"], "--resume: no unfinished mlp run"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(tmp_path, capsys, argv, message):
    code, out, err = _fit([*argv, "--output-dir", str(tmp_path)], capsys)
    assert code == 2
    assert err.strip().count("\n") == 0 and message in err, err
    assert list(tmp_path.iterdir()) == []  # nothing half-written


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
    common = ["--backbone", "resnet18", "--img-size", "32", "--epochs", "1", "--output-dir", str(tmp_path), *QUICK]
    code, out, err = _fit(["--mode", "pretrain", "--dataset", "mnist", "--run-name", "pre", *common], capsys)
    assert code == 0, err
    weights = tmp_path / "pre" / "backbone.weights.h5"
    assert weights.is_file() and "warning" not in json.loads((tmp_path / "pre" / "metrics.json").read_text())
    code, out, err = _fit(["--mode", "finetune", "--weights", str(weights), "--head-epochs", "1", "--run-name", "ft", *common], capsys)
    assert code == 0, err
    metrics = json.loads((tmp_path / "ft" / "metrics.json").read_text())
    assert metrics["weights"] == str(weights) and metrics["backbone"] == "resnet18"
    assert f"weights from {weights}" in out
