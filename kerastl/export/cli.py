"""The command line of `python -m kerastl.export RUN_DIR` (and `kerastl-export`).

Exit status: 0 ok, 1 a file lost more accuracy than allowed or MediaPipe refused it, 2 bad flag or
run (no class names, labels that do not match the model, metadata that cannot be written), 3
conversion failed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from kerastl import runs
from kerastl.cli import EXIT_ACCURACY_DROP, EXIT_EXPORT_FAILED, OneLineParser, run_cli
from kerastl.errors import ExportFailed
from kerastl.export.convert import DEFAULT_INT8_IO, FORMATS, INT8_IO, QUANTIZATIONS
from kerastl.export.job import CALIBRATION_IMAGES, export_run
from kerastl.export import abstain, parity
from kerastl.export.parity import MAX_DROP_PP
from kerastl.litert import LATENCY_REPEATS

PROG = "kerastl.export"


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_args(argv=None):
    p = OneLineParser(prog=PROG, description="Export a run as SavedModel and LiteRT files and check them on the test set.")
    p.add_argument("run_dir", help="a run folder written by `python -m kerastl.fit`")
    p.add_argument("--formats", type=_csv, default=list(FORMATS), help="comma-separated: saved_model,tflite (default: both)")
    p.add_argument("--quantize", type=_csv, default=list(QUANTIZATIONS),
                   help="LiteRT variants, comma-separated: float32,float16,dynamic,int8 (default: all)")
    p.add_argument("--int8-io", default=DEFAULT_INT8_IO, choices=INT8_IO,
                   help="input/output type of the int8 model: uint8 (default; what MediaPipe and app runtimes take) "
                        "or int8 (MediaPipe refuses it, so the table flags it)")
    p.add_argument("--force", action="store_true", help="replace an existing RUN_DIR/export")
    p.add_argument("--test-limit", type=int, help="check on the first N test images only (quick checks)")
    p.add_argument("--allow-drop", action="store_true", help="exit 0 even if a file loses accuracy")
    p.add_argument("--max-drop", type=float, default=None, help=f"accuracy drop in pp that is flagged (default: {MAX_DROP_PP:g})")
    p.add_argument("--calibration-images", type=int, default=CALIBRATION_IMAGES,
                   help=f"train images that calibrate the int8 model (default: {CALIBRATION_IMAGES})")
    p.add_argument("--latency-repeats", type=int, default=LATENCY_REPEATS,
                   help=f"single-image calls timed per file (default: {LATENCY_REPEATS})")
    p.add_argument("--threads", type=int, default=1, help="LiteRT interpreter threads (default: 1)")
    args = p.parse_args(argv)
    for name in ("test_limit", "calibration_images", "latency_repeats", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def report_outcome(prog: str, report: dict, run_dir: Path, allow_drop: bool) -> int:
    """Print the parity table, and a line on stderr if a file lost accuracy or MediaPipe refused it;
    the exit status."""
    print(parity.format_table(report))
    if report.get("abstain"):
        print(abstain.format_table(report["abstain"]))
    target = Path(run_dir) / runs.EXPORT_DIR
    drops = parity.flagged(report)
    if drops and not allow_drop:
        names = ", ".join(f"{r['artifact']} ({'; '.join(r['flags'])})" for r in drops)
        print(f"{prog}: accuracy dropped more than {report['max_drop_pp']} pp, or MediaPipe refused a file: {names}. "
              f"The export is in {target} for inspection; pass --allow-drop to accept it.", file=sys.stderr)
        return EXIT_ACCURACY_DROP
    print(f"{prog}: exported to {target}")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ["KERAS_BACKEND"] = "tensorflow"  # before Keras is imported: only TensorFlow exports both formats
    try:
        report = export_run(
            args.run_dir, args.formats, args.quantize, args.force, args.int8_io, args.test_limit,
            args.calibration_images, args.latency_repeats, args.max_drop, args.threads,
        )
    except ExportFailed as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_EXPORT_FAILED
    return report_outcome(PROG, report, args.run_dir, args.allow_drop)


def cli() -> int:
    return run_cli(PROG, main)
