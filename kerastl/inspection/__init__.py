"""`kerastl.inspect(DATASET)`: the health of a dataset before anyone trains on it.

    import kerastl
    found = kerastl.inspect("photos/")            # or "mnist", "fashion_mnist"
    found.findings, found.leak_count, found.floor, found.folder

Reads every picture once (it never changes the dataset) and writes one folder (default
`saved_models/inspect-<dataset>-<time>/`):

- findings.csv: one row a finding (kind, file, other, score, detail), kerastl.inspection.findings;
- report.md: the counts per split and class, the floor, and each kind of finding with its worst
  cases as a contact sheet, what it means and what to do;
- class_balance.png and one contact sheet PNG per kind of finding.

The steps, in the order data flows: pictures (decode once), features (the frozen EfficientNet-Lite0),
copies (exact and near), labels and the floor (out-of-fold linear heads, confident learning), oddities,
report. `python -m kerastl.inspect` is the command line.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kerastl import runs
from kerastl.data.datasets import DATASETS
from kerastl.errors import UserError
from kerastl.inspection.findings import FINDINGS_CSV, Finding, sorted_findings
from kerastl.log import Log

REPORT = "report.md"


@dataclass
class Inspection:
    dataset: str
    folder: Path  # where findings.csv and report.md were written
    class_names: list[str]
    counts: dict[str, list[int]]  # split -> pictures per class
    findings: list[Finding]
    leaked: list[str]  # validation/test pictures with a copy in train
    floor: dict[str, float | None]  # "pixels", "features" -> out-of-fold accuracy of a linear head
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def leak_count(self) -> int:
        return len(self.leaked)

    def of_kind(self, kind: str) -> list[Finding]:
        return [f for f in self.findings if f.kind == kind]


def inspect(dataset: str | os.PathLike, output_dir: str | os.PathLike | None = None, log: Log = print) -> Inspection:
    """Check `dataset` (mnist, fashion_mnist or a folder of images, one subfolder per class, either
    layout `fit` takes) and write findings.csv and report.md into `output_dir` (new or empty; default
    saved_models/inspect-<dataset>-<time>). Raises kerastl.UserError for a missing folder, a file,
    a folder without two classes of images, or an output folder that is in use."""
    start = time.perf_counter()
    dataset = os.fspath(dataset)
    if dataset not in DATASETS and not Path(dataset).expanduser().is_dir():
        raise UserError(f"{dataset}: {'not a folder' if Path(dataset).expanduser().exists() else 'no such folder'}; give "
                        f"{', '.join(DATASETS)} or a folder with one subfolder of images per class")
    folder = runs.report_folder(output_dir, "inspect", dataset)
    # these import TensorFlow (kerastl.data): deferred so that `python -m kerastl.inspect --help` and its errors are instant
    from kerastl.inspection import copies, features, labels, oddities, pictures, report
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        timings[name] = round(time.perf_counter() - clock, 1)
        clock = time.perf_counter()

    found = pictures.load(dataset, log)
    if len(np.unique(found.labels)) < 2:
        raise UserError(f"{dataset}: fewer than 2 classes have usable pictures; nothing to inspect")
    log(f"inspect: {len(found):,} pictures, {len(found.class_names)} classes ({', '.join(found.split_names)})"
        + (f"; {len(found.broken)} cannot be decoded" if found.broken else ""))
    lap("decode")
    embedded = features.backbone_features(found.thumbs, log)
    lap("features")
    copied = copies.find_copies(found, embedded)
    lap("copies")
    pixel_probabilities = labels.out_of_fold_probabilities(pictures.pixel_inputs(found.thumbs), found.labels)
    feature_probabilities = labels.out_of_fold_probabilities(embedded, found.labels)
    lap("heads")
    label_rows = labels.label_findings(found, feature_probabilities)
    if feature_probabilities is None:
        log("inspect: a class has fewer than 2 pictures, so no out-of-fold head and no label check")
    all_findings = sorted_findings([*copied.findings, *label_rows, *oddities.oddities(found)])
    counts = {split: np.bincount(found.labels[found.splits == split], minlength=len(found.class_names)).tolist()
              for split in found.split_names}
    floor = {"pixels": labels.accuracy(pixel_probabilities, found.labels),
             "features": labels.accuracy(feature_probabilities, found.labels)}
    result = Inspection(dataset, folder, found.class_names, counts, all_findings, copied.leaked, floor, 0.0, timings)
    report.write_folder(folder, result, found, start)
    lap("report")
    result.seconds = time.perf_counter() - start
    kinds = {kind: len(result.of_kind(kind)) for kind in dict.fromkeys(f.kind for f in all_findings)}
    log(f"inspect: {', '.join(f'{n} {kind}' for kind, n in kinds.items()) or 'no findings'}; "
        f"{result.leak_count} validation/test pictures have a copy in train; {result.seconds:.0f} s; "
        f"report: {folder / REPORT}")
    return result


__all__ = ["FINDINGS_CSV", "REPORT", "Inspection", "inspect"]
