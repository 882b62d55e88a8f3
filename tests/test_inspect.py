"""kerastl.inspect: copies, near copies, label issues, oddities, findings.csv, report.md, the command's
errors, and that the dataset is never changed. Tiny folders made in the test; no model is built except
in the one end-to-end run (the frozen backbone's features), so nothing here depends on the backend."""

import csv
import json
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kerastl.inspection import copies, labels, pictures
from kerastl.inspection.command import main as inspect_main
from kerastl.inspection.findings import COLUMNS, FINDINGS_CSV
from tests.helpers import make_image_folder, run_in_process


def digit_folder(root: Path, mnist, train: int = 40, test: int = 20) -> Path:
    """train/ and test/ of MNIST digits 0-3 as PNG files, distinct pictures."""
    x, y = mnist["x_train"], mnist["y_train"]
    chosen = {split: [] for split in ("train", "test")}
    start = 0
    for split, per_class in (("train", train // 4), ("test", test // 4)):
        for label in range(4):
            folder = root / split / str(label)
            folder.mkdir(parents=True)
            for index in np.flatnonzero(y == label)[start:start + per_class]:
                Image.fromarray(x[index, :, :, 0]).save(folder / f"{index}.png")
                chosen[split].append(folder / f"{index}.png")
        start += per_class
    return root


def folder_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_exact_copies_across_splits_and_within_a_split(tmp_path, mnist):
    root = digit_folder(tmp_path / "digits", mnist)
    leaked = next((root / "test" / "2").iterdir())
    shutil.copyfile(leaked, root / "train" / "2" / "copy.png")
    # the same pixels as another PNG file, saved again in another mode: a lossless re-save
    twin = next((root / "train" / "1").iterdir())
    Image.open(twin).convert("RGB").save(root / "train" / "1" / "resaved.png")
    found = copies.find_copies(pictures.load_folder(root))
    rows = {(f.file, f.other): f for f in found.findings if f.kind == "duplicate"}
    assert set(rows) == {(str(leaked.relative_to(root)), "train/2/copy.png"),
                         ("train/1/resaved.png", str(twin.relative_to(root)))}
    assert found.leaked == [str(leaked.relative_to(root))]
    assert "within train" in rows[("train/1/resaved.png", str(twin.relative_to(root)))].detail


def test_a_clean_dataset_has_no_copies(tmp_path, mnist):
    found = copies.find_copies(pictures.load_folder(digit_folder(tmp_path / "digits", mnist)))
    assert [f for f in found.findings if f.kind in ("duplicate", "near_duplicate")] == []
    assert found.leak_count == 0


def test_a_reencoded_copy_is_a_near_duplicate(tmp_path, mnist):
    root = digit_folder(tmp_path / "digits", mnist)
    original = sorted((root / "test" / "3").iterdir())[0]
    pixels = np.asarray(Image.open(original), dtype="float32")
    shifted = np.zeros_like(pixels)
    shifted[1:, 1:] = pixels[:-1, :-1]
    brighter = np.clip(shifted * 1.1, 0, 255).astype("uint8")
    Image.fromarray(brighter).resize((36, 36), Image.BILINEAR).convert("RGB").save(root / "train" / "3" / "again.jpg", quality=90)
    found = copies.find_copies(pictures.load_folder(root))
    near = [(f.file, f.other) for f in found.findings if f.kind == "near_duplicate"]
    assert near == [(str(original.relative_to(root)), "train/3/again.jpg")]
    assert found.leaked == [str(original.relative_to(root))]


def test_confident_learning_ranks_a_moved_picture_first():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    labels_given = np.repeat(np.arange(3), 30)
    points = centres[labels_given] + rng.normal(0, 1.0, (90, 2))
    labels_given[5] = 2  # a class-0 point filed under class 2
    probabilities = labels.out_of_fold_probabilities(points, labels_given)
    issues = labels.confident_learning(probabilities, labels_given)
    assert issues[0].index == 5 and issues[0].suggested == 0
    assert len(issues) <= 3
    assert labels.accuracy(probabilities, labels_given) > 0.95


@pytest.mark.slow  # about 15-30 s: the backbone is built and run once
def test_inspect_writes_findings_and_a_report_and_leaves_the_folder_alone(tmp_path):
    import kerastl

    root = tmp_path / "shapes"
    make_image_folder(root / "train", per_class=16, seed=0)
    make_image_folder(root / "test", per_class=6, seed=1)
    (root / "test" / "circle" / "notes.txt").unlink()
    leaked = sorted((root / "test" / "square").glob("*.png"))[0]
    shutil.copyfile(leaked, root / "train" / "square" / "leaked.png")
    moved = sorted((root / "train" / "circle").glob("*.png"))[0]
    shutil.move(moved, root / "train" / "triangle" / "moved.png")
    before = folder_hashes(root)
    lines = []
    result = kerastl.inspect(root, output_dir=tmp_path / "out", log=lines.append)
    assert folder_hashes(root) == before
    with open(tmp_path / "out" / FINDINGS_CSV, newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == COLUMNS == ("kind", "file", "other", "score", "detail")
    assert ("duplicate", str(leaked.relative_to(root)), "train/square/leaked.png") in {(r["kind"], r["file"], r["other"]) for r in rows}
    label_rows = [(r["file"], r["other"]) for r in rows if r["kind"] == "label"]
    assert ("train/triangle/moved.png", "circle") in label_rows[:3]
    assert result.leak_count == 1 and result.floor["features"] > 0.8
    report = (tmp_path / "out" / "report.md").read_text()
    assert "1 validation/test pictures have a copy in train" in report and "![label findings](label.png)" in report
    for name in ("class_balance.png", "duplicate.png", "label.png"):
        assert Image.open(tmp_path / "out" / name).size[0] > 300
    assert any("1 validation/test pictures have a copy in train" in line for line in lines)


@pytest.mark.parametrize("problem", ["missing", "file", "empty class"])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, problem):
    if problem == "missing":
        target = tmp_path / "nowhere"
    elif problem == "file":
        target = tmp_path / "picture.png"
        Image.new("L", (8, 8)).save(target)
    else:
        target = make_image_folder(tmp_path / "shapes", per_class=3)
        for path in (target / "square").iterdir():
            path.unlink()
    code, out, err = run_in_process("kerastl.inspect", inspect_main, [str(target), "--output-dir", str(tmp_path / "out")], capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("kerastl.inspect: error: ")
    assert {"missing": "nowhere: no such folder", "file": "picture.png: not a folder", "empty class": "'square' has no images"}[problem] in err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # 13-26 s on the shared 2-core machine: a tiny fit
def test_fit_counts_test_pictures_with_a_copy_in_train(tmp_path, capsys):
    from tests.helpers import run_fit

    root = tmp_path / "data"
    for split, count in (("train", 8), ("test", 4)):
        make_image_folder(root / split, per_class=count, seed=len(split), classes=("a", "b"))
    leaked = sorted((root / "test" / "b").glob("*.png"))[0]
    shutil.copyfile(leaked, root / "train" / "b" / "copy.png")
    code, out, err = run_fit(["--mode", "mlp", "--dataset", str(root), "--output-dir", str(tmp_path / "runs"), "--run-name", "r",
                              "--stored-size", "16", "--epochs", "1", "--min-steps", "0"], capsys)
    assert code == 0, err
    assert f"data: 1 validation/test pictures have a copy in train; python -m kerastl.inspect {root} lists them" in out
    metrics = json.loads((tmp_path / "runs" / "r" / "metrics.json").read_text())
    assert metrics["copies_in_train"] == 1 and 0 <= metrics["pixel_floor_accuracy"] <= 1
    assert metrics["data_check_seconds"] < metrics["wall_seconds"]
    # the accuracy over the 7 test pictures without a copy, from the run's own predictions
    with np.load(tmp_path / "runs" / "r" / "test_predictions.npz") as saved:
        y_true, y_pred = saved["y_true"], saved["y_pred"]
    paths = [row.split(",")[3] for row in (tmp_path / "runs" / "r" / "dataset_split.csv").read_text().splitlines()[1:]
             if row.startswith("test,")]
    clean = np.array([p != str(leaked.relative_to(root)) for p in paths])
    assert metrics["test_accuracy_without_copies"] == pytest.approx(float((y_true[clean] == y_pred[clean]).mean()))


def test_the_model_card_states_the_copies_and_the_floor_beside_the_test_accuracy():
    from kerastl.export.model_card import ModelFacts, _training

    metrics = {"test_accuracy": 0.97, "copies_in_train": 13, "test_accuracy_without_copies": 0.9679, "pixel_floor_accuracy": 0.94}
    facts = ModelFacts("kerastl cnn, planted", "pictures", "r", "me", ["a", "b"], (64, 64, 3), "theirs", "random", {"mode": "cnn"}, metrics)
    assert ("test accuracy after training 97.00 % (13 validation/test pictures have a copy in train, 96.79 % without them "
            "(`python -m kerastl.inspect` lists them); a linear model on the raw pixels scores 94.00 %)") in _training(facts)


def test_oddities_broken_tiny_strip_colour_among_grey_and_a_small_class(tmp_path, mnist):
    from kerastl.inspection.oddities import oddities

    root = digit_folder(tmp_path / "digits", mnist, train=40, test=20)
    for path in sorted((root / "train" / "0").iterdir())[:7]:
        path.unlink()  # class 0 keeps 3 training pictures against 10
    Image.new("L", (8, 8), 200).save(root / "train" / "1" / "tiny.png")
    Image.new("L", (120, 28), 90).save(root / "train" / "2" / "strip.png")
    Image.new("RGB", (28, 28), (200, 30, 30)).save(root / "train" / "3" / "red.png")
    (root / "train" / "3" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    found = {(f.kind, f.file) for f in oddities(pictures.load_folder(root))}
    assert found == {("small_class", "0"), ("odd_size", "train/1/tiny.png"), ("odd_size", "train/2/strip.png"),
                     ("colour", "train/3/red.png"), ("broken", "train/3/broken.png")}


def test_the_command_line_in_a_real_process_is_light_and_one_line_on_error(tmp_path):
    import subprocess
    import sys

    from tests.helpers import run_module

    code = "import sys, kerastl.inspection.command; print('keras' in sys.modules, 'tensorflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False False"
    assert run_module("kerastl.inspect", "--help").returncode == 0
    bad = run_module("kerastl.inspect", str(tmp_path / "nowhere"), "--output-dir", str(tmp_path / "out"))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "nowhere: no such folder" in bad.stderr, bad.stderr
    assert not (tmp_path / "out").exists()


def test_the_study_report_says_mnist_test_labels_are_not_ground_truth():
    from kerastl.study.report import labels_section

    lines = labels_section("mnist")
    assert lines[0] == "## The test labels are not ground truth" and "162 of the 10,000 test pictures" in lines[2]
    assert labels_section("fashion_mnist") == [] and labels_section("/some/folder") == []
