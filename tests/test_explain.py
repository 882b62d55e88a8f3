"""kerastl.explain: the probe's rows (every block, every set of weights), a random control that is not
degenerate, occlusion on a model that only looks at one corner, report sentences read from
probe.csv, an explained fine-tuning run, and bad input as one line, exit 2, nothing written."""

import csv
import os

import keras
import numpy as np
import pytest

import kerastl
from kerastl import runs
from kerastl.backbones import backbone_blocks, backbone_spec, build_backbone
from kerastl.cli import run_cli
from kerastl.explanation import ExplainBudget, command as explain_cli, contenders, figures, job as job_module, occlusion, probe, report
from kerastl.batch_norm import BN_MOMENTUM
from tests.helpers import QUIET, write_run

TINY_BUDGET = ExplainBudget("tiny", train_images=100, test_images=100, img_size=32, embedding_images=100, mistakes=2, correct=2, check_min_steps=0)
EFFICIENTNET_BLOCKS = ["stem", *[f"block{i}" for i in range(16)], "top"]
EFFICIENTNET_WIDTHS = [32, 16, 24, 24, 40, 40, 80, 80, 80, 112, 112, 112, 192, 192, 192, 192, 320, 1280]


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_block_outputs_are_the_blocks_unfreeze_counts(mnist_slice):
    spec = backbone_spec("efficientnet_lite0")
    backbone = build_backbone("efficientnet_lite0", 32, "none", log=QUIET)
    ends = probe.block_outputs(spec, backbone)
    assert [name for name, _ in ends] == [name for name, _ in backbone_blocks(spec, backbone)] == EFFICIENTNET_BLOCKS
    # a residual block ends at its add, the last at its activation; never at the pooling
    assert [layer.name for _, layer in ends][:4] == ["stem_relu6", "block0_bn2", "block1_bn2", "block2_add"]
    assert ends[-1][1].name == "top_relu6"
    sides = [layer.output.shape[1] for _, layer in ends]
    assert sides[0] == 16 and sides[-1] == 1 and sides == sorted(sides, reverse=True)


def test_batch_norm_reestimation_makes_random_features_vary(mnist_slice):
    spec = backbone_spec("efficientnet_lite0")
    adapter = contenders.adapter_model("efficientnet_lite0", 32, (28, 28, 1))
    keras.utils.set_random_seed(0)
    backbone = build_backbone("efficientnet_lite0", 32, "none", log=QUIET)
    images = mnist_slice.x_train[:64]
    before = probe.block_features(spec, backbone, adapter, images)
    inputs = adapter.predict(images, verbose=0)
    assert probe.reestimate_batch_norm(backbone, inputs) == 49
    after = probe.block_features(spec, backbone, adapter, images)
    # initial statistics (mean 0, variance 1): deep features collapse to one constant for every image
    assert before["top"].std(axis=0).mean() < 1e-6
    assert after["top"].std(axis=0).mean() > 0.1 and after["block8"].std(axis=0).mean() > 0.1
    stem_bn = backbone.get_layer("stem_bn")
    expected = keras.ops.convert_to_numpy(backbone.get_layer("stem_conv")(inputs)).mean(axis=(0, 1, 2))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(stem_bn.moving_mean), expected, rtol=1e-3, atol=1e-4)  # float32 sums in another order
    assert stem_bn.momentum == BN_MOMENTUM  # the layer's own momentum is given back


def _corner_model() -> keras.Model:
    """Class 0 is the ink in the top-left 8x8 corner; nothing else is seen."""
    inputs = keras.Input((28, 28, 1))
    corner = keras.layers.Cropping2D(((0, 20), (0, 20)))(inputs)
    ink = keras.layers.GlobalAveragePooling2D()(corner)  # mean pixel of the corner, 0..255
    logits = keras.layers.Dense(2, kernel_initializer=keras.initializers.Constant([[0.1, -0.1]]),
                                bias_initializer=keras.initializers.Constant([-5.0, 5.0]))(ink)
    return keras.Model(inputs, keras.layers.Softmax()(logits))


def test_occlusion_sees_only_the_corner_a_model_looks_at():
    model = _corner_model()
    predict = lambda x: keras.ops.convert_to_numpy(model(x))  # noqa: E731
    image = np.zeros((28, 28, 1), "float32")
    image[2:7, 2:7] = 255.0  # ink in the corner: class 0, confidently
    image[18:26, 18:26] = 255.0  # ink elsewhere, which the model ignores
    assert predict(image[None])[0].argmax() == 0
    heat = occlusion.occlusion_map(predict, image, target=0, patch=6, stride=2)
    assert heat.shape == (28, 28)
    # No patch there touches the corner. Not exactly 0: p(class 0) is 0.99995, where float32's step
    # (6e-8) is a thousandth of 1 - p, so two forward passes can differ by ~0.001 in log-odds (measured
    # up to 0.0012 on an AVX-512 CPU, whose kernels differ by row); the corner's own drops exceed 1.0.
    assert np.abs(heat[14:, :]).max() < 0.01 and np.abs(heat[:, 14:]).max() < 0.01
    assert heat[2:7, 2:7].min() > 1.0  # covering the corner's ink costs more than one unit of log-odds
    assert np.unravel_index(heat.argmax(), heat.shape)[0] < 8


def test_chosen_images_are_confident_mistakes_then_correct_ones():
    y = np.array([0, 1, 2, 3, 0])
    p = np.array([[0.1, 0.9, 0, 0], [0.6, 0.4, 0, 0], [0, 0, 1.0, 0], [0, 0, 0.2, 0.8], [0.99, 0.01, 0, 0]])
    assert occlusion.chosen_images(y, p, mistakes=2, correct=2) == [0, 1, 2, 4]


def _probe_csv(path, top=0.90, best=0.938):
    rows = [probe.ProbeRow("pixels", 0, 784, probe.PIXELS, 1000, 2000, 0.871)]
    accuracy = {probe.IMAGENET: [0.39, 0.5, 0.8, best, 0.93, top], probe.RANDOM: [0.28, 0.61, 0.47, 0.34, 0.2, 0.19]}
    for weights, values in accuracy.items():
        for depth, (block, value) in enumerate(zip(["stem", "block0", "block4", "block8", "block12", "top"], values), start=1):
            rows.append(probe.ProbeRow(block, depth, 16 * depth, weights, 1000, 2000, value))
    probe.write_csv(path, rows)
    return path


def test_the_report_sentences_come_from_probe_csv(tmp_path):
    rows = probe.read_csv(_probe_csv(tmp_path / "probe.csv"))
    said = report.findings(rows, "MNIST")
    assert said[0].startswith("ImageNet features serve MNIST best after block8 (block 4 of 6, stem first)")
    assert "93.8 % on 2,000 test images (1,000 training images)" in said[0] and "90.0 % at the top" in said[0]
    assert "after block0 (61.0 %)" in said[1] and "+11.0 pp after the stem" in said[1]
    assert "+73.0 pp at its widest (after block12)" in said[1] and "+71.0 pp at the top" in said[1]
    assert "`--mode partial --unfreeze 2`" in said[2] and "lose 3.8 pp" in said[2]
    assert said[-1] == "For scale: the same probe on the raw pixels scores 87.1 %."
    # other numbers in the file, other sentences: when the top is best, nothing needs unfreezing
    rows = probe.read_csv(_probe_csv(tmp_path / "other.csv", top=0.95))
    said = report.findings(rows, "MNIST")
    assert "best after top (block 6 of 6" in said[0] and "`--mode feature`" in said[2]
    # a top within the sampling noise of the best (1.6 pp at 2,000 test images) has not lost anything
    rows = probe.read_csv(_probe_csv(tmp_path / "level.csv", top=0.930))
    assert report.advised_unfreeze(rows) == 0 and "level within the 1.6 pp sampling noise" in report.findings(rows, "MNIST")[2]
    assert report.advised_unfreeze(probe.read_csv(_probe_csv(tmp_path / "lost.csv", top=0.915))) == 2
    why = report.why_section(tmp_path / "probe.csv", "why/probe_by_block.png")
    assert why[2] == f"- {report.findings(probe.read_csv(tmp_path / 'probe.csv'), 'MNIST')[0]}"
    assert "![Linear probe after every block](why/probe_by_block.png)" in why


@pytest.fixture(scope="module")
def explained(tmp_path_factory):
    """One tiny explanation of ImageNet EfficientNet-Lite0 on MNIST, shared by the tests that read it."""
    root = tmp_path_factory.mktemp("explained")
    return kerastl.explain(budget=TINY_BUDGET, output_dir=root / "out", check=False, log=QUIET)


def test_explain_probes_every_block_with_every_set_of_weights(explained):
    folder = explained
    assert folder.name == "out" and not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # renamed into place
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["report.md", "probe.csv", figures.PROBE_FIGURE, figures.FILTERS_FIGURE, figures.FEATURE_MAPS_FIGURE,
         figures.EMBEDDING_FIGURE, figures.SALIENCY_FIGURE])
    rows = _rows(folder / "probe.csv")
    assert list(rows[0]) == ["block", "depth", "width", "weights", "train_images", "test_images", "test_accuracy"]
    assert rows[0]["weights"] == "pixels" and rows[0]["width"] == "784"
    for weights in ("imagenet", "random"):
        line = [r for r in rows if r["weights"] == weights]
        assert [r["block"] for r in line] == EFFICIENTNET_BLOCKS
        assert [int(r["depth"]) for r in line] == list(range(1, 19))
        assert [int(r["width"]) for r in line] == EFFICIENTNET_WIDTHS
        assert all(r["train_images"] == "100" and r["test_images"] == "100" for r in line)
    imagenet = max(float(r["test_accuracy"]) for r in rows if r["weights"] == "imagenet")
    random = [float(r["test_accuracy"]) for r in rows if r["weights"] == "random"]
    assert imagenet > 0.5 and max(random) > 0.2  # chance is 0.1: the random control is not degenerate
    text = (folder / "report.md").read_text()
    for sentence in report.findings(probe.read_csv(folder / "probe.csv"), "MNIST"):
        assert sentence in text


@pytest.fixture(scope="module")
def finetune_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return kerastl.run("finetune", img_size=32, limit=200, test_limit=100, min_steps=0, head_epochs=1, epochs=1, batch_size=32,
                       output_dir=str(root), run_name="ft", log=QUIET)


def test_explain_a_finetune_run_adds_its_weights_and_checks_the_advice(finetune_run, tmp_path):
    checked = ExplainBudget("tiny-check", 100, 100, 64, 100, 2, 2, check_min_steps=20)  # img_size: the run decides (32)
    folder = kerastl.explain(finetune_run, budget=checked, output_dir=tmp_path / "out", log=QUIET)
    rows = _rows(folder / "probe.csv")
    tuned = [r for r in rows if r["weights"] == "fine-tuned"]
    assert [r["block"] for r in tuned] == EFFICIENTNET_BLOCKS
    imagenet = {r["block"]: r["test_accuracy"] for r in rows if r["weights"] == "imagenet"}
    assert any(r["test_accuracy"] != imagenet[r["block"]] for r in tuned)  # the run's weights differ from ImageNet's
    unfreeze = max(1, report.advised_unfreeze(probe.read_csv(folder / "probe.csv")))
    check = folder / "check" / f"partial-unfreeze-{unfreeze}"
    metrics = runs.read_metrics(check)
    config = runs.read_config(check)
    assert config["mode"] == "partial" and config["unfreeze"] == unfreeze and config["img_size"] == 32
    text = (folder / "report.md").read_text()
    assert f"--unfreeze {unfreeze}" in text and f"reached {100 * metrics['test_accuracy']:.1f} %" in text
    assert f"Explains the run `{finetune_run.folder}`" in text


def _explain(argv, capsys):
    try:
        code = run_cli("kerastl.explain", lambda: explain_cli.main(argv))
    except SystemExit as exc:  # argparse's errors exit from inside main
        code = exc.code
    return code, capsys.readouterr().err


def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, mnist_slice):
    cnn_run = write_run(tmp_path / "cnn-run", keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)]))
    finetune_run = write_run(tmp_path / "ft-run", keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten()]))
    runs.write_config(finetune_run, {"mode": "finetune", "dataset": "mnist", "backbone": "efficientnet_lite0", "img_size": 32})
    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("mine\n")
    out = str(tmp_path / "out")
    cases = [
        (["--backbone", "vgg99", "--output-dir", out], "unknown backbone 'vgg99'"),
        ([str(cnn_run), "--output-dir", out], "is a mlp run, not a transfer run"),
        ([str(tmp_path / "nowhere"), "--output-dir", out], "no run folder"),
        (["--train-images", "100000", "--output-dir", out], "the quick budget probes 100,000 training images"),
        (["--test-images", "20000", "--output-dir", out], "the quick budget scores 20,000 test images; mnist has 10,000"),
        (["--train-images", "0", "--output-dir", out], "--train-images 0: must be at least 1"),
        (["--dataset", str(tmp_path / "no-folder"), "--output-dir", out], "no such folder"),
        (["--output-dir", str(full)], "already exists and is not an empty folder"),
        (["--budget", "huge"], "argument --budget: invalid choice: 'huge'"),
        ([str(finetune_run), "--backbone", "resnet18", "--output-dir", out], "--backbone resnet18: the run"),
    ]
    for argv, message in cases:
        code, err = _explain(argv, capsys)
        assert code == 2 and message in err and err.count("\n") == 1, (argv, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cnn-run", "ft-run", "full"]  # nothing written, no work folder left
    assert [p.name for p in full.iterdir()] == ["notes.txt"]


def test_a_failure_midway_leaves_nothing_half_written(tmp_path, monkeypatch):
    written = []

    def features(spec, backbone, adapter, images):  # stand-ins for the backbone's features: the test is about files
        return {"stem": np.random.default_rng(len(images)).normal(size=(len(images), 4)).astype("float32")}

    def broken(rows, path, title):
        written.extend(p.name for p in path.parent.iterdir())
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(probe, "block_features", features)
    monkeypatch.setattr(figures, "probe_by_block", broken)
    with pytest.raises(RuntimeError, match="disk is full"):
        kerastl.explain(budget=TINY_BUDGET, output_dir=tmp_path / "out", check=False, log=QUIET)
    assert written == ["probe.csv"]  # something was half-written when it failed...
    assert os.listdir(tmp_path) == []  # ...and none of it is left


def test_the_comparison_has_a_why_section_drawn_from_probe_csv(tmp_path, capsys, monkeypatch):
    from kerastl.study import command as compare_cli
    from kerastl.study import report as study_report
    from kerastl.study import why

    folder = tmp_path / "study"
    argv = ["--contenders", "mlp", "--per-class", "5", "--seeds", "1", "--test-limit", "100", "--max-epochs", "1", "--output-dir", str(folder)]
    assert run_cli("kerastl.compare", lambda: compare_cli.main(argv)) == 0
    assert not (folder / why.WHY_DIR).exists()  # no ImageNet contender in the study: nothing to explain
    assert "## Why" not in (folder / "report.md").read_text()
    # a study with a transfer contender explains the backbone into why/ (here: a probe.csv of known numbers)
    monkeypatch.setattr(kerastl, "explain", lambda **kwargs: _probe_csv(_mkdir(kwargs["output_dir"]) / "probe.csv").parent)
    study = {"contenders": ["finetune"], "test_limit": 100, "imagenet_backbone": {"backbone": "efficientnet_lite0", "label": "EfficientNet-Lite0"}}
    assert why.explain_backbone(folder, study, QUIET) == folder / why.WHY_DIR
    text = study_report.build(folder, "python -m kerastl.compare ...").read_text()
    said = report.findings(probe.read_csv(folder / why.WHY_DIR / "probe.csv"), "MNIST")
    section = text[text.index("## Why"):]
    assert f"- {said[0]}\n- {said[1]}\n" in section and "best after block8" in section
    assert "![Linear probe after every block](why/probe_by_block.png)" in section


def _mkdir(path):
    path.mkdir(parents=True)
    return path


def test_the_command_line_in_a_real_process_is_light_and_one_line_on_error(tmp_path):
    from tests.helpers import run_module
    import subprocess
    import sys

    code = "import sys, kerastl.explanation.command; print('keras' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
    assert run_module("kerastl.explain", "--help").returncode == 0
    bad = run_module("kerastl.explain", "--backbone", "vgg99", "--output-dir", str(tmp_path / "out"))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "unknown backbone 'vgg99'" in bad.stderr, bad.stderr
    assert not (tmp_path / "out").exists()


def test_a_named_budget_shrinks_to_a_small_folder(tmp_path):
    """The quick budget asks for 1,000 / 2,000 images; a folder of 6 a class gets what it has, and says so."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in ("dark", "light"):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(6):
            level = 40 if name == "dark" else 210
            pixels = np.clip(level + rng.normal(0, 20, (32, 32, 3)), 0, 255).astype("uint8")
            Image.fromarray(pixels).save(tmp_path / "data" / name / f"{i}.png")
    said = []
    job = job_module.resolve(None, dataset=str(tmp_path / "data"), budget="quick", output_dir=tmp_path / "out")
    data = job_module.load_data(job, said.append)
    assert (job.budget.train_images, job.budget.test_images) == (len(data.y_train), len(data.y_test))
    assert 0 < len(data.y_test) < len(data.y_train) < 12
    assert any("smaller than the quick budget" in line for line in said)
    given = job_module.resolve(None, dataset=str(tmp_path / "data"), budget="quick", output_dir=tmp_path / "out", train_images=500)
    with pytest.raises(kerastl.UserError, match="use --train-images"):
        job_module.load_data(given, said.append)
