"""Exported LiteRT files that drop into an app: RGB input, TFLite metadata with the labels inside,
acceptance by MediaPipe Tasks' ImageClassifier, the model card, and the bad inputs.

A small CNN is trained for one epoch under the backend the tests run on and exported (in a
TensorFlow process unless that backend is TensorFlow). The MediaPipe checks are skipped where
`mediapipe` (the `mobile` extra, also in `test`) is not installed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from kerastl import export, runs
from kerastl.cli import run_cli
from kerastl.export import cli, metadata, model_card
from kerastl.export.convert import QUANTIZATIONS, tflite_name
from kerastl.export.mediapipe_check import PICTURE_SCALE, availability
from kerastl.litert import LiteRTModel
from kerastl.models import build_cnn
from tests.helpers import backend, make_image_folder, run_export, train_small, write_run

BACKEND = backend()
TEST_LIMIT = 300
MEDIAPIPE, NO_MEDIAPIPE = availability()
needs_mediapipe = pytest.mark.skipif(MEDIAPIPE is None, reason=f"MediaPipe not usable: {NO_MEDIAPIPE}")
in_process = pytest.mark.skipif(BACKEND != "tensorflow", reason="patches the export, so it must run in this process (TensorFlow backend)")


def train_cnn(mnist) -> keras.Model:
    return train_small(mnist, build_cnn, 3000, filters=(8, 16), dense=32)


@pytest.fixture(scope="module")
def app_export(tmp_path_factory, mnist):
    """A CNN's run exported in every LiteRT variant and checked on the first 300 test images."""
    run_dir = write_run(tmp_path_factory.mktemp("runs") / "cnn", train_cnn(mnist))
    runs.write_labels(run_dir, [f"digit {d}" for d in range(10)])  # names unlike the indices, to see them come back
    report = export.export_run(run_dir, formats=["tflite"], test_limit=TEST_LIMIT, latency_repeats=3,
                               calibration_images=100, log=lambda _: None)
    return run_dir, report


def tflite(run_dir: Path, variant: str) -> Path:
    return run_dir / runs.EXPORT_DIR / tflite_name(variant)


def coloured(digits: np.ndarray, seed: int = 0) -> np.ndarray:
    """MNIST digits [n, 28, 28, 1] as colour pictures: light ink of a random colour on dark paper of another."""
    rng = np.random.default_rng(seed)
    ink = rng.integers(150, 256, (len(digits), 1, 1, 3))
    paper = rng.integers(0, 60, (len(digits), 1, 1, 3))
    share = digits.astype(np.float64) / 255
    return np.round(share * ink + (1 - share) * paper).astype(np.uint8)


# The files take RGB; uint8 is the default integer input and output


def test_every_file_takes_rgb_pixels_and_full_integer_takes_uint8(app_export):
    run_dir, report = app_export
    for variant in QUANTIZATIONS:
        lite = LiteRTModel(tflite(run_dir, variant))
        assert list(lite.input["shape"]) == [1, 28, 28, 3] and list(lite.output["shape"]) == [1, 10], variant
        expected = np.uint8 if variant == "int8" else np.float32
        assert lite.input_dtype == expected and lite.output_dtype == expected, variant
    scale, zero_point = LiteRTModel(tflite(run_dir, "int8")).input["quantization"]
    assert scale == pytest.approx(1.0, rel=0.01) and zero_point == 0
    assert report["int8_io"] == "uint8" and report["rows"][-1]["artifact"] == "tflite int8 (uint8)"


# TFLite metadata, read back


def test_metadata_and_labels_are_inside_every_file(app_export):
    run_dir, _ = app_export
    labels = (run_dir / runs.EXPORT_DIR / runs.LABELS).read_bytes()
    for variant in QUANTIZATIONS:
        path = tflite(run_dir, variant)
        buffer = metadata.read_metadata(path)
        assert buffer is not None and buffer[4:8] == metadata.FILE_IDENTIFIER, variant
        assert metadata.read_packed_files(path) == {runs.LABELS: labels}, variant


@needs_mediapipe
def test_metadata_reads_back_with_mediapipes_own_reader(app_export):
    """Parsed with the reader generated from metadata_schema.fbs that ships in mediapipe's wheel."""
    from mediapipe.tasks.metadata import metadata_schema_py_generated as schema

    run_dir, _ = app_export
    for variant in QUANTIZATIONS:
        buffer = metadata.read_metadata(tflite(run_dir, variant))
        assert schema.ModelMetadata.ModelMetadataBufferHasIdentifier(buffer, 0)
        meta = schema.ModelMetadataT.InitFromObj(schema.ModelMetadata.GetRootAs(buffer, 0))
        assert meta.name == b"kerastl mlp, mnist" and meta.version == b"cnn" and meta.minParserVersion == b"1.0.0"
        assert meta.author.startswith(b"trained with kerastl")
        assert b"CC BY-SA 3.0" in meta.license and b"random initialisation" in meta.license
        assert b"into 10 classes" in meta.description and variant.encode() in meta.description
        (subgraph,) = meta.subgraphMetadata
        (image,), (probability,) = subgraph.inputTensorMetadata, subgraph.outputTensorMetadata
        assert image.content.contentPropertiesType == schema.ContentProperties.ImageProperties
        properties = image.content.contentProperties
        assert properties.colorSpace == schema.ColorSpaceType.RGB
        assert (properties.defaultSize.height, properties.defaultSize.width) == (28, 28)
        (unit,) = image.processUnits
        assert unit.optionsType == schema.ProcessUnitOptions.NormalizationOptions
        assert list(unit.options.mean) == [0.0] and list(unit.options.std) == [1.0]
        assert list(image.stats.min) == [0.0] and list(image.stats.max) == [255.0]
        assert probability.content.contentPropertiesType == schema.ContentProperties.FeatureProperties
        assert list(probability.stats.min) == [0.0] and list(probability.stats.max) == [1.0]
        (labels,) = probability.associatedFiles
        assert labels.name == b"labels.txt" and labels.type == schema.AssociatedFileType.TENSOR_AXIS_LABELS


# MediaPipe's ImageClassifier accepts every file and classifies like Keras


@needs_mediapipe
def test_mediapipe_classifies_every_file_like_keras_with_the_class_names(app_export):
    _, report = app_export
    assert report["mediapipe"] == {"version": MEDIAPIPE, "not_checked": None, "picture_scale": PICTURE_SCALE}
    keras_accuracy = report["rows"][0]["accuracy"]
    for row in report["rows"][1:]:
        app = row["mediapipe"]
        assert app["refused"] is None and app["class_names_match"], row["artifact"]
        assert abs(app["accuracy"] - keras_accuracy) <= 0.01 and app["agreement"] >= 0.98, row["artifact"]
        assert not row["flagged"], row["flags"]
    float32 = report["rows"][1]["mediapipe"]
    assert float32["agreement"] == 1.0 and float32["delta_pp"] == 0.0
    table = export.format_table(report)
    assert f"{100 * float32['accuracy']:.2f}%" in table.splitlines()[3]
    assert f"MediaPipe: mediapipe {MEDIAPIPE} ImageClassifier" in table


@needs_mediapipe
def test_mediapipe_returns_the_runs_class_names(app_export, mnist):
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    run_dir, _ = app_export
    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=str(tflite(run_dir, "int8"))),
                                            max_results=3)
    with vision.ImageClassifier.create_from_options(options) as classifier:
        picture = np.ascontiguousarray(coloured(mnist["x_test"][:1])[0].repeat(5, axis=0).repeat(5, axis=1))  # 140x140
        categories = classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=picture)).classifications[0].categories
    assert len(categories) == 3 and all(c.category_name == f"digit {c.index}" for c in categories)
    assert categories[0].score >= categories[1].score >= categories[2].score > 0


# An app's RGB picture and predict's grey picture get the same answer


def test_rgb_pictures_give_what_predict_gives_their_grey_version(app_export, mnist):
    """The file converts RGB to grey as PIL's convert("L") does, which is how `predict` sees a
    colour picture; the same 100 coloured digits both ways give the same classes."""
    run_dir, _ = app_export
    rgb = coloured(mnist["x_test"][:100])
    grey = np.stack([np.asarray(Image.fromarray(picture).convert("L"))[..., None] for picture in rgb])
    model = keras.saving.load_model(run_dir / runs.MODEL, compile=False)
    by_predict = keras.ops.convert_to_numpy(model.predict(grey.astype("float32"), verbose=0))
    by_app = LiteRTModel(tflite(run_dir, "float32")).predict(rgb)
    np.testing.assert_array_equal(by_app.argmax(axis=1), by_predict.argmax(axis=1))
    assert np.max(np.abs(by_app - by_predict)) < 0.02  # PIL rounds the grey level to an integer; the file does not
    int8 = LiteRTModel(tflite(run_dir, "int8")).predict(rgb)
    assert np.mean(int8.argmax(axis=1) == by_predict.argmax(axis=1)) >= 0.97


@needs_mediapipe
def test_rgb_pictures_in_mediapipe_give_what_predict_gives(app_export, mnist):
    from kerastl.export.mediapipe_check import classify

    run_dir, _ = app_export
    rgb = coloured(mnist["x_test"][:100], seed=1)
    grey = np.stack([np.asarray(Image.fromarray(picture).convert("L"))[..., None] for picture in rgb])
    model = keras.saving.load_model(run_dir / runs.MODEL, compile=False)
    by_predict = keras.ops.convert_to_numpy(model.predict(grey.astype("float32"), verbose=0)).argmax(axis=1)
    top1, _ = classify(tflite(run_dir, "float32"), rgb)
    assert np.mean(top1 == by_predict) >= 0.99


def test_a_grey_folder_model_gives_a_colour_picture_the_class_predict_gives(tmp_path):
    """Trained on a folder of grey pictures: `predict` with the .keras model turns a colour picture
    grey as training did (PIL's weights); the LiteRT file takes the picture in RGB and does the same inside."""
    from kerastl import fit, predict  # the function kerastl.predict

    root = make_image_folder(tmp_path / "grey", per_class=10)
    for path in root.rglob("*.*"):
        if path.suffix != ".txt":
            Image.open(path).convert("L").save(path)
    argv = ["--mode", "cnn", "--dataset", str(root), "--output-dir", str(tmp_path), "--run-name", "r",
            "--stored-size", "32", "--epochs", "3", "--batch-size", "8", "--seed", "0"]
    assert run_cli("kerastl.fit", lambda: fit.main(argv)) == 0
    run_dir = tmp_path / "r"
    assert json.loads((run_dir / runs.METRICS).read_text())["image_shape"] == [32, 32, 1]
    report = export.export_run(run_dir, formats=["tflite"], quantize=["float32"], latency_repeats=1, log=lambda _: None)
    if MEDIAPIPE:
        assert report["rows"][1]["mediapipe"]["refused"] is None
    colour = make_image_folder(tmp_path / "colour", per_class=4, seed=5)
    pictures = [p for p in sorted(colour.rglob("*")) if p.suffix in (".png", ".jpg") and Image.open(p).mode == "RGB"]
    assert len(pictures) >= 4
    by_keras = predict(run_dir / runs.MODEL, pictures, top_k=3)
    by_file = predict(tflite(run_dir, "float32"), pictures, top_k=3)
    for keras_result, file_result in zip(by_keras, by_file):
        assert [p["label"] for p in keras_result["predictions"]] == [p["label"] for p in file_result["predictions"]]
        for a, b in zip(keras_result["predictions"], file_result["predictions"]):
            assert abs(a["probability"] - b["probability"]) < 0.01


# The model card


def card_rows(card: str, heading: str) -> list[list[str]]:
    """The cells of the markdown table under `heading`."""
    section = card.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| ---")]
    return [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines[1:]]


def test_the_model_card_numbers_are_the_parity_reports(app_export):
    run_dir, report = app_export
    card = (run_dir / runs.EXPORT_DIR / model_card.MODEL_CARD).read_text()
    rows = {cells[0]: cells for cells in card_rows(card, "Accuracy, size and latency")}
    assert list(rows) == [row["file"] for row in report["rows"]]
    for row in report["rows"]:
        cells = rows[row["file"]]
        assert cells[2] == f"{100 * row['accuracy']:.2f} %" and cells[3] == f"{row['delta_pp']:+.2f} pp"
        assert cells[4] == f"{100 * row['agreement']:.2f} %" and cells[5] == f"{row['latency_ms']:.3f} ms"
        if "mediapipe" in row:
            assert cells[6] == f"{100 * row['mediapipe']['accuracy']:.2f} %"
            assert cells[7] == f"{100 * row['mediapipe']['agreement']:.2f} %"
    per_class = card_rows(card, "Accuracy per class")
    assert [cells[0] for cells in per_class] == [f"digit {d}" for d in range(10)]
    for c, cells in enumerate(per_class):
        assert cells[1:] == [f"{100 * row['per_class_accuracy'][c]:.2f} %" for row in report["rows"]]
    for heading in ("Input and output", "Data", "Training", "Intended use and limits", "Licences", "Use it"):
        assert f"\n## {heading}\n" in card
    assert "must be inverted" in card and "CC BY-SA 3.0" in card
    for language in ("python", "kotlin", "swift", "javascript"):
        assert f"```{language}\n" in card


@needs_mediapipe
def test_the_model_cards_python_example_runs(app_export, mnist, tmp_path):
    run_dir, report = app_export
    card = (run_dir / runs.EXPORT_DIR / model_card.MODEL_CARD).read_text()
    ship = model_card.app_file(report)
    assert ship == "model_int8.tflite" and f'model_asset_path="{ship}"' in card
    code = card.split("```python\n", 1)[1].split("```", 1)[0]
    shutil.copy(run_dir / runs.EXPORT_DIR / ship, tmp_path / ship)
    digit = mnist["x_test"][0, :, :, 0]  # a grey picture: the example converts it to RGB for MediaPipe
    Image.fromarray(digit).resize((112, 112), Image.Resampling.BILINEAR).save(tmp_path / "picture.png")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stdout.splitlines() if re.fullmatch(r"digit \d \d\.\d+", line)]
    assert len(lines) == 3, result.stdout
    assert lines[0].split()[1] == str(mnist["y_test"][0])  # the model reads this digit right


# Bad inputs: one line, exit 2, no export folder


def nothing_written(run_dir: Path) -> bool:
    return not (run_dir / runs.EXPORT_DIR).exists() and not [p for p in run_dir.iterdir() if p.name.startswith(".")]


def test_labels_that_do_not_match_the_model_are_one_line(tmp_path, app_export, capsys, monkeypatch):
    run_dir = tmp_path / "run"
    shutil.copytree(app_export[0], run_dir, ignore=shutil.ignore_patterns("export"))
    runs.write_labels(run_dir, [str(d) for d in range(9)])
    code, out, err = run_export([str(run_dir), "--test-limit", "10"], capsys, monkeypatch)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("kerastl.export: error: ") and "names 9 classes but the model has 10 outputs" in err
    assert nothing_written(run_dir)


def test_a_folder_run_without_labels_is_one_line(tmp_path, app_export, capsys, monkeypatch):
    """Built-in datasets have known class names; an image folder's are only in labels.txt."""
    run_dir = tmp_path / "run"
    shutil.copytree(app_export[0], run_dir, ignore=shutil.ignore_patterns("export", runs.LABELS))
    runs.write_config(run_dir, {"mode": "cnn", "dataset": str(tmp_path / "my-photos")})
    code, out, err = run_export([str(run_dir), "--test-limit", "10"], capsys, monkeypatch)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("kerastl.export: error: ") and f"has no {runs.LABELS} with the class names" in err
    assert nothing_written(run_dir)


@in_process
def test_a_failing_metadata_writer_is_one_line_and_leaves_nothing(tmp_path, app_export, monkeypatch, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(app_export[0], run_dir, ignore=shutil.ignore_patterns("export"))

    def fail(path, data, files):
        raise metadata.MetadataError("ValueError: the model is too large for a FlatBuffer")

    monkeypatch.setattr(metadata, "write_into_model", fail)
    code = run_cli("kerastl.export", lambda: cli.main([str(run_dir), "--formats", "tflite", "--quantize", "float32",
                                                       "--test-limit", "10", "--latency-repeats", "1"]))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0] == ("kerastl.export: error: writing the TFLite metadata into model_float32.tflite failed "
                      "(ValueError: the model is too large for a FlatBuffer); nothing was written")
    assert nothing_written(run_dir)


@in_process
def test_without_mediapipe_the_column_says_not_checked(tmp_path, app_export, monkeypatch):
    from kerastl.export import mediapipe_check

    run_dir = tmp_path / "run"
    shutil.copytree(app_export[0], run_dir, ignore=shutil.ignore_patterns("export"))
    monkeypatch.setattr(mediapipe_check, "availability", lambda: (None, "mediapipe is not installed (pip install 'kerastl[mobile]')"))
    report = export.export_run(run_dir, formats=["tflite"], quantize=["float32"], test_limit=20, latency_repeats=1,
                               log=lambda _: None)
    assert "mediapipe" not in report["rows"][1] and not report["rows"][1]["flagged"]
    table = export.format_table(report)
    assert "not checked" in table.splitlines()[3]
    assert table.splitlines()[-1] == "MediaPipe: not checked: mediapipe is not installed (pip install 'kerastl[mobile]')"
    card = (run_dir / runs.EXPORT_DIR / model_card.MODEL_CARD).read_text()
    assert "| not checked | - |" in card and "MediaPipe: not checked (mediapipe is not installed" in card


def test_a_refused_file_flags_the_table_and_fails_the_command(app_export, capsys):
    run_dir, report = app_export
    refused = json.loads(json.dumps(report))
    refused["rows"][2]["mediapipe"] = {"refused": "The input tensor should have dimensions 1 x height x width x depth"}
    refused["rows"][2]["flags"], refused["rows"][2]["flagged"] = ["refused by MediaPipe"], True
    assert cli.report_outcome("kerastl.export", refused, run_dir, allow_drop=False) == cli.EXIT_ACCURACY_DROP
    out, err = capsys.readouterr()
    assert "refused  DROP" in out and "tflite float16: refused by MediaPipe: The input tensor should" in out
    assert "MediaPipe refused a file: tflite float16 (refused by MediaPipe)" in err
    assert cli.report_outcome("kerastl.export", refused, run_dir, allow_drop=True) == 0
