"""Abstaining, end to end: a small CNN run records its threshold; `predict` answers `unknown`
below it (`--threshold` overrides); the exported file carries it in its metadata, where
MediaPipe's ImageClassifier reads it and returns no class for a blank picture. One run, one
export (float32 LiteRT), TensorFlow only: the backend contract of the gate is in test_confidence."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import kerastl
from kerastl import export, prediction, runs
from kerastl.confidence import threshold
from kerastl.export import metadata
from kerastl.export.convert import tflite_name
from kerastl.export.mediapipe_check import ANSWER_EVERYTHING, availability, classify
from tests.helpers import QUIET, TINY, run_in_process

MEDIAPIPE, NO_MEDIAPIPE = availability()


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A CNN on 2,000 digits for one epoch (test_confidence: enough to tell blank from a digit), exported as float32 LiteRT."""
    run = kerastl.run(mode="cnn", epochs=1, output_dir=str(tmp_path_factory.mktemp("runs")), run_name="small", log=QUIET,
                      **{**TINY, "limit": 2000})
    export.export_run(run, quantize=["float32"], test_limit=100, latency_repeats=2, calibration_images=100, log=QUIET)
    return run


@pytest.fixture
def digit(tmp_path, mnist):
    path = tmp_path / "seven.png"
    Image.fromarray(mnist["x_test"][0, ..., 0]).save(path)
    return path


def predict_command(argv, capsys):
    return run_in_process(prediction.PROG, prediction.main, argv, capsys)


@pytest.mark.slow
def test_predict_uses_the_runs_threshold_and_the_flag_overrides_it(small_run, digit, capsys):
    recorded = threshold.of_run(small_run.metrics)
    assert 0 < recorded < 1
    code, out, _ = predict_command([str(small_run.folder), str(digit), "--json"], capsys)
    (result,) = json.loads(out)["results"]
    assert code == 0 and result["threshold"] == recorded
    assert result["abstained"] == (result["predictions"][0]["probability"] < recorded)
    code, out, _ = predict_command([str(small_run.folder), str(digit), "--threshold", "1"], capsys)
    assert code == 0 and out.startswith(f"{digit}: unknown (top guess ") and "below the threshold 100.0%" in out
    code, out, _ = predict_command([str(small_run.folder), str(digit), "--threshold", "0"], capsys)
    assert code == 0 and "unknown" not in out and out.startswith(f"{digit}: 7 (")
    code, _, err = predict_command([str(small_run.folder), str(digit), "--threshold", "1.5"], capsys)
    assert code == 2 and "--threshold must be between 0 and 1" in err
    (api,) = kerastl.predict(small_run, [digit], threshold=1.0)
    assert api["abstained"] is True and api["threshold"] == 1.0


@pytest.mark.slow
def test_the_threshold_travels_in_the_files_metadata(small_run, digit, capsys):
    path = small_run.folder / runs.EXPORT_DIR / tflite_name("float32")
    recorded = threshold.of_run(small_run.metrics)
    assert metadata.read_score_threshold(path) == pytest.approx(recorded, rel=1e-6)  # stored as float32
    code, out, _ = predict_command([str(path), str(digit), "--json"], capsys)
    assert code == 0 and json.loads(out)["results"][0]["threshold"] == pytest.approx(recorded, rel=1e-6)


@pytest.mark.slow
@pytest.mark.skipif(MEDIAPIPE is None, reason=f"MediaPipe not usable: {NO_MEDIAPIPE}")
def test_mediapipe_returns_no_class_for_a_blank_picture(small_run, mnist):
    path = small_run.folder / runs.EXPORT_DIR / tflite_name("float32")
    blank = np.zeros((1, 28, 28, 1), np.uint8)
    indices, names = classify(path, np.concatenate([blank, mnist["x_test"][:20]]))
    assert indices[0] == -1 and names[0] == ""  # the file's own threshold, with an app's default options
    top = small_run.model.predict(mnist["x_test"][:20].astype("float32"), verbose=0).max(axis=1)
    keras_answers = top >= threshold.of_run(small_run.metrics)
    assert keras_answers.sum() >= 10 and np.sum((indices[1:] >= 0) != keras_answers) <= 1  # the same digits answered
    everything, _ = classify(path, blank, ANSWER_EVERYTHING)  # an app may ask for every class anyway
    assert everything[0] >= 0


@pytest.mark.slow
def test_the_export_measures_abstaining_and_the_model_card_explains_it(small_run):
    export_dir = small_run.folder / runs.EXPORT_DIR
    recorded = threshold.of_run(small_run.metrics)
    abstain = json.loads((export_dir / "export_report.json").read_text())["abstain"]
    assert abstain["pictures"] == {"test": 100, "fashion_mnist": 2000, "letters": 384, "noise": 1000, "blank": 10, "white": 10}
    (row,) = abstain["rows"]
    assert row["file"] == tflite_name("float32") and row["threshold"] == pytest.approx(recorded, rel=1e-6)
    assert row["litert"]["blank"]["answered"] == 0.0 and row["litert"]["blank"]["auroc"] == 1.0
    # the run measured the same 100 test images in Keras; LiteRT's float32 may differ on a picture at the threshold
    assert row["litert"]["test"]["answered"] == pytest.approx(small_run.metrics["confidence"]["test_answered"], abs=0.011)
    if MEDIAPIPE:
        assert row["mediapipe"]["blank"] == 0.0 and row["mediapipe"]["test"] == pytest.approx(row["litert"]["test"]["answered"], abs=0.011)
    card = (export_dir / "MODEL_CARD.md").read_text()
    assert "## When it says not sure" in card and f"default score threshold of **{recorded:.4f}**" in card
    assert "| `model_float32.tflite` | LiteRT | " in card and "it cannot say 'none of these'" not in card


def test_the_model_card_warns_when_the_validation_split_is_too_small_for_the_share_kept():
    from kerastl.export.model_card import _few_validation

    assert "of only 16: that keeps all of them" in _few_validation({"validation_images": 16}, 99.0)
    assert _few_validation({"validation_images": 200}, 99.0) == ""  # 2 of them may fall below
    assert _few_validation({}, 99.0) == ""  # a run recorded before the count
