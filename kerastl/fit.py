"""`python -m kerastl.fit --mode MODE`: train a model and write its run folder.

Flags override the mode's YAML config in configs/; the resolved config is saved with the run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from kerastl.cli import EXIT_INTERRUPTED, OneLineParser, run_cli
from kerastl.config import MODES, TRANSFER_MODES, resolve
from kerastl.errors import UserError

PROG = "kerastl.fit"


def parse_args(argv=None):
    p = OneLineParser(prog=PROG, description="Train an MLP, a CNN or a pretrained backbone on MNIST.")
    p.add_argument("--mode", default="finetune", help=f"one of {', '.join(MODES)} (default: finetune)")
    p.add_argument("--config", help="YAML config (default: configs/<mode>.yaml)")
    p.add_argument("--dataset", help="mnist or fashion_mnist")
    p.add_argument("--data-dir", help="folder with the four IDX files, used instead of the download sources")
    p.add_argument("--epochs", type=int, help="epochs (finetune/partial: of the fine-tuning stage)")
    p.add_argument("--head-epochs", type=int, help="finetune/partial: epochs of the head-only stage")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float, help="learning rate (finetune/partial: of the head stage)")
    p.add_argument("--finetune-lr", type=float, help="learning rate of the fine-tuning stage (default lr/10)")
    p.add_argument("--lr-schedule", help="constant, or cosine decay after a 10 %% warm-up")
    p.add_argument("--limit", type=int, help="train on a seeded subset of N training images")
    p.add_argument("--test-limit", type=int, help="score only the first N test images (smoke tests)")
    p.add_argument("--seed", type=int)
    p.add_argument("--backbone", help="efficientnet_lite0, resnet18, resnet50 or mobilenet_v2")
    p.add_argument("--weights", help="imagenet, none, or a .weights.h5 / .pth file")
    p.add_argument("--img-size", type=int, help="backbone input size (default: native on a GPU, smaller on a CPU)")
    p.add_argument("--unfreeze", type=int, help="partial: blocks to train, counted from the top")
    p.add_argument("--precision", help="auto, float32, mixed_bfloat16 or mixed_float16")
    p.add_argument("--distribute", help="auto (every local accelerator when there are several) or off")
    p.add_argument("--devices", type=int, help="data-parallel over N devices per process (also CPU devices)")
    p.add_argument("--output-dir", help="where run folders go (default: saved_models)")
    p.add_argument("--run-name", help="run folder name (default: <mode>-<dataset>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue the newest unfinished run of this mode")
    p.add_argument("--export", action="store_true", default=None, help="export SavedModel and TFLite afterwards")
    return p.parse_args(argv)


OVERRIDES = (
    "dataset", "data_dir", "epochs", "head_epochs", "batch_size", "lr", "finetune_lr", "lr_schedule", "limit", "test_limit",
    "seed", "backbone", "weights", "img_size", "unfreeze", "precision", "output_dir", "run_name", "export",
    "distribute", "devices",
)


def _resolve_config(args, has_accelerator: bool) -> dict:
    from kerastl.backbones import BACKBONES

    config = resolve(args.mode, args.config, {k: getattr(args, k) for k in OVERRIDES}, has_accelerator)
    if config["mode"] in TRANSFER_MODES:
        if config["backbone"] not in BACKBONES:
            raise UserError(f"unknown backbone {config['backbone']!r}; choose one of {', '.join(BACKBONES)}")
        native = BACKBONES[config["backbone"]].input_size
        config["img_size"] = config["img_size"] or native
    return config


def main(argv=None) -> int:
    args = parse_args(argv)
    from kerastl import distribute, runs, runtime  # imports Keras: after parsing, so --help is instant

    distribute.connect_processes()  # several hosts (JAX): before anything starts the devices
    has_accelerator = runtime.accelerator() is not None
    if args.resume:
        run_dir = runs.find_resumable(args.output_dir or "saved_models", args.run_name, args.mode)
        config = runs.read_config(run_dir)
        print(f"{PROG}: resuming {run_dir} with its recorded config")
        created = False
    else:
        config = _resolve_config(args, has_accelerator)
        run_dir = runs.new_run_dir(config["output_dir"], config["run_name"], config["mode"], config["dataset"])
        created = True
    if not has_accelerator and config["mode"] in TRANSFER_MODES:
        print(
            f"{PROG}: no accelerator found ({runtime.backend()} backend): using CPU settings "
            f"img_size {config['img_size']}, head_epochs {config['head_epochs']}, epochs {config['epochs']} "
            "(the [cpu] section of the config; flags override it)"
        )

    from kerastl.train import train

    run_dir.mkdir(parents=True, exist_ok=True)
    runs.write_config(run_dir, config)
    try:
        with distribute.distributed(config, has_accelerator) as placement:
            metrics = train(config, run_dir, has_accelerator)
        metrics["distribution"] = placement.summary()
    except UserError:
        if created:
            runs.remove_run(run_dir)
        raise
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted; finished epochs are kept in {run_dir}. Continue with: "
              f"python -m kerastl.fit --mode {config['mode']} --resume --run-name {run_dir.name}"
              + (f" --output-dir {config['output_dir']}" if config["output_dir"] != "saved_models" else ""),
              file=sys.stderr)
        return EXIT_INTERRUPTED
    runs.write_metrics(run_dir, metrics)
    shutil.rmtree(run_dir / runs.BACKUP, ignore_errors=True)
    print(
        f"{PROG}: {config['mode']} test accuracy {100 * metrics['test_accuracy']:.2f} % "
        f"({metrics['test_images']} images), {metrics['wall_seconds']:.0f} s; run saved to {run_dir}"
    )
    if config["export"]:
        return _export(run_dir, config["test_limit"])
    return 0


def _export(run_dir: Path, test_limit: int | None) -> int:
    """Export in a fresh TensorFlow-backend process: Keras weights are backend-neutral."""
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    limit = ["--test-limit", str(test_limit)] if test_limit else []
    return subprocess.call([sys.executable, "-m", "kerastl.export", str(run_dir), *limit], env=env)


def cli() -> int:
    return run_cli(PROG, main)


if __name__ == "__main__":
    sys.exit(cli())
