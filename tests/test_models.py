import keras
import numpy as np
import pytest

from kerastl.models import build_cnn, build_mlp, build_transfer_model
from kerastl.preprocessing import pixel_adapter, pixels_input


@pytest.mark.every_backend
def test_mlp_and_cnn_shapes_and_sizes():
    mlp, cnn = build_mlp(), build_cnn()
    assert mlp.count_params() == 784 * 512 + 512 + 512 * 512 + 512 + 512 * 10 + 10
    x = np.random.default_rng(0).integers(0, 256, (3, 28, 28, 1)).astype("uint8")
    for model in (mlp, cnn):
        p = keras.ops.convert_to_numpy(model.predict(x, verbose=0))
        assert p.shape == (3, 10) and p.dtype == np.float32
        np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.every_backend
def test_in_graph_preprocessing_matches_by_hand():
    inputs = pixels_input()
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    adapter = keras.Model(inputs, pixel_adapter(inputs, 56, rgb=True, mean=mean, std=std))
    x = np.random.default_rng(1).integers(0, 256, (2, 28, 28, 1)).astype("float32")
    out = keras.ops.convert_to_numpy(adapter(x))
    assert out.shape == (2, 56, 56, 3)
    # 2x bilinear upsampling with half-pixel centres: output pixel (1, 1) mixes input (0,0),(0,1),(1,0),(1,1)
    grey = x[..., 0] / 255.0
    expected = 0.5625 * grey[:, 0, 0] + 0.1875 * (grey[:, 0, 1] + grey[:, 1, 0]) + 0.0625 * grey[:, 1, 1]
    for c in range(3):
        np.testing.assert_allclose(out[:, 1, 1, c], (expected - mean[c]) / std[c], rtol=1e-4, atol=1e-4)


@pytest.mark.every_backend
def test_transfer_model_takes_raw_pixels_and_has_a_new_dense10_head():
    model, backbone, head, features = build_transfer_model("efficientnet_lite0", 32, "none", log=lambda _: None)
    assert model.input_shape == (None, 28, 28, 1) and model.output_shape == (None, 10)
    assert model.get_layer("classifier").units == 10 and backbone.input_shape == (None, 32, 32, 3)
    assert not backbone.trainable
    # the head is the model's own head layers on the backbone's pooled features
    assert features.output_shape == (None, 1280) and head.input_shape == (None, 1280) and head.output_shape == (None, 10)
    assert head.get_layer("classifier") is model.get_layer("classifier")
    x = np.random.default_rng(0).integers(0, 256, (2, 28, 28, 1)).astype("float32")
    as_numpy = keras.ops.convert_to_numpy
    np.testing.assert_allclose(as_numpy(head(features(x))), as_numpy(model(x)), rtol=1e-5, atol=1e-6)
