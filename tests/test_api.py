"""The Python API: kerastl.run / load_run / export_run / predict, as a notebook uses them."""

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import kerastl
from kerastl import fit, history, runs
from kerastl.api import run
from tests.helpers import QUIET, ROOT, TINY

TINY = dict(epochs=1, **TINY)


@pytest.mark.every_backend
def test_two_runs_in_one_interpreter_return_what_their_folders_hold(tmp_path, mnist):
    lines = []
    mlp = kerastl.run("mlp", batch_size=32, label_smoothing=0.1, output_dir=str(tmp_path), run_name="mlp", log=lines.append, **TINY)  # enough steps on every backend (JAX drops a short last batch)
    feature = kerastl.run("feature", img_size=32, lr=0.01, output_dir=str(tmp_path), run_name="feature", log=QUIET, **TINY)
    for result, mode, stage in ((mlp, "mlp", "train"), (feature, "feature", "head")):
        assert result.folder == tmp_path / mode
        assert result.metrics == json.loads((tmp_path / mode / "metrics.json").read_text())
        assert result.metrics["mode"] == mode and result.metrics["epochs_run"] == {stage: 1}
        assert result.config == runs.read_config(result.folder) and result.config["limit"] == 300
        assert result.history == history.read_history(result.folder / runs.HISTORY) and len(result.history) == 1
        assert result.history[0]["val_loss"] > 0
        assert isinstance(result.model, keras.Model) and result.model.output_shape == (None, 10)
    assert mlp.metrics["test_accuracy"] > 0.5 and feature.metrics["backbone"] == "efficientnet_lite0"
    assert lines[-1].startswith("done: mlp test accuracy") and lines[-1].endswith(f"run saved to {tmp_path / 'mlp'}")
    loaded = kerastl.load_run(tmp_path / "mlp")
    assert loaded.metrics == mlp.metrics and loaded.history == mlp.history
    assert loaded.model.count_params() == mlp.model.count_params()  # loaded from model.keras
    # model.keras opens with plain Keras in an interpreter that never imports kerastl, and its
    # `evaluate` on the run's test images gives the accuracy the run reported (evaluation.score)
    np.savez(tmp_path / "test.npz", x=mnist["x_test"][:100], y=mnist["y_test"][:100])
    script = (
        "import json, sys, keras, numpy as np\n"
        f"model = keras.saving.load_model({str(tmp_path / 'mlp' / 'model.keras')!r})\n"
        f"data = np.load({str(tmp_path / 'test.npz')!r})\n"
        "result = model.evaluate(data['x'].astype('float32'), data['y'], verbose=0, return_dict=True)\n"
        "print(json.dumps({'accuracy': result['accuracy'], 'kerastl': 'kerastl' in sys.modules, 'loss': str(model.loss)}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-2000:]
    plain = json.loads(done.stdout.strip().splitlines()[-1])
    assert plain == {"accuracy": pytest.approx(mlp.metrics["test_accuracy"], abs=1e-6), "kerastl": False,
                     "loss": "sparse_categorical_crossentropy"}
    assert "Skipping variable loading" not in done.stderr  # the optimizer's slots were saved too


def test_mistakes_raise_user_error_and_leave_nothing(tmp_path):
    with pytest.raises(kerastl.UserError, match=r"^kerastl.run: invalid epochs: 0 "):
        kerastl.run("mlp", epochs=0, output_dir=str(tmp_path))
    with pytest.raises(kerastl.UserError, match="unknown mode 'svm'"):
        kerastl.run("svm", output_dir=str(tmp_path))
    with pytest.raises(kerastl.UserError, match="exceeds the 60000 training images; use --limit 54545 or less"):
        kerastl.run("mlp", limit=60000, output_dir=str(tmp_path), log=QUIET)
    with pytest.raises(kerastl.UserError, match="no unfinished finetune run"):
        kerastl.run(resume=True, output_dir=str(tmp_path))
    with pytest.raises(kerastl.UserError, match="not a finished run"):
        kerastl.load_run(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_renamed_option_still_works_and_says_its_new_name(tmp_path, capsys):
    """--image-size became --stored-size (it sat beside --img-size, the backbone's input size):
    the old flag, keyword and config key still set it, with one line naming the new one."""
    from kerastl.config import read_yaml, renamed

    args = fit.parse_args(["--mode", "cnn", "--image-size", "24"])
    assert args.stored_size == 24 and "--image-size is now called --stored-size" in capsys.readouterr().err
    lines = []
    assert renamed({"image_size": 48}, lines.append, "kerastl.run") == {"stored_size": 48}
    assert lines == ["image_size is now called stored_size; the old name will go in a later version"]
    old_run = tmp_path / "config.yaml"
    old_run.write_text("mode: cnn\ndataset: mnist\nimage_size: 32\n")  # as runs recorded it before the rename
    assert read_yaml(old_run) == {"mode": "cnn", "dataset": "mnist", "stored_size": 32}


def test_keywords_are_the_flags_both_from_the_schema():
    from kerastl.config import OPTIONS, SCHEMA

    keywords = set(inspect.signature(run).parameters) - {"callbacks", "log", "options"}
    flags = {action.dest for action in fit.build_parser()._actions} - {"help"}  # old flag names share their new dest
    assert flags == keywords | set(OPTIONS) and keywords == {"mode", "config", "resume"}
    assert len(OPTIONS) == 30 and all(SCHEMA[name].option for name in OPTIONS)
    helps = {action.dest: action.help for action in fit.build_parser()._actions}
    assert helps["min_steps"] == SCHEMA["min_steps"].meaning and f"min_steps: {SCHEMA['min_steps'].meaning}" in run.__doc__
    with pytest.raises(kerastl.UserError, match=r"^kerastl.run: unknown option epoch \(known: dataset, "):
        kerastl.run("mlp", epoch=3)  # a misspelt keyword, before anything is written


def test_importing_the_package_and_the_commands_help_stay_light():
    code = "import sys, kerastl, kerastl.fit; kerastl.UserError; print('keras' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.stdout.strip() == "False", result.stderr
    assert inspect.isfunction(kerastl.predict) and kerastl.export_run.__module__ == "kerastl.export.job"
    assert Path(kerastl.run.__code__.co_filename).name == "api.py"


def test_kerastl_predict_stays_the_function_after_its_command_runs(monkeypatch, capsys):
    """`python -m kerastl.predict` runs the entry module as __main__, never as `kerastl.predict`:
    the package attribute stays the function (importing the entry would rebind it to the module)."""
    import runpy

    from kerastl import prediction

    monkeypatch.setattr(sys, "argv", ["kerastl.predict", "--help"])
    with pytest.raises(SystemExit) as exited:
        runpy.run_module("kerastl.predict", run_name="__main__", alter_sys=True)
    assert exited.value.code == 0 and "usage: kerastl.predict" in capsys.readouterr().out
    assert "kerastl.predict" not in sys.modules
    assert inspect.isfunction(kerastl.predict) and kerastl.predict is prediction.predict
    assert kerastl.compare is sys.modules["kerastl.study"].compare and inspect.isfunction(kerastl.compare)
