"""The learning-rate finder: the sweep leaves no trace, its suggestion lies below the rate of the
lowest loss, `fit --lr find` sweeps every stage that trains and trains with the rates found, and a
resumed stage trains with the rate it found before."""

import json

import keras
import numpy as np
import pytest

import kerastl
from kerastl import lr_finder, runs
from kerastl.config import OPTIONS, resolve_run_config
from kerastl.models import build_cnn
from kerastl.modes import FINETUNE
from tests.helpers import QUIET, TINY, run_fit


def _values(variables) -> list[np.ndarray]:
    return [np.array(keras.ops.convert_to_numpy(v.value), copy=True) for v in variables]


def test_a_resumed_stage_trains_with_the_rate_it_found_before(tmp_path):
    """lr_find.json is written as soon as a sweep ends; a stage that runs again (after --resume)
    takes its suggestion from there and sweeps nothing (no model is given to sweep)."""
    sweep = lr_finder.LRSweep([1e-6, 1e-3], [2.3, 2.0], [2.3, 2.0], 3.5e-4, 100, False, 16, 1.0, stage="finetune")
    lr_finder.write_sweeps(tmp_path, {"finetune": sweep})
    lines = []
    rate = lr_finder.find_for_stage(None, FINETUNE, None, [], {"batch_size": 16}, tmp_path, None, None, False, lines.append)
    assert rate == 3.5e-4 and lines == ["stage finetune: lr find: the rate this run found before, 0.00035"]


@pytest.mark.every_backend
def test_the_sweep_restores_weights_and_optimizer_bit_for_bit(mnist_slice):
    keras.utils.set_random_seed(0)
    model = build_cnn(augment=True)  # dropout and augmentation: random generators whose state must come back too
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = mnist_slice.x_train[:256], mnist_slice.y_train[:256]
    model.train_on_batch(x[:64], y[:64])  # the optimizer has moments and a step count to lose
    optimizer = model.optimizer
    weights_before, optimizer_before = _values(model.variables), _values(optimizer.variables)

    sweep = kerastl.lr_find(model, x, y, batch_size=32, steps=30, start_lr=1e-5, end_lr=1e-1)

    assert len(sweep.lrs) == 30 and not sweep.diverged
    assert sweep.losses[-1] < sweep.losses[0] - 0.3  # the sweep really trained the model...
    weights_after = _values(model.variables)
    assert all(np.array_equal(a, b) for a, b in zip(weights_before, weights_after))  # ...and it was all undone
    assert model.optimizer is optimizer and int(optimizer.iterations.numpy()) == 1
    assert all(np.array_equal(a, b) for a, b in zip(optimizer_before, _values(optimizer.variables)))
    assert sweep.lrs[0] == pytest.approx(1e-5) and sweep.lrs[-1] == pytest.approx(1e-1)
    assert sweep.lrs[0] <= sweep.suggestion <= sweep.lrs[-1]
    # the model still trains as compiled: same loss, accuracy metric, optimizer
    logs = model.train_on_batch(x[:64], y[:64], return_dict=True)
    assert set(logs) == {"loss", "accuracy"} and int(optimizer.iterations.numpy()) == 2


def test_a_diverging_sweep_stops_early(mnist_slice):
    keras.utils.set_random_seed(0)
    model = build_cnn()
    sweep = kerastl.lr_find(model, mnist_slice.x_train[:256], mnist_slice.y_train[:256], batch_size=32, steps=60,
                    start_lr=1e-3, end_lr=1e5)
    assert sweep.diverged and 2 * lr_finder.WINDOW <= len(sweep.lrs) < 60
    assert sweep.lrs[0] <= sweep.suggestion <= sweep.lrs[-1]
    assert sweep.suggestion < sweep.lrs[-1] / 10  # well before where it blew up


def test_the_valley_suggestion_on_a_known_curve():
    lrs = list(lr_finder.exponential_rates(1e-6, 1.0, 100))
    assert lrs[0] == pytest.approx(1e-6) and lrs[-1] == pytest.approx(1.0) and lrs[50] == pytest.approx(10 ** -2.97, rel=1e-3)
    # flat at 2.3 until step 30, falling linearly to 0.3 at step 70, rising after it
    losses = [2.3 if i < 30 else 2.3 - 2.0 * (i - 30) / 40 if i <= 70 else 0.3 + 0.2 * (i - 70) for i in range(100)]
    suggestion = lr_finder.valley(lrs, losses)
    index = lrs.index(suggestion)
    assert 40 <= index <= 60  # in the steep part of the fall, not at its bottom (70)
    assert lr_finder.smooth([1.0, 2.0, 3.0, 10.0], window=3) == [1.5, 2.0, 5.0, 6.5]


def test_fit_lr_find_sweeps_both_stages_and_trains_with_the_rates(tmp_path, monkeypatch):
    monkeypatch.setattr(lr_finder, "STEPS", 40)
    lines = []
    # partial with one block unfrozen: the two stages of finetune, at a fraction of the backward pass
    run = kerastl.run("partial", unfreeze=1, lr="find", img_size=32, head_epochs=1, epochs=1, batch_size=32,
                      output_dir=str(tmp_path), run_name="ft", log=lines.append, **TINY)
    recorded = runs.read_config(run.folder)
    sweeps = run.metrics["lr_find"]
    assert set(sweeps) == {"head", "finetune"}
    assert recorded["lr"] == recorded["finetune_lr"] == "find"  # config.yaml: what the run was asked, written once
    assert run.metrics["learning_rates"] == {stage: sweeps[stage]["suggestion"] for stage in ("head", "finetune")}
    for stage, summary in sweeps.items():
        assert summary["steps"] <= 40 and summary["start_lr"] == pytest.approx(lr_finder.START_LR)
        assert summary["suggestion"] < summary["lowest_loss_lr"]  # fastai's valley: below the rate of the lowest loss
        assert any(line.startswith(f"stage {stage}: {1} epoch(s) at lr {summary['suggestion']:g}") for line in lines), lines
    assert (run.folder / runs.LR_FIND_FIGURE).stat().st_size > 10_000
    curves = json.loads((run.folder / runs.LR_FIND).read_text())
    assert len(curves["head"]["lrs"]) == len(curves["head"]["losses"]) == sweeps["head"]["steps"]
    # No accuracy bar: 2 epochs on 300 images at 32 px score near chance (0.20 / 0.31 / 0.22 measured on
    # TensorFlow / JAX / PyTorch). That the sweep leaves the model as it found it is tested bit for bit above.
    assert all(row["loss"] is not None and row["loss"] < 2.5 for row in run.history)  # ln 10 = 2.30: no divergence


def test_feature_mode_sweeps_the_head_on_its_features(tmp_path, monkeypatch):
    monkeypatch.setattr(lr_finder, "STEPS", 40)
    run = kerastl.run("feature", lr="find", img_size=32, epochs=1, output_dir=str(tmp_path), run_name="fe", log=QUIET, **TINY)
    assert set(run.metrics["lr_find"]) == {"head"}
    assert run.metrics["learning_rates"] == {"head": run.metrics["lr_find"]["head"]["suggestion"]}


@pytest.mark.parametrize(("options", "rates"), [
    ({"lr": "find"}, ("find", "find")),  # --lr find sweeps every stage...
    ({"lr": "find", "finetune_lr": 1e-4}, ("find", 1e-4)),  # ...unless the fine-tuning rate is given
    ({"finetune_lr": "find", "lr": 0.01}, (0.01, "find")),  # only the fine-tuning stage sweeps
    ({}, (0.003, 0.0003)),  # the config's rates
])
def test_which_stages_sweep(options, rates):
    config = resolve_run_config("finetune", None, {**{k: None for k in OPTIONS}, **options}, accelerator=False)
    assert (config["lr"], config["finetune_lr"]) == rates


@pytest.mark.parametrize(("argv", "message"), [
    (["--lr", "fast"], "invalid lr: 'fast'"),
    (["--lr", "-1"], "invalid lr: -1.0"),
    (["--finetune-lr", "search"], "invalid finetune_lr: 'search'"),
])
def test_bad_rates_are_one_line_and_exit_2(tmp_path, capsys, argv, message):
    code, _, err = run_fit(["--mode", "cnn", "--output-dir", str(tmp_path), *argv], capsys)
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not any(tmp_path.iterdir())  # nothing written
