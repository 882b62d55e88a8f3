"""kerastl.export: SavedModel and LiteRT files of a run, their parity report, atomic writes.

A small MLP is trained for one epoch under the backend the tests run on (KERAS_BACKEND) and
saved as a run folder; exporting it runs in a TensorFlow-backend subprocess when that backend is
JAX or PyTorch, in this process on TensorFlow.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest

from kerastl import export
from kerastl.data.idx import IDX_FILES
from kerastl.errors import ExportFailed, UserError
from kerastl.export import convert
from kerastl.litert import LiteRTModel
from kerastl.models import build_cnn, build_mlp
from tests.helpers import ROOT, backend, run_export, run_fit, run_module, train_small, write_run

BACKEND = backend()
TEST_LIMIT = 500


def train_mlp(mnist, images: int = 2000) -> keras.Model:
    return train_small(mnist, build_mlp, images, hidden=(64,), dropout=0.0)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, mnist):
    """A trained run, exported in every format and variant, checked on the first 500 test images."""
    run_dir = write_run(tmp_path_factory.mktemp("runs") / "mlp", train_mlp(mnist))
    report = export.export_run(run_dir, test_limit=TEST_LIMIT, latency_repeats=5, calibration_images=200, log=lambda _: None)
    return run_dir, report


def leftovers(run_dir: Path) -> list[str]:
    return sorted(p.name for p in run_dir.iterdir() if p.name.startswith("."))


# What the export writes


@pytest.mark.every_backend
def test_export_writes_every_file_and_a_report(exported):
    run_dir, report = exported
    folder = run_dir / "export"
    assert sorted(p.name for p in folder.iterdir()) == [
        "MODEL_CARD.md", "export_report.json", "labels.txt", "model_dynamic.tflite", "model_float16.tflite",
        "model_float32.tflite", "model_int8.tflite", "saved_model",
    ]
    assert (folder / "labels.txt").read_text().split() == [str(d) for d in range(10)]
    assert leftovers(run_dir) == []
    assert json.loads((folder / "export_report.json").read_text()) == report
    assert report["test_images"] == TEST_LIMIT
    assert report["export_backend"] == "tensorflow" and report["trained_backend"] == BACKEND
    names = [row["artifact"] for row in report["rows"]]
    assert names == ["keras", "saved_model (uint8)", "tflite float32", "tflite float16", "tflite dynamic", "tflite int8 (uint8)"]
    sizes = {row["file"]: row["size_bytes"] for row in report["rows"]}
    assert sizes["model_float32.tflite"] == (folder / "model_float32.tflite").stat().st_size
    # 784*64 + 64*10 weights: float16 halves the file, int8 quarters it
    assert 0.4 < sizes["model_float16.tflite"] / sizes["model_float32.tflite"] < 0.6
    assert sizes["model_int8.tflite"] / sizes["model_float32.tflite"] < 0.35
    assert sizes["model_dynamic.tflite"] / sizes["model_float32.tflite"] < 0.35
    for row in report["rows"]:
        assert row["latency_ms"] > 0 and 0.8 < row["accuracy"] <= 1.0


def test_float_files_agree_with_keras(exported):
    _, report = exported
    rows = {row["artifact"]: row for row in report["rows"]}
    for name in ("saved_model (uint8)", "tflite float32"):
        assert rows[name]["agreement"] == 1.0 and rows[name]["delta_pp"] == 0.0
        assert rows[name]["max_abs_prob_diff"] < 1e-4
    assert rows["tflite float16"]["agreement"] >= 0.99


@pytest.mark.every_backend
def test_tflite_float32_probabilities_match_keras(exported, mnist):
    run_dir, _ = exported
    x = mnist["x_test"][:64]
    model = keras.saving.load_model(run_dir / "model.keras", compile=False)  # under this test's backend
    expected = keras.ops.convert_to_numpy(model.predict(x.astype("float32"), verbose=0))
    lite = LiteRTModel(run_dir / "export" / "model_float32.tflite")
    got = lite.predict(x, batch_size=25)  # uneven batches: the interpreter is resized between calls
    assert got.shape == (64, 10) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=2e-5)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)


def test_int8_is_full_integer_with_uint8_pixels_and_within_the_accuracy_bound(exported, mnist):
    run_dir, report = exported
    lite = LiteRTModel(run_dir / "export" / "model_int8.tflite")
    assert lite.input_dtype == np.uint8 and lite.output_dtype == np.uint8  # the default: what MediaPipe takes
    assert list(lite.input["shape"]) == [1, 28, 28, 3]  # RGB, as apps deliver pictures
    scale, zero_point = lite.input["quantization"]
    assert scale == pytest.approx(1.0, rel=0.01) and zero_point == 0  # uint8 pixels go in unchanged
    assert report["int8_io"] == "uint8"
    row = next(r for r in report["rows"] if r["artifact"] == "tflite int8 (uint8)")
    assert not row["flagged"] and row["delta_pp"] >= -export_max_drop(report)
    assert row["agreement"] >= 0.98
    x, y = mnist["x_test"][:TEST_LIMIT], mnist["y_test"][:TEST_LIMIT]
    assert np.mean(lite.predict(x).argmax(axis=1) == y) == pytest.approx(row["accuracy"])


def export_max_drop(report) -> float:
    assert report["max_drop_pp"] == 0.5
    return report["max_drop_pp"]


def test_saved_model_signatures(exported, mnist):
    import tensorflow as tf

    run_dir, _ = exported
    loaded = tf.saved_model.load(str(run_dir / "export" / "saved_model"))
    assert {"serving_default", "serve_uint8"} <= set(loaded.signatures)
    for name, dtype in (("serving_default", tf.float32), ("serve_uint8", tf.uint8)):
        signature = loaded.signatures[name]
        (spec,) = signature.structured_input_signature[1].values()
        assert spec.name == "pixels" and spec.dtype == dtype and spec.shape.as_list() == [None, 28, 28, 1]
        assert list(signature.structured_outputs) == ["probabilities"]
        output = signature.structured_outputs["probabilities"]
        assert output.dtype == tf.float32 and output.shape.as_list() == [None, 10]
    x = mnist["x_test"][:8]
    from_uint8 = loaded.signatures["serve_uint8"](pixels=tf.constant(x))["probabilities"].numpy()
    from_float = loaded.signatures["serving_default"](pixels=tf.constant(x, tf.float32))["probabilities"].numpy()
    assert from_uint8.shape == (8, 10)
    np.testing.assert_allclose(from_uint8, from_float, atol=1e-6)
    np.testing.assert_allclose(from_uint8.sum(axis=1), 1.0, atol=1e-5)


def test_int8_io_option_gives_int8_pixels(tmp_path, exported):
    run_dir = tmp_path / "run"
    shutil.copytree(exported[0], run_dir, ignore=shutil.ignore_patterns("export"))
    report = export.export_run(run_dir, formats=["tflite"], quantize=["int8"], int8_io="int8", test_limit=100,
                               latency_repeats=2, calibration_images=100, log=lambda _: None)
    lite = LiteRTModel(run_dir / "export" / "model_int8.tflite")
    assert lite.input_dtype == np.int8 and lite.output_dtype == np.int8
    scale, zero_point = lite.input["quantization"]
    assert scale == pytest.approx(1.0, rel=0.01) and zero_point == -128  # calibrated on pixels 0..255
    assert [r["artifact"] for r in report["rows"]] == ["keras", "tflite int8 (int8)"]
    row = report["rows"][1]
    if report["mediapipe"]["version"]:  # MediaPipe takes uint8 or float32 pixels only: refused, and flagged
        assert "got INT8" in row["mediapipe"]["refused"] and row["flags"][-1] == "refused by MediaPipe"
        assert row["flagged"] and "refused by MediaPipe: Type mismatch" in export.format_table(report)


# Writes are atomic; an export is replaced only with --force


def test_existing_export_is_kept_without_force(exported, capsys, monkeypatch):
    run_dir, _ = exported
    before = (run_dir / "export" / "model_float32.tflite").stat().st_mtime_ns
    with pytest.raises(UserError, match="pass --force"):
        export.export_run(run_dir, test_limit=10)
    code, out, err = run_export([str(run_dir), "--test-limit", "10"], capsys, monkeypatch)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("kerastl.export: error:") and "already exists; pass --force" in err
    assert (run_dir / "export" / "model_float32.tflite").stat().st_mtime_ns == before


def test_force_replaces_the_export(tmp_path, exported, capsys, monkeypatch):
    run_dir = tmp_path / "run"
    shutil.copytree(exported[0], run_dir)
    code, out, err = run_export([str(run_dir), "--formats", "tflite", "--quantize", "float32", "--force",
                                 "--test-limit", "50", "--latency-repeats", "2"], capsys, monkeypatch)
    assert code == 0, err
    assert sorted(p.name for p in (run_dir / "export").iterdir()) == [
        "MODEL_CARD.md", "export_report.json", "labels.txt", "model_float32.tflite"]
    assert "tflite float32" in out and "50 test images" in out
    assert leftovers(run_dir) == []


@pytest.mark.skipif(BACKEND != "tensorflow", reason="patches the converter, so the export must run in this process (TensorFlow backend)")
def test_failed_conversion_leaves_nothing_behind(tmp_path, exported, monkeypatch):
    run_dir = tmp_path / "run"
    shutil.copytree(exported[0], run_dir)
    original = convert.export_tflite

    def fail_on_int8(model, path, variant, *args):
        if variant == "int8":
            raise RuntimeError("converter exploded")
        return original(model, path, variant, *args)

    monkeypatch.setattr(convert, "export_tflite", fail_on_int8)
    before = sorted(p.name for p in (run_dir / "export").iterdir())
    with pytest.raises(ExportFailed, match="LiteRT int8 conversion failed .*converter exploded"):
        export.export_run(run_dir, force=True, test_limit=10, latency_repeats=1, log=lambda _: None)
    assert sorted(p.name for p in (run_dir / "export").iterdir()) == before  # the old export is untouched
    shutil.rmtree(run_dir / "export")
    with pytest.raises(ExportFailed):
        export.export_run(run_dir, test_limit=10, latency_repeats=1, log=lambda _: None)
    assert not (run_dir / "export").exists() and leftovers(run_dir) == []


def test_unloadable_model_is_one_line_and_leaves_nothing(tmp_path, exported, capsys, monkeypatch):
    run_dir = tmp_path / "run"
    shutil.copytree(exported[0], run_dir, ignore=shutil.ignore_patterns("export"))
    (run_dir / "model.keras").write_bytes(b"not a zip file")
    code, out, err = run_export([str(run_dir)], capsys, monkeypatch)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith(f"kerastl.export: error: cannot load {run_dir / 'model.keras'}")
    assert not (run_dir / "export").exists() and leftovers(run_dir) == []


def test_damaged_or_live_run_folder_is_one_line(tmp_path, exported, capsys, monkeypatch):
    from kerastl import runs

    run_dir = tmp_path / "run"
    shutil.copytree(exported[0], run_dir, ignore=shutil.ignore_patterns("export"))
    with runs.lock(run_dir):  # a fit process still writing it
        code, out, err = run_export([str(run_dir)], capsys, monkeypatch)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"{run_dir} is in use by another kerastl process" in err
    (run_dir / "config.yaml").write_text("dataset: [mnist\n")
    code, out, err = run_export([str(run_dir)], capsys, monkeypatch)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"config {run_dir / 'config.yaml'} is not valid YAML" in err
    assert not (run_dir / "export").exists() and leftovers(run_dir) == []


def test_bad_flags_and_missing_run_exit_2(tmp_path, capsys, monkeypatch):
    for args, message in (
        ([str(tmp_path), "--quantize", "int4"], "--quantize: unknown"),
        ([str(tmp_path / "nope")], "no run folder"),
        ([str(tmp_path), "--test-limit", "0"], "--test-limit must be at least 1"),
    ):
        code, out, err = run_export(args, capsys, monkeypatch)
        assert code == 2, args
        assert len(err.strip().splitlines()) == 1 and message in err and err.startswith("kerastl.export: error: ")


def test_the_command_in_a_real_process(tmp_path):
    """The one real `python -m kerastl.export` (the other checks call its main in this process)."""
    result = run_module("kerastl.export", str(tmp_path / "nope"), env={"TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"kerastl.export: error: no run folder {tmp_path / 'nope'}; pass a folder written by `python -m kerastl.fit`"], result.stderr
    assert 'kerastl-export = "kerastl.export.cli:cli"' in (ROOT / "pyproject.toml").read_text()


# Accuracy drops are flagged; labels follow the dataset


def write_idx_folder(folder: Path, arrays: dict, count: int) -> Path:
    """The first `count` images of each split as the four standard IDX files."""
    folder.mkdir()
    for role, stem in IDX_FILES.items():
        data = arrays[role][:count]
        data = data[..., 0] if data.ndim == 4 else data
        header = bytes([0, 0, 8, data.ndim]) + b"".join(n.to_bytes(4, "big") for n in data.shape)
        (folder / stem).write_bytes(header + data.astype(np.uint8).tobytes())
    return folder


def test_accuracy_drop_is_flagged_and_fails_the_command(tmp_path, mnist, capsys, monkeypatch):
    """A negative --max-drop flags even an exact copy: the float32 file (change 0.00 pp) counts as a drop.
    The run says it is Fashion-MNIST (served from IDX files in its data_dir), so labels.txt has its class names."""
    keras.utils.set_random_seed(1)
    data_dir = write_idx_folder(tmp_path / "idx", mnist, 300)
    run_dir = write_run(tmp_path / "cnn", build_cnn(filters=(8, 16), dense=32), "fashion_mnist", data_dir)
    args = [str(run_dir), "--formats", "tflite", "--quantize", "float32", "--test-limit", "100",
            "--latency-repeats", "2", "--max-drop", "-0.01"]
    code, out, err = run_export(args, capsys, monkeypatch)
    assert code == 1, err
    assert "DROP" in out and "pass --allow-drop" in err
    report = json.loads((run_dir / "export" / "export_report.json").read_text())
    assert [r["flagged"] for r in report["rows"]] == [False, True]
    assert (run_dir / "export" / "labels.txt").read_text().splitlines()[9] == "Ankle boot"
    code, out, err = run_export([*args, "--force", "--allow-drop"], capsys, monkeypatch)
    assert code == 0, err


def test_fit_chains_the_export(tmp_path, capsys):
    """`kerastl.fit --export` trains under this backend, then exports (in a TensorFlow process unless
    this backend is TensorFlow) and exits like `kerastl.export`. An MLP of 2,000 images checked on
    1,000 test images loses nothing in any file (changes of 0.0 to +0.4 pp, measured on TensorFlow,
    JAX and PyTorch; a file is flagged below -0.5 pp, 6 images), so the run must exit 0. (On 100
    images a 1-epoch MLP of 300 was flagged on PyTorch only: there one image is 1 pp.)"""
    code, out, err = run_fit(["--mode", "mlp", "--epochs", "2", "--limit", "2000", "--test-limit", "1000", "--seed", "0",
                              "--output-dir", str(tmp_path), "--run-name", "chained", "--export"], capsys)
    report = json.loads((tmp_path / "chained" / "export" / "export_report.json").read_text())
    assert code == 0 and [row for row in report["rows"] if row["flagged"]] == [], err[-2000:]
    assert "pass --allow-drop" not in err and f"exported to {tmp_path / 'chained' / 'export'}" in out
    assert report["trained_backend"] == BACKEND and report["test_images"] == 1000  # fit forwards --test-limit
    assert [row["artifact"] for row in report["rows"]][1:] == [
        "saved_model (uint8)", "tflite float32", "tflite float16", "tflite dynamic", "tflite int8 (uint8)"]
    assert "tflite int8 (uint8)" in out  # the parity table
    assert sorted(p.name for p in (tmp_path / "chained").iterdir() if p.suffix != ".png") == [
        "config.yaml", "export", "history.csv", "labels.txt", "metrics.json", "model.keras", "test_predictions.npz"]


def test_fit_exits_1_when_its_export_flags_a_file(exported, capsys, monkeypatch):
    """The other outcome of `fit --export`: a flagged file makes fit exit 1, as kerastl.export does."""
    from types import SimpleNamespace

    from kerastl import api

    run_dir, report = exported
    flagged = json.loads(json.dumps(report))
    flagged["rows"][-1].update(flags=["-1.00 pp"], flagged=True)
    monkeypatch.setattr(api, "run_with_options", lambda *args, **kwargs: SimpleNamespace(export_report=flagged, folder=run_dir))
    code, out, err = run_fit(["--mode", "mlp", "--export"], capsys)
    assert code == 1 and "DROP" in out
    assert err.strip().splitlines() == [
        f"kerastl.fit: accuracy dropped more than {report['max_drop_pp']} pp, or MediaPipe refused a file: "
        f"{flagged['rows'][-1]['artifact']} (-1.00 pp). The export is in {run_dir / 'export'} for inspection; "
        "pass --allow-drop to accept it."]
