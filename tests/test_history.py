"""history.csv: named columns, a global epoch across stages, cumulative seconds, re-run epochs replaced."""

import csv

import keras
import numpy as np

from kerastl import history
from kerastl.history import COLUMNS, HistoryWriter, RunClock, milestones, read_history


def _model():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _fit(model, path, stage, clock, epochs, initial_epoch=0):
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    model.fit(x, y, validation_data=(x, y), epochs=epochs, initial_epoch=initial_epoch, batch_size=16, verbose=0,
              callbacks=[HistoryWriter(path, stage, clock)])


def test_two_stages_share_a_global_epoch_and_a_clock(tmp_path):
    path = tmp_path / "history.csv"
    clock = RunClock()
    model = _model()
    _fit(model, path, "head", clock, epochs=2)
    _fit(model, path, "finetune", clock, epochs=3)
    with open(path) as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == COLUMNS
        raw = list(reader)
    assert [r["stage"] for r in raw] == ["head", "head", "finetune", "finetune", "finetune"]
    assert [r["epoch"] for r in raw] == ["1", "2", "3", "4", "5"]
    assert [r["stage_epoch"] for r in raw] == ["1", "2", "1", "2", "3"]
    rows = read_history(path)
    seconds = [r["seconds"] for r in rows]
    assert all(b > a for a, b in zip(seconds, seconds[1:])) and seconds[0] > 0
    assert all(0 <= r["val_accuracy"] <= 1 and r["loss"] > 0 for r in rows)
    assert all(abs(r["lr"] - 0.01) < 1e-6 for r in rows)


def test_an_epoch_run_again_after_a_resume_replaces_its_row(tmp_path):
    path = tmp_path / "history.csv"
    model = _model()
    _fit(model, path, "head", RunClock(), epochs=2)
    _fit(model, path, "finetune", RunClock(), epochs=3)
    before = read_history(path)
    # A resumed process: fit(initial_epoch=1) restarts the finetune stage at its second epoch.
    _fit(model, path, "finetune", RunClock(), epochs=3, initial_epoch=1)
    after = read_history(path)
    assert [(r["stage"], r["epoch"], r["stage_epoch"]) for r in after] == [
        ("head", 1, 1), ("head", 2, 2), ("finetune", 3, 1), ("finetune", 4, 2), ("finetune", 5, 3)]
    assert after[:3] == before[:3]  # rows before the resumed epoch are kept as they were
    seconds = [r["seconds"] for r in after]
    assert all(b > a for a, b in zip(seconds, seconds[1:]))  # the clock continues from the kept row


def test_milestones_read_the_first_epoch_at_95_percent():
    rows = [{"epoch": i + 1, "seconds": 10.0 * (i + 1), "val_accuracy": v} for i, v in enumerate([0.9, 0.95, 0.97])]
    assert milestones(rows) == {"epochs_to_95": 2, "seconds_to_95": 20.0}
    assert milestones(rows[:1]) == {"epochs_to_95": None, "seconds_to_95": None}
    assert milestones([{"epoch": 1, "seconds": 1.0, "val_accuracy": None}]) == {"epochs_to_95": None, "seconds_to_95": None}


def test_the_run_clock_is_found_by_run_folder(tmp_path):
    clock = history.start_clock(tmp_path)
    assert history.clock_of(tmp_path) is clock
    assert history.clock_of(tmp_path / "other") is not clock


def test_a_fit_run_records_history_milestones_and_tensorboard(tmp_path, capsys):
    import importlib.util
    import json

    from kerastl import fit
    from kerastl.cli import run_cli

    argv = ["--mode", "mlp", "--epochs", "2", "--limit", "300", "--test-limit", "100", "--tensorboard",
            "--output-dir", str(tmp_path), "--run-name", "r"]
    code = run_cli("kerastl.fit", lambda: fit.main(argv))
    err = capsys.readouterr().err
    if importlib.util.find_spec("tensorboard") is None:
        assert code == 2 and "--tensorboard needs the tensorboard package" in err and err.count("\n") == 1
        assert list(tmp_path.iterdir()) == []
        code = run_cli("kerastl.fit", lambda: fit.main([a for a in argv if a != "--tensorboard"]))
    else:
        assert any((tmp_path / "r" / "tensorboard" / "train").rglob("events.out.tfevents.*"))
    assert code == 0
    run = tmp_path / "r"
    rows = read_history(run / "history.csv")
    metrics = json.loads((run / "metrics.json").read_text())
    assert [r["epoch"] for r in rows] == [1, 2] and {r["stage"] for r in rows} == {"train"}
    assert {k: metrics[k] for k in ("epochs_to_95", "seconds_to_95")} == milestones(rows)
    assert metrics["trainable_parameters"] == 669_706
    assert (run / "curves.png").stat().st_size > 10_000 and (run / "confusion.png").stat().st_size > 10_000
