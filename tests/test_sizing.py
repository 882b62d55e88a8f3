"""The run sized to its training set and devices (kerastl.sizing): its arithmetic, the steps a small
run really takes and records, flags that win over it, and a study that asks fit for no recipe of its own."""

import math

import pytest

import yaml

import kerastl
from kerastl import config as config_module
from kerastl import distribute, runs, sizing
from kerastl.modes import MODES
from kerastl.sizing import Schedule
from kerastl.study import plan
from tests.helpers import QUIET


def _sized(mode: str, train_images: int, accelerator: bool = False, **flags):
    """(the sized config, its Schedule) on one device."""
    config = config_module.resolve_run_config(mode, None, flags, accelerator)
    sized = sizing.size_to_data(config, train_images, accelerator)
    return sized, Schedule.of(sized, train_images)


# (training images) -> batch, passes, steps an epoch, epochs per stage, patience, img_size (None: not a transfer mode)
CNN = {
    40: (16, 12, 30, {"train": 12}, 4, None),
    400: (32, 3, 38, {"train": 12}, 4, None),
    4000: (128, 1, 32, {"train": 12}, 4, None),  # 384 steps as configured: enough
    54000: (128, 1, 422, {"train": 12}, 4, None),
}
FINETUNE_CPU = {
    40: (16, 12, 30, {"head": 3, "finetune": 10}, 3, 96),
    400: (32, 3, 38, {"head": 2, "finetune": 8}, 2, 96),
    4000: (128, 1, 32, {"head": 3, "finetune": 10}, 3, 40),  # a 32-step head stage is short of its 75
    54000: (128, 1, 422, {"head": 1, "finetune": 5}, 2, 40),
}


@pytest.mark.parametrize("mode, table", [("cnn", CNN), ("finetune", FINETUNE_CPU)])
@pytest.mark.parametrize("images", [40, 400, 4000, 54000])
def test_schedule_arithmetic(mode, table, images):
    config, sized = _sized(mode, images)
    batch, passes, per_epoch, epochs, patience, img_size = table[images]
    assert (sized.batch_size, sized.epoch_passes, sized.steps_per_epoch, sized.stage_epochs) == (batch, passes, per_epoch, epochs)
    assert per_epoch >= sizing.STEPS_PER_EPOCH
    assert (config["batch_size"], config["epoch_passes"], config["patience"]) == (batch, passes, patience)
    assert per_epoch == math.ceil(images * passes / batch)
    assert config.get("img_size") == img_size
    for stage in MODES[mode].stages:  # every stage reaches its target steps, or its cap
        n = epochs[stage.name]
        assert n * per_epoch >= sizing.target_steps(config, stage) or n == 10 or n == config["max_epochs"]


@pytest.mark.parametrize("mode", ["mlp", "cnn", "feature", "finetune", "partial", "pretrain"])
@pytest.mark.parametrize("accelerator", [False, True])
def test_the_full_training_split_keeps_its_recipe(mode, accelerator):
    config = config_module.resolve_run_config(mode, None, {}, accelerator)
    sized = sizing.size_to_data(config, 54000, accelerator)  # MNIST's or Fashion-MNIST's 60,000 less validation
    assert sized == config and sized["sized"] == []


def test_given_flags_win_over_the_sizing():
    config, sized = _sized("finetune", 40, batch_size=32, epochs=5, img_size=48)
    assert config["given"] == ["batch_size", "epochs", "img_size"]
    assert (config["batch_size"], config["epochs"], config["img_size"]) == (32, 5, 48)
    # what was not given is still sized around them: 24 passes of 40 images make 30 batches of 32; a 75-step head stage
    assert (config["epoch_passes"], sized.steps_per_epoch, config["head_epochs"]) == (24, 30, 3)
    assert set(sized.sized) == {"epoch_passes", "head_epochs"}  # patience 2 already covers 8 // 3
    assert "kept as you set them: batch_size, epochs, img_size" in sizing.describe(sized, config, False)


def test_a_batch_larger_than_the_training_set_shrinks_to_it_set_or_not():
    """No batch holds an image twice: 6 images train in batches of 6, given 16 or sized to 16, and
    the passes and steps are counted for that batch (30 steps of 6 images, not 30 of 16)."""
    for flags in ({}, {"batch_size": 16}):
        config, sized = _sized("cnn", 6, **flags)
        assert (config["batch_size"], config["epoch_passes"], sized.steps_per_epoch) == (6, 30, 30)
        line = sizing.describe(sized, config, False)
        assert "batch_size" in config["sized"] and "batch 6, 30 steps an epoch (30 passes)" in line and "kept as" not in line


def test_min_steps_zero_turns_the_sizing_off_and_max_epochs_caps():
    config, sized = _sized("finetune", 200, min_steps=0)
    assert sized.sized == () and (config["batch_size"], config["img_size"], config["epochs"]) == (128, 40, 5)
    config, sized = _sized("finetune", 40, min_steps=0)  # but no batch is larger than the training set
    assert sized.sized == ("batch_size",) and (config["batch_size"], config["img_size"], config["epochs"]) == (40, 40, 5)
    config, sized = _sized("cnn", 40, max_epochs=3)
    assert config["epochs"] == 3 and config["batch_size"] == 16


def test_an_own_config_file_is_taken_as_written(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("epochs: 3\nbatch_size: 64\ncpu:\n  img_size: 48\n")
    config = config_module.resolve_run_config("finetune", path, {}, accelerator=False)
    assert config["given"] == ["batch_size", "epochs", "img_size"]
    sized = sizing.size_to_data(config, 400, False)
    assert (sized["epochs"], sized["batch_size"], sized["img_size"]) == (3, 64, 48)


def test_a_40_image_run_takes_at_least_min_steps(tmp_path):
    import keras

    class Steps(keras.callbacks.Callback):
        count = 0

        def on_train_batch_end(self, batch, logs=None):
            Steps.count += 1

    lines = []
    run = kerastl.run("mlp", limit=40, test_limit=50, seed=0, output_dir=str(tmp_path), run_name="r",
                      callbacks=[Steps()], log=lines.append)
    chosen = run.metrics["schedule"]
    assert chosen["train_images"] == 40 and chosen["batch_size"] == 16 and chosen["epoch_passes"] == 12
    assert chosen["steps_per_epoch"] == 30  # 480 images an epoch: full batches on every backend
    assert Steps.count == run.metrics["epochs_run"]["train"] * 30 >= 300  # early stopping waits for the 300 steps
    assert any(line.startswith("kerastl: schedule for 40 training images: batch 16, 30 steps an epoch (12 passes)") for line in lines)
    assert run.config["batch_size"] == 16 and run.config["given"] == ["limit", "output_dir", "run_name", "seed", "test_limit"]


def test_the_study_asks_fit_for_no_recipe_of_its_own(tmp_path):
    data_budget = {"seed", "per_class", "test_limit", "max_epochs"}
    contender = {"backbone", "img_size", "dataset", "weights"}  # which network and starting weights
    pretraining = {"limit", "epochs"}  # the Fashion-MNIST pretraining's own budget
    for name, budget in plan.STUDY_BUDGETS.items():
        for accelerator in (False, True):
            specs = plan.plan(tuple(plan.CONTENDERS), budget.sizes, budget.seeds, budget, tmp_path, accelerator, max_epochs=7)
            for spec in specs:
                allowed = data_budget | contender | (pretraining if spec.contender == plan.FASHION_PRETRAIN else set())
                assert set(spec.options) <= allowed, (spec.name, set(spec.options) - allowed)
                # what it trains with is what fit makes of those options, sized by fit's own rules
                config = config_module.resolve_run_config(spec.config["mode"], None, spec.options, accelerator)
                placement = distribute.place(config, accelerator, QUIET)
                assert spec.config == sizing.size_to_data(config, plan.train_images(config), accelerator, placement)
    n10 = next(s for s in plan.plan(("finetune",), (10,), 1, plan.STUDY_BUDGETS["quick"], tmp_path, False))
    assert n10.options == {"seed": 0, "per_class": 10, "test_limit": 2000}
    epochs = 10 if distribute.place(n10.config, False, QUIET).full_batches else 9  # 33 steps an epoch, not 34: see below
    assert (n10.config["batch_size"], n10.config["epoch_passes"], n10.config["img_size"], n10.config["epochs"]) == (16, 6, 96, epochs)


def test_augmentation_follows_the_data():
    """On for small MNIST sets, off for other data (it was tuned on digits), on again when asked."""
    assert _sized("mlp", 90)[0]["augment"] is True and _sized("mlp", 54000)[0]["augment"] is False
    assert _sized("cnn", 54000)[0]["augment"] is True  # the cnn config's own choice, on digits
    for mode in ("cnn", "finetune"):
        assert _sized(mode, 144, dataset="fashion_mnist")[0]["augment"] is False
        assert _sized(mode, 54000, dataset="fashion_mnist")[0]["augment"] is False
        assert _sized(mode, 144, dataset="fashion_mnist", augment=True)[0]["augment"] is True


@pytest.mark.every_backend
def test_the_run_records_the_batch_and_steps_that_ran(tmp_path):
    """config.yaml and metrics.json give what trained, counted by a callback: for a training set
    smaller than the batch (6 images: batch 6, not 16), and where every batch must be full (JAX:
    90 images x 6 passes in batches of 16 make 33 steps, the last 12 images dropped; 34 elsewhere)."""
    import keras

    class Steps(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.counts = []

        def on_epoch_begin(self, epoch, logs=None):
            self.counts.append(0)

        def on_train_batch_end(self, batch, logs=None):
            self.counts[-1] += 1

    full_batches = distribute.place({"mode": "mlp", "batch_size": 16}, False, QUIET).full_batches
    for name, options, batch, steps in (
        ("six", dict(limit=6, min_steps=60), 6, 30),  # 30 passes of 6 images, one batch each
        ("ninety", dict(limit=90, batch_size=16, min_steps=100), 16, 33 if full_batches else 34),
    ):
        counter = Steps()
        run = kerastl.run("mlp", epochs=1, test_limit=20, seed=0, output_dir=str(tmp_path), run_name=name,
                          callbacks=[counter], log=QUIET, **options)
        recorded = yaml.safe_load((run.folder / runs.CONFIG).read_text())
        schedule = run.metrics["schedule"]
        assert (recorded["batch_size"], schedule["batch_size"], run.config["batch_size"]) == (batch, batch, batch), name
        assert counter.counts == [steps] and schedule["steps_per_epoch"] == steps, name
        assert schedule["epoch_passes"] == recorded["epoch_passes"] and "batch_size" in recorded["sized"] + recorded["given"]
