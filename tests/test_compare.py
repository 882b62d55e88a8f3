"""kerastl.compare on a tiny slice: outputs, numbers traced back to the run folders, resume, failures, bad input."""

import csv
import json
import shutil

import pytest

from kerastl.study import command as compare
from kerastl.cli import run_cli
from kerastl.study import report, runner
from tests.helpers import ROOT, backend, run_in_process, run_module

STUDY_FLAGS = ["--contenders", "mlp", "cnn", "--per-class", "5", "20", "--seeds", "1", "--test-limit", "200", "--max-epochs", "1"]
FIGURES = ["val_accuracy_by_epoch.png", "val_accuracy_by_seconds.png", "data_efficiency.png", "confusion_best.png", "misclassified_best.png"]


def _compare(argv, capsys):
    return run_in_process("kerastl.compare", compare.main, argv, capsys)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("study") / "tiny"
    code = run_cli("kerastl.compare", lambda: compare.main([*STUDY_FLAGS, "--output-dir", str(folder)]))
    assert code == 0
    return folder


def test_tiny_study_writes_report_results_and_figures(study):
    names = {p.name for p in study.iterdir()}
    assert {"report.md", "results.json", "results.csv", "study.json", *FIGURES} <= names
    runs = ["mlp-n5-s0", "mlp-n20-s0", "cnn-n5-s0", "cnn-n20-s0"]
    for run in runs:
        assert {"metrics.json", "history.csv", "curves.png", "confusion.png", "model.keras"} <= {p.name for p in (study / run).iterdir()}
    data = json.loads((study / "results.json").read_text())
    assert [r["run"] for r in data["runs"]] == runs
    assert data["study"]["machine"]["backend"] == backend()
    assert all(r["status"] == "ok" and r["test_images"] == 200 and r["epochs"] == 1 for r in data["runs"])
    assert [(r["contender"], r["per_class"], r["train_images"], r["validation_images"]) for r in data["runs"]] == [
        ("mlp", 5, 40, 10), ("mlp", 20, 180, 20), ("cnn", 5, 40, 10), ("cnn", 20, 180, 20)]
    with open(study / "results.csv") as f:
        assert [r["run"] for r in csv.DictReader(f)] == runs


def test_results_come_from_the_run_folders(study):
    from kerastl.history import read_history

    for r in json.loads((study / "results.json").read_text())["runs"]:
        metrics = json.loads((study / r["run"] / "metrics.json").read_text())
        rows = read_history(study / r["run"] / "history.csv")
        for key in ("test_accuracy", "wall_seconds", "images_per_second", "trainable_parameters", "epochs_to_95", "seconds_to_95"):
            assert r[key] == metrics[key], key
        assert r["val_accuracy"] == [x["val_accuracy"] for x in rows]
        assert r["val_seconds"] == [x["seconds"] for x in rows]
        assert r["epochs"] == len(rows) == sum(metrics["epochs_run"].values())


def test_the_report_is_built_from_results_json(study, tmp_path):
    text = (study / "report.md").read_text()
    data = json.loads((study / "results.json").read_text())
    by_run = {r["run"]: r for r in data["runs"]}
    # the data-efficiency table: one seed, so each cell is the accuracy itself
    assert f"| MLP from scratch | {100 * by_run['mlp-n5-s0']['test_accuracy']:.1f} | {100 * by_run['mlp-n20-s0']['test_accuracy']:.1f} |" in text
    assert f"| CNN from scratch | {100 * by_run['cnn-n5-s0']['test_accuracy']:.1f} | {100 * by_run['cnn-n20-s0']['test_accuracy']:.1f} |" in text
    for fig in FIGURES:
        assert f"]({fig})" in text
    # change results.json only: the rebuilt report follows it
    copy = tmp_path / "copy"
    shutil.copytree(study, copy)
    data["runs"][0]["test_accuracy"] = 0.4321
    (copy / "results.json").write_text(json.dumps(data))
    report.build(copy, "python -m kerastl.compare", log=lambda _: None)
    rebuilt = (copy / "report.md").read_text()
    assert f"| MLP from scratch | 43.2 | {100 * by_run['mlp-n20-s0']['test_accuracy']:.1f} |" in rebuilt


def test_an_interrupted_study_continues_and_reuses_finished_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default study folder: saved_models/compare-<time>/
    argv = ["--contenders", "mlp", "--per-class", "5", "20", "--seeds", "1", "--test-limit", "100", "--max-epochs", "1"]
    original = runner.train_one
    calls = []

    def interrupt_the_second(spec, study_dir, log_path):
        calls.append(spec.name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(spec, study_dir, log_path)

    monkeypatch.setattr(runner, "train_one", interrupt_the_second)
    code, out, err = _compare(argv, capsys)
    [folder] = (tmp_path / "saved_models").glob("compare-*")
    assert code == 130 and "interrupted during run mlp-n20-s0" in err and f"Continue with: python -m kerastl.compare" in err
    assert calls == ["mlp-n5-s0", "mlp-n20-s0"] and not (folder / "report.md").exists()
    finished = folder / "mlp-n5-s0" / "metrics.json"
    stamp = finished.stat().st_mtime_ns, (folder / "mlp-n5-s0" / "model.keras").stat().st_mtime_ns

    calls.clear()
    code, out, err = _compare(argv, capsys)  # the same command continues the unfinished study
    assert code == 0, err
    assert list((tmp_path / "saved_models").glob("compare-*")) == [folder]
    assert f"continuing study saved_models/{folder.name}" in out
    assert calls == ["mlp-n20-s0"]  # the finished run was not trained again
    assert "[1/2] mlp, 5 per class, seed 0: finished before, reused" in out
    assert (finished.stat().st_mtime_ns, (folder / "mlp-n5-s0" / "model.keras").stat().st_mtime_ns) == stamp
    assert (folder / "report.md").is_file()

    # other settings for a finished run in that folder: refused before anything trains or is written
    other = [*argv, "--output-dir", str(folder)]
    other[other.index("--max-epochs") + 1] = "2"
    study_json = (folder / "study.json").read_text()
    code, out, err = _compare(other, capsys)
    assert (folder / "study.json").read_text() == study_json and calls == ["mlp-n20-s0"]
    assert code == 2 and "was trained with other settings (epochs" in err and "--fresh" in err


def test_a_failing_run_is_reported_and_the_study_goes_on(study, tmp_path, capsys, monkeypatch):
    """The tiny study again, with its second run unfinished: that run fails, the two after it are
    still taken (reused from the shared study, so nothing trains here)."""
    folder = tmp_path / "s"
    shutil.copytree(study, folder)
    shutil.rmtree(folder / "mlp-n20-s0")

    def fail_one(spec, study_dir, log_path):
        assert spec.name == "mlp-n20-s0", spec.name  # the finished runs are reused, not trained
        raise RuntimeError("out of memory\nsecond line")

    monkeypatch.setattr(runner, "train_one", fail_one)
    code, out, err = _compare([*STUDY_FLAGS, "--output-dir", str(folder)], capsys)
    assert code == 1
    assert "[2/4] mlp, 20 per class, seed 0: FAILED: RuntimeError: out of memory (" in out
    assert "[4/4] cnn, 20 per class, seed 0: finished before, reused" in out
    rows = {r["run"]: r for r in json.loads((folder / "results.json").read_text())["runs"]}
    assert rows["mlp-n20-s0"]["status"] == "failed" and rows["mlp-n20-s0"]["reason"] == "RuntimeError: out of memory"
    assert [rows[run]["status"] for run in ("mlp-n5-s0", "cnn-n5-s0", "cnn-n20-s0")] == ["ok"] * 3
    assert "- `mlp-n20-s0`: RuntimeError: out of memory" in (folder / "report.md").read_text()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--contenders", "mlp", "svm"], "unknown contender 'svm'; choose from mlp, cnn, feature, finetune, scratch, fashion"),
        (["--per-class", "6000"], "--per-class 6000 is more than MNIST has: class 5 has 5421 training images"),
        (["--per-class", "ten"], "--per-class: 'ten' is not a number of images per class or 'all'"),
        (["--seeds", "0"], "--seeds 0: need at least one seed"),
        (["--budget", "huge"], "argument --budget: invalid choice: 'huge'"),
        (["--contenders", "scratch", "--per-class", "all", "--budget", "quick"], "nothing to train: in the quick budget scratch"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, argv, message):
    code, out, err = _compare([*argv, "--output-dir", str(tmp_path / "study")], capsys)
    assert code == 2 and message in err and err.strip().count("\n") == 0, err
    assert list(tmp_path.iterdir()) == []


def test_unwritable_or_foreign_output_folders(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, out, err = _compare(["--contenders", "mlp", "--per-class", "5", "--output-dir", str(blocker / "study")], capsys)
    assert code == 2 and f"cannot write the study folder {blocker / 'study'}: Not a directory" in err and err.count("\n") == 1
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "cat.jpg").write_text("")
    code, out, err = _compare(["--contenders", "mlp", "--per-class", "5", "--output-dir", str(foreign)], capsys)
    assert code == 2 and "is not empty and holds no study.json" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "photos"] and [p.name for p in foreign.iterdir()] == ["cat.jpg"]


def test_command_line_in_a_real_process():
    help_ = run_module("kerastl.compare", "--help")
    assert help_.returncode == 0 and "--per-class" in help_.stdout and "--budget" in help_.stdout
    bad = run_module("kerastl.compare", "--contenders", "svm")
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("kerastl.compare: error: unknown contender 'svm'")
    assert 'kerastl-compare = "kerastl.study.command:cli"' in (ROOT / "pyproject.toml").read_text()


def test_the_quick_plan_trains_small_data_sensibly(tmp_path):
    import math

    from kerastl import config, sizing
    from kerastl.study import plan

    quick = plan.STUDY_BUDGETS["quick"]
    specs = plan.plan(tuple(plan.CONTENDERS), quick.sizes, quick.seeds, quick, tmp_path, has_accelerator=False)
    names = [s.name for s in specs]
    assert names[0] == "fashion-pretrain" and len(names) == len(set(names))
    assert {s.contender for s in specs if s.size == "all"} == {"mlp", "cnn", "feature", "finetune", "fashion-pretrain"}
    assert sorted(s.seed for s in specs if s.contender == "cnn" and s.size == 10) == [0, 1]
    assert [s.seed for s in specs if s.contender == "cnn" and s.size == 100] == [0]
    by_name = {s.name: s.config for s in specs}
    assert by_name["fashion-n10-s0"]["weights"] == str(tmp_path / "fashion-pretrain" / "backbone.weights.h5")
    assert by_name["fashion-n10-s0"]["backbone"] == by_name["scratch-n10-s0"]["backbone"] == by_name["fashion-pretrain"]["backbone"]
    assert by_name["scratch-n10-s0"]["weights"] == "none" and by_name["scratch-n10-s0"]["dataset"] == "mnist"
    assert by_name["fashion-pretrain"]["dataset"] == "fashion_mnist"
    for spec in specs:
        c = spec.config
        assert config.check(dict(c), "plan")  # every planned value passes the schema
        if spec.size != "all" and spec.contender != "fashion-pretrain":
            train_images = 10 * (spec.size - max(1, round(spec.size * c["validation_fraction"])))
            steps_per_epoch = math.ceil(train_images * c["epoch_passes"] / c["batch_size"])
            assert c["per_class"] == spec.size and c["test_limit"] == quick.test_limit and c["seed"] == spec.seed
            assert 16 <= c["batch_size"] <= train_images and steps_per_epoch >= sizing.STEPS_PER_EPOCH
            assert c["epochs"] * steps_per_epoch >= c["min_steps"] or c["epochs"] == c["max_epochs"]
            assert c["augment"] or c["mode"] == "feature"  # small data trains augmented
    # all images: the contenders' own recipes, untouched
    recipe = config.resolve_run_config("finetune", None, {}, False)
    assert {**by_name["finetune-all-s0"], "given": []} == recipe and by_name["finetune-all-s0"]["given"] == ["seed"]


def test_fresh_starts_the_study_over(study, tmp_path, capsys):
    """A finished study (a copy of the shared one) with --fresh: emptied and trained again, even
    with other settings (which would be refused without --fresh)."""
    folder = tmp_path / "s"
    shutil.copytree(study, folder)
    (folder / "marker").write_text("")
    stamp = (folder / "mlp-n5-s0" / "metrics.json").stat().st_mtime_ns
    argv = ["--contenders", "mlp", "--per-class", "5", "--seeds", "1", "--test-limit", "100", "--max-epochs", "1", "--output-dir", str(folder)]
    code, out, err = _compare([*argv, "--fresh"], capsys)
    assert code == 0 and "starting study" in out and "finished before, reused" not in out and "(0 reused, 0 failed)" in out
    assert not (folder / "marker").exists() and (folder / "mlp-n5-s0" / "metrics.json").stat().st_mtime_ns != stamp
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["logs", "mlp-n5-s0"]  # the other runs went with the old study


def test_the_full_plan_on_a_gpu(tmp_path):
    from kerastl.study import plan

    full = plan.STUDY_BUDGETS["full"]
    specs = plan.plan(tuple(plan.CONTENDERS), full.sizes, full.seeds, full, tmp_path, has_accelerator=True)
    sizes = {(s.contender, s.size): sorted(x.seed for x in specs if (x.contender, x.size) == (s.contender, s.size)) for s in specs}
    assert sizes[("finetune", 300)] == [0, 1, 2] and sizes[("finetune", 1000)] == [0] and sizes[("scratch", "all")] == [0]
    assert {s.config["test_limit"] for s in specs} == {None}  # the whole test set
    finetune = next(s.config for s in specs if s.name == "finetune-n10-s0")
    assert finetune["img_size"] == 224 and finetune["precision"] == "auto"  # native size, mixed precision on the GPU
    assert plan.reductions(full, tuple(plan.CONTENDERS), full.sizes, full.seeds, None, None, *plan.backbones(True)) == [
        "backbones at small inputs (native: 224 px): resnet18 at 32 px (configs/finetune.yaml, configs/pretrain.yaml)"]


def test_findings_on_a_study_with_every_contender():
    """The committed quick study (docs/compare-quick): the transfer and pretraining sentences are
    the numbers of its rows, and the verdicts follow the noise rule."""
    import statistics

    from kerastl.study import results

    rows = results.read(ROOT / "docs" / "compare-quick")["runs"]
    acc = lambda c, s: statistics.mean(r["test_accuracy"] for r in rows if r["contender"] == c and r["per_class"] == s)  # noqa: E731
    comparisons = {c["size"]: c for c in report.compare_on_small_data(rows)}
    assert sorted(comparisons) == [10, 100]
    for size, c in comparisons.items():
        assert c["diff_pp"] == pytest.approx(100 * (acc("finetune", size) - acc("cnn", size)))
        assert c["verdict"] == ("level" if abs(c["diff_pp"]) <= c["noise_pp"] else "ahead" if c["diff_pp"] > 0 else "behind")
    lines = report.findings(rows)
    ft_all, cnn_all = acc("finetune", "all"), acc("cnn", "all")
    verb = "beat" if ft_all > cnn_all else "did not beat"
    assert any(line.startswith(f"Fine-tuned ImageNet transfer {verb} the CNN from scratch on all images: "
                               f"{100 * ft_all:.2f} % against {100 * cnn_all:.2f} %") for line in lines)
    gain = 100 * (acc("fashion", 10) - acc("scratch", 10))
    assert any(line.startswith("Same architecture, 10 per class") and f"({gain:+.1f} pp)" in line for line in lines)
    verdicts = {c["verdict"] for c in comparisons.values()}
    summary = next(line for line in lines if line.startswith("Against the CNN from scratch on small data"))
    assert all(v in summary for v in verdicts)
