"""`--lr find` against each mode's configured learning rate: the default CNN (all of MNIST) and
finetune on 5,000 images, one run each, the same seed, scored on the whole test set.

    python benchmarks/lr_find_table.py [--output-dir DIR] [--only cnn|finetune]

Prints a Markdown table: the rates used per stage (configured or suggested), test accuracy, the
sweeps' seconds and the whole run's wall time (timings on a shared machine are noisy: a repeat
can differ by a third).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

JOBS = {
    "cnn": {"mode": "cnn"},
    "finetune": {"mode": "finetune", "limit": 5000},
}


def measure(job: dict, lr, output_dir: str) -> dict:
    import kerastl

    options = {k: v for k, v in job.items() if k != "mode"}
    run = kerastl.run(job["mode"], lr=lr, output_dir=output_dir, log=lambda line: print(f"  {line}", flush=True), **options)
    m, config = run.metrics, run.config
    rates = {"head": config["lr"], "finetune": config["finetune_lr"]} if job["mode"] == "finetune" else {"train": config["lr"]}
    sweeps = m.get("lr_find", {})
    return {"rates": rates, "accuracy": m["test_accuracy"], "test_images": m["test_images"], "wall": m["wall_seconds"],
            "sweep_seconds": sum(s["seconds"] for s in sweeps.values()), "folder": str(run.folder)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--output-dir", help="where the runs go (default: a temporary folder)")
    p.add_argument("--only", choices=tuple(JOBS))
    args = p.parse_args()
    output_dir = args.output_dir or tempfile.mkdtemp(prefix="lr-find-")
    lines = ["| job | learning rate | rates used | test accuracy | sweeps | wall time |", "| --- | --- | --- | --- | --- | --- |"]
    for name, job in JOBS.items():
        if args.only and name != args.only:
            continue
        for lr in (None, "find"):
            print(f"{name}, lr {lr or 'configured'}:", flush=True)
            r = measure(job, lr, output_dir)
            used = ", ".join(f"{stage} {rate:.2g}" for stage, rate in r["rates"].items())
            lines.append(f"| {name}{' --limit 5000' if 'limit' in job else ''} | {'find' if lr else 'configured'} | {used} | "
                         f"{100 * r['accuracy']:.2f} % ({r['test_images']:,}) | {r['sweep_seconds']:.0f} s | {r['wall']:.0f} s |")
            print("\n".join(lines), flush=True)
    print("\n" + "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
