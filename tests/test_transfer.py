"""Freezing, batch-norm behaviour, partial unfreezing and a short fine-tuning run, on each backend."""

import keras
import numpy as np
import pytest

from kerastl.backbones import BACKBONES, backbone_blocks, unfreeze
from kerastl.config import DEFAULTS
from kerastl.models import build_transfer_model
from kerastl.modes import FINETUNE, HEAD
from kerastl.train import Job, fit_stage
from tests.helpers import QUIET, prepared_run



def _config(**overrides):
    return {**DEFAULTS, "mode": "finetune", "batch_size": 64, "patience": 2, "weight_decay": 0.0, **overrides}


def _weights(layers_):
    return [np.array(w) for layer in layers_ for w in layer.weights]


@pytest.fixture(scope="module")
def transfer():
    model, backbone, _, _ = build_transfer_model("efficientnet_lite0", 32, "imagenet", log=QUIET)
    return model, backbone


@pytest.mark.every_backend
def test_frozen_backbone_is_bitwise_unchanged_while_the_head_learns(transfer, mnist_slice, tmp_path):
    model, backbone = transfer
    before_backbone = _weights(backbone.layers)
    before_head = _weights([model.get_layer("classifier")])
    assert not backbone.trainable and len(model.trainable_weights) == 2
    fit_stage(Job(prepared_run(_config(head_epochs=1, lr=3e-3), mnist_slice), tmp_path, QUIET), model, HEAD)
    for a, b in zip(before_backbone, _weights(backbone.layers)):
        assert np.array_equal(a, b)  # includes batch-norm moving mean and variance
    assert not np.array_equal(before_head[0], _weights([model.get_layer("classifier")])[0])


@pytest.mark.every_backend
def test_unfrozen_backbone_learns_but_batch_norm_statistics_stay(mnist_slice, tmp_path):
    model, backbone, _, _ = build_transfer_model("efficientnet_lite0", 32, "imagenet", log=QUIET)
    unfreeze("efficientnet_lite0", backbone)
    bn = backbone.get_layer("block5_bn1")
    conv = backbone.get_layer("block5_depthwise_conv")
    stats, kernel = [np.array(bn.moving_mean), np.array(bn.moving_variance)], np.array(conv.kernel)
    fit_stage(Job(prepared_run(_config(epochs=1, finetune_lr=3e-4), mnist_slice), tmp_path, QUIET), model, FINETUNE)
    assert np.array_equal(stats[0], np.array(bn.moving_mean))
    assert np.array_equal(stats[1], np.array(bn.moving_variance))
    assert not np.array_equal(kernel, np.array(conv.kernel))


@pytest.mark.every_backend
def test_partial_unfreezes_exactly_the_top_blocks():
    model, backbone, _, _ = build_transfer_model("efficientnet_lite0", 32, "none", log=QUIET)
    names = unfreeze("efficientnet_lite0", backbone, 3)
    assert names == ["block14", "block15", "top"]
    blocks = dict(backbone_blocks(BACKBONES["efficientnet_lite0"], backbone))
    expected = {
        id(w) for name in names for layer in blocks[name] for w in layer.weights
        if not isinstance(layer, keras.layers.BatchNormalization)
    }
    expected |= {id(w) for w in model.get_layer("classifier").trainable_weights}
    assert {id(w) for w in model.trainable_weights} == expected
    assert all(not layer.trainable for layer in blocks["block13"] + blocks["stem"])


def test_resnet18_blocks_are_its_stages():
    spec = BACKBONES["resnet18"]
    model = spec.build(input_shape=(32, 32, 3))
    assert [name for name, _ in backbone_blocks(spec, model)] == ["stem", "layer1", "layer2", "layer3", "layer4"]


def test_warmup_then_cosine_schedule():
    """10 % linear warm-up from 0 to the rate, then cosine decay to 0; a constant rate stays a number."""
    from kerastl.train import learning_rate

    assert learning_rate(0.003, "constant", 1000) == 0.003
    schedule = learning_rate(0.003, "cosine", 1000)
    rate = lambda step: float(keras.ops.convert_to_numpy(schedule(step)))  # noqa: E731
    assert rate(0) == 0.0 and rate(50) == pytest.approx(0.0015, rel=1e-5) and rate(100) == pytest.approx(0.003, rel=1e-5)
    assert rate(550) == pytest.approx(0.0015, rel=1e-4)  # half-way through the decay: cos(pi/2)
    assert rate(1000) == pytest.approx(0.0, abs=1e-9) and rate(300) > rate(600) > rate(900)
