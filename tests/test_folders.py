"""Your own images: a folder with one subfolder per class trains in every mode, exports with its
labels and classifies with `predict`; every bad folder is one line and exit 2; keras-hub backbones."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kerastl import prediction, runs
from kerastl.data import folders
from kerastl.litert import LiteRTModel
from tests.helpers import SHAPES, backend, make_image_folder, run_fit

FIT_FLAGS = ["--epochs", "1", "--head-epochs", "1", "--img-size", "32", "--batch-size", "8", "--seed", "0", "--min-steps", "0"]


_fit = run_fit  # python -m kerastl.fit, in this process


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    """12 drawn shapes per class (PNG, JPEG, BMP, GIF; 24-47 px; colour and grey), a text file and
    one truncated PNG."""
    root = make_image_folder(tmp_path_factory.mktemp("data") / "shapes")
    (root / "square" / "broken.png").write_bytes((root / "square" / "square000.png").read_bytes()[:60])
    return root


# Training, export and predict

EXPORTED = ("cnn", "finetune")  # trained with --export: the export tests read the same runs


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory, shapes):
    """`fit --mode MODE` on the shapes folder, run once per mode for this module, by the first test
    that asks (with that test's capsys): (exit code, stdout, stderr, run folder)."""
    done = {}

    def run(mode: str, capsys):
        if mode not in done:
            out = tmp_path_factory.mktemp(mode)
            argv = ["--mode", mode, "--dataset", str(shapes), "--output-dir", str(out), "--run-name", "r", *FIT_FLAGS]
            done[mode] = (*_fit(argv + (["--export"] if mode in EXPORTED else []), capsys), out / "r")
        return done[mode]

    return run


@pytest.mark.parametrize("mode", ["mlp", "cnn", "feature", "finetune", "partial", "pretrain"])
def test_every_mode_trains_on_an_image_folder(capsys, folder_run, mode):
    code, out, err, run = folder_run(mode, capsys)
    assert code == 0, err
    metrics = json.loads((run / "metrics.json").read_text())
    # 12 images per class: 1 test, 1 validation, 10 train (the broken PNG is skipped and counted)
    assert (metrics["train_images"], metrics["validation_images"], metrics["test_images"]) == (30, 3, 3)
    assert metrics["classes"] == 3 and metrics["skipped_images"] == 1 and metrics["backend"] == backend()
    stored = 32 if mode in ("feature", "finetune", "partial", "pretrain") else 64  # mixed sizes: 64; backbones: --img-size
    assert metrics["image_shape"] == [stored, stored, 3]  # some images are colour
    assert (run / "labels.txt").read_text().split() == list(SHAPES)
    assert "skipped 1 of 37 images that cannot be used: square/broken.png (image file is truncated)" in out
    rows = (run / runs.SPLIT_FILE).read_text().splitlines()
    assert rows[0] == "split,label,class,path" and len(rows) == 1 + 36
    assert not (run / "backup").exists()  # the image cache went with the resume state


@pytest.mark.parametrize("mode", EXPORTED)
def test_a_folder_run_exports_with_its_labels_and_predicts_class_names(capsys, shapes, folder_run, mode):
    code, out, err, run = folder_run(mode, capsys)
    assert code == 0, err
    assert f"exported to {run / 'export'}" in out
    export = run / "export"
    assert (export / "labels.txt").read_text().split() == list(SHAPES)
    report = json.loads((export / "export_report.json").read_text())
    assert report["labels"] == list(SHAPES) and report["test_images"] == 3
    assert not [row for row in report["rows"] if row["flagged"]]
    float32 = next(row for row in report["rows"] if row["artifact"] == "tflite float32")
    assert float32["agreement"] == 1.0
    side = 64 if mode == "cnn" else 32  # the stored size of these mixed-size colour images
    for row in report["rows"][2:]:  # every LiteRT file takes the colour images as RGB; MediaPipe accepts it
        assert list(LiteRTModel(export / row["file"]).input["shape"]) == [1, side, side, 3]
        if report["mediapipe"]["version"]:
            assert row["mediapipe"]["refused"] is None and row["mediapipe"]["class_names_match"], row
    assert "images like those of the folder shapes" in (export / "MODEL_CARD.md").read_text()
    images = [str(shapes / "circle" / "circle000.png"), str(shapes / "triangle" / "triangle003.gif")]
    assert prediction.main([str(export / "model_int8.tflite"), *images]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(": ")[0] for line in lines] == images
    assert all(line.split(": ")[1].split(" (")[0] in SHAPES for line in lines), lines


def test_predict_resizes_as_training_did(tmp_path, shapes):
    """A folder model's `predict` pixels are exactly the training pipeline's, for every format."""
    from kerastl.data.pipeline import make_dataset
    from kerastl.prediction import Classifier

    paths = [p for p in sorted(shapes.rglob("*.*")) if p.suffix in (".png", ".jpg", ".bmp", ".gif") and p.name != "broken.png"][:8]
    images = folders.FileImages(np.array([str(p) for p in paths], dtype=object), (20, 30), 3)
    streamed = np.concatenate([x.numpy() for x, _ in make_dataset(images, np.zeros(len(paths), "int64"), 4)])
    classifier = Classifier(lambda x: x, list(SHAPES), "keras", (20, 30, 3))
    assert not classifier.mnist_style
    by_predict = np.stack([classifier.pixels(p, "auto") for p in paths])
    assert streamed.shape == (8, 20, 30, 3) and streamed.dtype == np.uint8
    np.testing.assert_array_equal(by_predict, streamed)
    grey = folders.load_images([str(paths[0])], (20, 30), 1)
    assert grey.shape == (1, 20, 30, 1)


def test_given_train_val_test_folders_are_the_splits(tmp_path, capsys):
    for split, count in (("train", 6), ("val", 2), ("test", 3)):
        make_image_folder(tmp_path / "data" / split, per_class=count, seed=len(split), classes=("a", "b"))
    code, out, err = _fit(["--mode", "cnn", "--dataset", str(tmp_path / "data"), "--output-dir", str(tmp_path / "runs"),
                           "--run-name", "r", "--stored-size", "24", *FIT_FLAGS], capsys)
    assert code == 0, err
    metrics = json.loads((tmp_path / "runs" / "r" / "metrics.json").read_text())
    assert (metrics["train_images"], metrics["validation_images"], metrics["test_images"]) == (12, 4, 6)
    assert metrics["image_shape"] == [24, 24, 3] and "by its train/val/test folders" in out


def test_per_class_draws_a_balanced_subset_of_a_folder(tmp_path, capsys, shapes):
    code, out, err = _fit(["--mode", "mlp", "--dataset", str(shapes), "--per-class", "4", "--output-dir", str(tmp_path),
                           "--run-name", "r", *FIT_FLAGS], capsys)
    assert code == 0, err
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert (metrics["train_images"], metrics["validation_images"]) == (12, 3)  # 4 of 10 per class; the val folder's 3 validate


# Bad folders: one line, exit 2, no run folder left behind


def _bad_folder(tmp_path: Path, case: str) -> Path:
    root = tmp_path / case
    if case == "missing":
        return root
    if case == "one class":
        make_image_folder(root, per_class=4, classes=("only",))
    elif case == "empty class":
        make_image_folder(root, per_class=4, classes=("a", "b"))
        (root / "c").mkdir()
        (root / "c" / "readme.txt").write_text("no images here")
    elif case == "too small":
        make_image_folder(root, per_class=4, classes=("a", "b"))
        make_image_folder(root / "tmp", per_class=2, classes=("c",))
        (root / "tmp" / "c").rename(root / "c")
        (root / "tmp").rmdir()
    elif case == "mostly broken":
        make_image_folder(root, per_class=4, classes=("a", "b"))
        for path in sorted((root / "a").glob("a0*"))[:3]:
            path.write_bytes(b"this is not an image")
    elif case == "test classes differ":
        make_image_folder(root / "train", per_class=4, classes=("a", "b"))
        make_image_folder(root / "test", per_class=2, classes=("a", "c"))
    return root


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "no such folder"),
        ("one class", "need at least 2 class folders of images"),
        ("empty class", "class 'c' has no images"),
        ("too small", "class 'c' has 2 usable image(s), too few to split into train, test and val (at least 3)"),
        ("mostly broken", "3 of 8 images cannot be used, more than max_broken_share 0.1 allows (first: a/"),
        ("test classes differ", "the classes of test/ differ from train/ (missing b; extra c)"),
    ],
)
def test_a_bad_folder_is_one_line_and_exit_2(tmp_path, capsys, case, message):
    root = _bad_folder(tmp_path / "data", case)
    code, out, err = _fit(["--mode", "cnn", "--dataset", str(root), "--output-dir", str(tmp_path / "runs")], capsys)
    assert code == 2, err
    assert err.strip().count("\n") == 0 and message in err, err
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []


def test_broken_files_are_skipped_named_and_counted(tmp_path):
    """Truncated, not an image, a decompression bomb, a palette BMP and a 16-bit PNG (which
    TensorFlow's decoder reads wrongly) are skipped with their reasons; the rest is used."""
    root = make_image_folder(tmp_path / "data", per_class=30, classes=("a", "b"))
    good = root / "a" / "a000.png"
    (root / "a" / "truncated.png").write_bytes(good.read_bytes()[:80])
    (root / "a" / "text.jpg").write_text("hello")
    Image.new("L", (8000, 6000)).save(root / "b" / "bomb.png")  # 48 megapixels, a few KB on disk
    Image.new("RGB", (20, 20), (200, 30, 40)).convert("P").save(root / "b" / "palette.bmp")
    Image.fromarray(np.full((20, 20), 40000, np.uint16)).save(root / "b" / "deep.png")
    lines = []
    data = folders.scan(root, log=lines.append, max_broken_share=0.2)
    reasons = dict((Path(p).name, why) for p, why in data.skipped)
    assert set(reasons) == {"truncated.png", "text.jpg", "bomb.png", "palette.bmp", "deep.png"}
    assert reasons["text.jpg"] == "not an image" and "8000x6000 pixels, more than the 40 megapixel limit" in reasons["bomb.png"]
    assert "palette BMP" in reasons["palette.bmp"] and "more than 8 bits" in reasons["deep.png"]
    assert sum(len(data.labels(s)) for s in ("train", "val", "test")) == 60
    assert len(lines) == 2 and lines[0] == "data: ignored 1 file(s) that are not jpg/jpeg/png/bmp/gif images (e.g. a/notes.txt)"
    assert lines[1].startswith("data: warning: skipped 5 of 65 images that cannot be used: ")


def test_the_scan_is_seeded_and_stratified(tmp_path):
    root = make_image_folder(tmp_path / "data", per_class=20, classes=("a", "b", "c"))
    first, again, other = (folders.scan(root, seed=s, log=lambda _: None) for s in (0, 0, 1))
    assert [list(first.files[s][0]) for s in ("train", "val", "test")] == [list(again.files[s][0]) for s in ("train", "val", "test")]
    assert list(first.files["test"][0]) != list(other.files["test"][0])
    for split, per_class in (("train", 16), ("val", 2), ("test", 2)):
        assert np.bincount(first.labels(split)).tolist() == [per_class] * 3


# keras-hub backbones


@pytest.fixture(scope="module")
def hub_preset(tmp_path_factory) -> Path:
    """A small ResNet backbone from keras-hub with random weights, saved as a local preset folder."""
    keras_hub = pytest.importorskip("keras_hub")
    folder = tmp_path_factory.mktemp("hub") / "tiny_resnet"
    keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[7], stackwise_num_filters=[64, 128], stackwise_num_blocks=[1, 1],
        stackwise_num_strides=[1, 2], block_type="basic_block", use_pre_activation=False, image_shape=(None, None, 3),
    ).save_to_preset(str(folder))
    return folder


def test_a_keras_hub_backbone_trains_exports_and_passes_parity(tmp_path, capsys, shapes, hub_preset):
    argv = ["--mode", "partial", "--unfreeze", "1", "--backbone", f"hub:{hub_preset}", "--dataset", str(shapes),
            "--output-dir", str(tmp_path), "--run-name", "r", "--export", *FIT_FLAGS]
    code, out, err = _fit(argv, capsys)
    assert code == 0, err
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["backbone"] == f"hub:{hub_preset}" and metrics["img_size"] == 32
    assert metrics["parameters"] == 314_816 + 128 * 3 + 3  # the preset's backbone and the new Dense(3) head
    assert "stage finetune: unfroze the top 1 blocks: stack1" in out
    report = json.loads((tmp_path / "r" / "export" / "export_report.json").read_text())
    assert report["labels"] == list(SHAPES) and not [row for row in report["rows"] if row["flagged"]]


def test_hub_without_keras_hub_says_how_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "keras_hub", None)  # import fails as if not installed
    code, out, err = _fit(["--mode", "finetune", "--backbone", "hub:resnet_18_imagenet", "--output-dir", str(tmp_path)], capsys)
    assert code == 2 and err.strip().count("\n") == 0
    assert 'needs keras-hub, which is not installed: pip install "kerastl[hub]"' in err


def test_a_missing_hub_preset_folder_is_one_line(tmp_path, capsys):
    pytest.importorskip("keras_hub")
    code, out, err = _fit(["--mode", "finetune", "--backbone", f"hub:{tmp_path / 'nope'}", "--output-dir", str(tmp_path / "runs"),
                           "--limit", "100", "--test-limit", "50"], capsys)
    assert code == 2 and err.strip().count("\n") == 0 and "no such preset folder" in err, err


def test_a_resumed_run_refuses_a_folder_whose_split_changed(tmp_path):
    root = make_image_folder(tmp_path / "data", per_class=10, classes=("a", "b"))
    record = tmp_path / "run" / runs.SPLIT_FILE
    record.parent.mkdir()
    folders.record_split(record, folders.scan(root, log=lambda _: None))
    folders.record_split(record, folders.scan(root, log=lambda _: None))  # same folder, same split: accepted
    (root / "b" / "b000.png").unlink()
    with pytest.raises(folders.UserError, match="changed since this run started"):
        folders.record_split(record, folders.scan(root, log=lambda _: None))


def test_a_hub_presets_normalisation_comes_from_its_image_converter(tmp_path, hub_preset):
    """scale and offset on 0..255 pixels become mean and std of [0, 1] pixels; a backbone-only
    preset (save_to_preset) has no converter, and ImageNet's statistics are used instead."""
    import shutil

    import keras_hub

    from kerastl.backbones import IMAGENET_MEAN, IMAGENET_STD, hub

    assert hub.normalisation(str(hub_preset)) is None
    folder = tmp_path / "with_converter"
    shutil.copytree(hub_preset, folder)
    mean, std = (0.5, 0.25, 0.125), (0.2, 0.3, 0.4)
    keras_hub.layers.ResNetImageConverter(
        image_size=(32, 32), scale=[1 / (255 * s) for s in std], offset=[-m / s for m, s in zip(mean, std)]
    ).save_to_preset(str(folder))
    got_mean, got_std = hub.normalisation(str(folder))
    assert np.allclose(got_mean, mean, atol=1e-6) and np.allclose(got_std, std, atol=1e-6)
    assert (IMAGENET_MEAN, IMAGENET_STD) == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
