"""kerastl.confidence: temperature scaling, the Gaussian detector, the gated model (saved, reloaded
in plain Keras), the abstain threshold, and the step `fit` runs after training."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import kerastl
from kerastl import runs
from kerastl.confidence import calibration, job, threshold
from kerastl.confidence.detector import SHRINKAGE, GaussianDetector, auroc, energy, to_unit_length
from kerastl.confidence.features import features_and_logits
from kerastl.confidence.model import WEIGHT_FLOOR, Gate, gated_model, is_gated, ungated
from kerastl.models import build_cnn
from benchmarks.small_data import photo_like_folder
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


def test_a_validation_split_without_a_mistake_still_gets_a_finite_temperature(rng):
    """All right: the NLL falls for ever as T -> 0, and the plain fit ran to the grid's end (0.05),
    making every answer 100 % sure; Laplace's smoothing 1 / (n + 2) gives the T those n answers support."""
    y = rng.integers(0, 4, 16)
    logits = rng.normal(0, 1, (16, 4))
    logits[np.arange(16), y] += 3.0  # every picture right, none by much
    assert calibration.succession_smoothing(logits, y) == pytest.approx(1 / 18)
    assert calibration.nll(logits, y, 0.05) < calibration.nll(logits, y, 0.2) < calibration.nll(logits, y, 1.0)  # no minimum
    t = calibration.fit_temperature(logits, y)
    assert 0.2 < t < 5.0
    smoothed = [calibration.nll(logits, y, s, 1 / 18) for s in (0.9 * t, t, 1.1 * t)]
    assert smoothed[1] < smoothed[0] and smoothed[1] < smoothed[2]  # a true minimum
    wrong = logits.copy()
    wrong[0] = -wrong[0]  # one mistake: the labels are fitted as they are
    assert calibration.succession_smoothing(wrong, y) == 0.0


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
    probe = rng.normal(0, 3, (7, 5))
    assert not detector.unit_length
    np.testing.assert_allclose(detector.distances(probe), mahalanobis_by_hand(features, y, probe), rtol=1e-4)


def mahalanobis_by_hand(features: np.ndarray, y: np.ndarray, probe: np.ndarray) -> np.ndarray:
    """Squared distances [n, classes] of `probe` to the class means under the tied, shrunk covariance."""
    classes = int(y.max()) + 1
    means = np.stack([features[y == c].mean(0) for c in range(classes)])
    centred = features - means[y]
    covariance = centred.T @ centred / (len(features) - classes)
    precision = np.linalg.inv(covariance + SHRINKAGE * np.trace(covariance) / len(covariance) * np.eye(len(covariance)))
    return np.stack([np.einsum("nd,de,ne->n", probe - m, precision, probe - m) for m in means], axis=1)


def test_with_fewer_pictures_than_dimensions_the_detector_reads_unit_length_features(rng):
    """20 pictures of 50 features: the covariance is rank-deficient and a picture's distance grows
    with its feature length, so a short feature vector (a blank picture's) looked near the classes."""
    y = np.repeat(np.arange(2), 10)
    brightness = rng.uniform(0.5, 1.5, (20, 1))  # the pictures' features vary in length, as pooled activations do
    features = brightness * (rng.normal(0, 1, (20, 50)) + 4.0 * np.eye(2, 50)[y] + 6.0)
    detector = GaussianDetector.fit(features, y, 2)
    assert detector.unit_length and not GaussianDetector.fit(np.tile(features, (3, 1)), np.tile(y, 3), 2).unit_length
    probe = rng.uniform(0.5, 1.5, (200, 1)) * (rng.normal(0, 1, (200, 50)) + 6.0 + 2.0 * np.eye(2, 50)[rng.integers(0, 2, 200)])
    short = 0.2 * probe  # the same pictures with a fifth of the activation, as a blank picture excites few features
    raw = mahalanobis_by_hand(features, y, probe).min(1), mahalanobis_by_hand(features, y, short).min(1)
    assert np.median(raw[1]) < 0.7 * np.median(raw[0])  # the failure: read as they are, the short ones lie nearer
    unit = lambda f: f / np.linalg.norm(f, axis=1, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(detector.distances(probe), mahalanobis_by_hand(unit(features), y, unit(probe)), rtol=1e-3)
    np.testing.assert_allclose(detector.min_distance(short), detector.min_distance(probe), rtol=1e-4)  # length no longer counts
    np.testing.assert_array_equal(to_unit_length(np.zeros((1, 3))), np.zeros((1, 3)))


def test_auroc_and_energy():
    assert auroc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert auroc(np.array([1.0, 2.0]), np.array([3.0, 4.0])) == 0.0
    np.testing.assert_allclose(energy(np.array([[0.0, 0.0]])), [np.log(2.0)])


@pytest.fixture(scope="module")
def small_cnn(mnist):
    return train_small(mnist, build_cnn, 1000, epochs=1, batch_size=64, filters=(4, 8, 8), dense=16)


@pytest.mark.every_backend
@pytest.mark.parametrize("pictures", [1000, 20])
def test_gated_model_computes_the_gate_saves_and_reloads_in_plain_keras(small_cnn, mnist, tmp_path, pictures):
    """On 1,000 pictures the detector reads the features as they are; on 20, fewer than the
    features' dimensions, at unit length (a UnitNormalization layer in the graph)."""
    x, y = mnist["x_train"][:pictures], mnist["y_train"][:pictures]
    features, logits = features_and_logits(small_cnn, x, 250)
    detector = GaussianDetector.fit(features, y, 10)
    assert detector.unit_length == (pictures < features.shape[1])
    distances = detector.min_distance(features_and_logits(small_cnn, mnist["x_train"][1000:1200], 100)[0])  # unseen digits
    gate = Gate(0.7, detector, float(np.quantile(distances, 0.99)), float(np.std(distances)))
    model = gated_model(small_cnn, gate)
    assert is_gated(model) and not is_gated(small_cnn)
    assert any(layer.name == "ood_unit_length" for layer in model.layers) == detector.unit_length
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


def test_a_picture_far_from_every_class_keeps_a_score_above_0_and_its_top_guess(small_cnn, mnist):
    """A gate so tight that every picture is far past its midpoint: float32's sigmoid would give
    exactly 0 (MediaPipe then names no class even when an app asks for every answer, and the top
    guess would be class 0); the weight's floor keeps the ranking and a positive score."""
    x, y = mnist["x_train"][:1000], mnist["y_train"][:1000]
    features, logits = features_and_logits(small_cnn, x, 250)
    gate = Gate(1.0, GaussianDetector.fit(features, y, 10), tau=1e-3, scale=1e-3)
    assert gate.weight(np.array([1e6]))[0] == WEIGHT_FLOOR
    out = np.asarray(gated_model(small_cnn, gate).predict(x[:50].astype("float32"), verbose=0))
    assert out.max() < 1e-5 and out.max(axis=1).min() > 0.0
    np.testing.assert_array_equal(out.argmax(1), logits[:50].argmax(1))


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


@pytest.mark.slow
def test_a_small_colour_folder_on_frozen_features_says_not_sure_to_blank_and_white(tmp_path):
    """Feature mode at 96 px on 144 photo-like colour pictures of 4 classes: 1,280 features, fewer
    pictures than dimensions, so the detector reads them at unit length. Read as they were, this
    run answered every blank and white picture (the distance's AUROC against the 100 test pictures
    0.08: they lay nearer the classes than the test pictures); at unit length none (0.94, 0.93). About 30 s."""
    folder = photo_like_folder(tmp_path / "clothes", train_per_class=40, test_per_class=25)
    run = kerastl.run(mode="feature", dataset=str(folder), img_size=96, epochs=2, output_dir=str(tmp_path / "runs"),
                      run_name="clothes", log=QUIET)
    confidence = run.metrics["confidence"]
    assert confidence["detector"].endswith("features scaled to unit length (fewer pictures than dimensions)")
    assert set(confidence["outside"]) == {"noise", "blank", "white"}
    for name in ("blank", "white"):
        assert confidence["outside"][name]["answered"] == 0.0
        assert confidence["outside"][name]["auroc_mahalanobis"] > 0.9
    model = keras.saving.load_model(run.folder / runs.MODEL)
    top = np.asarray(model.predict(np.stack([np.zeros((96, 96, 3)), np.full((96, 96, 3), 255.0)]), verbose=0)).max(axis=1)
    assert (top < confidence["threshold"]).all()


def test_a_run_without_validation_gets_no_threshold(tmp_path):
    config = tmp_path / "no_validation.yaml"
    config.write_text("mode: mlp\nvalidation_fraction: 0\n")
    lines = []
    run = kerastl.run("mlp", config=str(config), epochs=1, output_dir=str(tmp_path), run_name="no-val", log=lines.append, **TINY)
    assert job.NO_VALIDATION in lines
    assert "confidence" not in run.metrics and threshold.of_run(run.metrics) is None
    assert not is_gated(keras.saving.load_model(run.folder / runs.MODEL))
