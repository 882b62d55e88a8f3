"""kerastl.confidence: temperature scaling, the Gaussian detector, the gated model (saved, reloaded
in plain Keras), the abstain threshold, and the step `fit` runs after training."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import kerastl
from kerastl import runs
from kerastl.confidence import calibration, job, threshold
from kerastl.confidence.detector import SHRINKAGE, GaussianDetector, auroc, energy
from kerastl.confidence.features import features_and_logits
from kerastl.confidence.model import Gate, gated_model, is_gated, ungated
from kerastl.models import build_cnn
from tests.helpers import QUIET, TINY, train_small


def test_temperature_lowers_nll_of_overconfident_logits(rng):
    y = rng.integers(0, 10, 4000)
    noisy = rng.normal(0, 1, (4000, 10))
    noisy[np.arange(4000), y] += 2.0  # unit Gaussians, the label's shifted by 2: softmax(2 x noisy) is the true posterior
    logits = 4.0 * (2.0 * noisy)  # ... made 4 times too sure of itself
    t = calibration.fit_temperature(logits, y)
    assert 3.5 < t < 4.5
    assert calibration.nll(logits, y, t) < 0.8 * calibration.nll(logits, y)
    before, after = calibration.softmax(logits), calibration.softmax(logits, t)
    assert calibration.expected_calibration_error(after, y) < 0.03 < calibration.expected_calibration_error(before, y)


def test_ece_of_a_perfectly_calibrated_and_an_overconfident_predictor():
    probabilities = np.tile([[0.8, 0.2]], (1000, 1))
    y = np.r_[np.zeros(800, int), np.ones(200, int)]  # right exactly 80 % of the time at 0.8
    assert calibration.expected_calibration_error(probabilities, y) == pytest.approx(0.0, abs=1e-9)
    assert calibration.expected_calibration_error(probabilities, np.r_[np.zeros(500, int), np.ones(500, int)]) == pytest.approx(0.3)


def test_threshold_keeps_the_stated_share():
    scores = np.linspace(0.0, 1.0, 1000)
    t = threshold.choose(scores, 0.99)
    assert threshold.answered(scores, t).mean() == pytest.approx(0.99)
    assert threshold.choose(scores, 1.0) == 0.0
    assert threshold.of_run({"confidence": {"threshold": 0.25}}) == 0.25
    assert threshold.of_run({"test_accuracy": 0.9}) is None


def test_detector_distance_is_the_mahalanobis_distance(rng):
    features = rng.normal(0, 1, (600, 5)) @ rng.normal(0, 1, (5, 5))
    y = np.repeat(np.arange(3), 200)
    features += np.eye(3, 5)[y] * 5
    detector = GaussianDetector.fit(features, y, 3)
    means = np.stack([features[y == c].mean(0) for c in range(3)])
    centred = features - means[y]
    covariance = centred.T @ centred / (600 - 3)
    precision = np.linalg.inv(covariance + SHRINKAGE * np.trace(covariance) / 5 * np.eye(5))
    probe = rng.normal(0, 3, (7, 5))
    expected = np.stack([np.einsum("nd,de,ne->n", probe - m, precision, probe - m) for m in means], axis=1)
    np.testing.assert_allclose(detector.distances(probe), expected, rtol=1e-4)


def test_auroc_and_energy():
    assert auroc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert auroc(np.array([1.0, 2.0]), np.array([3.0, 4.0])) == 0.0
    np.testing.assert_allclose(energy(np.array([[0.0, 0.0]])), [np.log(2.0)])


@pytest.fixture(scope="module")
def small_cnn(mnist):
    return train_small(mnist, build_cnn, 1000, epochs=1, batch_size=64, filters=(4, 8, 8), dense=16)


@pytest.mark.every_backend
def test_gated_model_computes_the_gate_saves_and_reloads_in_plain_keras(small_cnn, mnist, tmp_path):
    x, y = mnist["x_train"][:1000], mnist["y_train"][:1000]
    features, logits = features_and_logits(small_cnn, x, 250)
    detector = GaussianDetector.fit(features, y, 10)
    distances = detector.min_distance(features)
    gate = Gate(0.7, detector, float(np.quantile(distances, 0.99)), float(np.std(distances)))
    model = gated_model(small_cnn, gate)
    assert is_gated(model) and not is_gated(small_cnn)
    probe = np.concatenate([mnist["x_test"][:20], np.zeros((1, 28, 28, 1), np.uint8),
                            np.random.default_rng(0).integers(0, 256, (3, 28, 28, 1)).astype(np.uint8)]).astype("float32")
    f, z = features_and_logits(small_cnn, probe, 32)
    expected = gate.scores(z, f)
    out = np.asarray(model.predict(probe, verbose=0))
    np.testing.assert_allclose(out, expected, rtol=1e-3, atol=1e-5)
    np.testing.assert_array_equal(out.argmax(1), z.argmax(1))  # the gate never changes the answer, only its score
    np.testing.assert_allclose(ungated(model).predict(probe, verbose=0), small_cnn.predict(probe, verbose=0), rtol=1e-5, atol=1e-7)
    path = tmp_path / "gated.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)  # plain Keras: no custom objects
    np.testing.assert_allclose(np.asarray(reloaded.predict(probe, verbose=0)), out, rtol=1e-5, atol=1e-7)
    assert reloaded.trainable_weights and all(not reloaded.get_layer(n).trainable for n in ("ood_whiten", "in_distribution"))


@pytest.mark.slow
def test_a_run_calibrates_and_records_its_threshold(tmp_path):
    """A CNN on 2,000 digits for one epoch (69 % test accuracy): enough to tell a blank picture from
    a digit (an MLP's features put the blank picture among the digits: it answered it)."""
    run = kerastl.run(mode="cnn", epochs=1, output_dir=str(tmp_path), run_name="small", log=QUIET, **{**TINY, "limit": 2000})
    confidence = run.metrics["confidence"]
    assert confidence["validation_nll_after"] < confidence["validation_nll_before"]
    assert 0.0 < confidence["threshold"] < 1.0 and confidence["keep_in_distribution"] == 0.99
    assert confidence["validation_answered"] >= 0.99
    assert set(confidence["outside"]) == {"fashion_mnist", "letters", "noise", "blank", "white"}
    assert confidence["outside"]["blank"]["answered"] == 0.0
    assert (run.folder / runs.RELIABILITY).is_file() and (run.folder / runs.ABSTAIN_SCORES).is_file()
    model = keras.saving.load_model(run.folder / runs.MODEL)
    assert is_gated(model)
    top = np.asarray(model.predict(np.zeros((2, 28, 28, 1), "float32"), verbose=0)).max(axis=1)
    assert (top < confidence["threshold"]).all()


def test_a_run_without_validation_gets_no_threshold(tmp_path):
    config = tmp_path / "no_validation.yaml"
    config.write_text("mode: mlp\nvalidation_fraction: 0\n")
    lines = []
    run = kerastl.run("mlp", config=str(config), epochs=1, output_dir=str(tmp_path), run_name="no-val", log=lines.append, **TINY)
    assert job.NO_VALIDATION in lines
    assert "confidence" not in run.metrics and threshold.of_run(run.metrics) is None
    assert not is_gated(keras.saving.load_model(run.folder / runs.MODEL))
