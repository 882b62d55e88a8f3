"""One finding a row: what kind, which picture, its match, how sure, and what it means.
findings.csv holds them, sorted by kind (KINDS' order) and then by score, worst first."""

from __future__ import annotations

import csv
import io
from dataclasses import astuple, dataclass, fields
from pathlib import Path

from kerastl.files import atomic_write_text

FINDINGS_CSV = "findings.csv"

# kind -> (what it means, what to do), for report.md; in the order the report shows them
KINDS = {
    "duplicate": ("the same pixels in two files (after decoding, so a PNG and its lossless re-save match)",
                  "a copy across train and validation/test inflates the score: delete the copy from one side; "
                  "a copy within a split counts one picture twice"),
    "near_duplicate": ("a resized, recompressed, brightened or slightly shifted copy of another picture",
                       "across splits it leaks like a copy: keep both pictures in the same split"),
    "label": ("a picture whose folder is probably wrong: a model that never saw it puts it in another class",
              "look at it; move it to the suggested class, or delete it if it belongs to none"),
    "broken": ("a file that cannot be decoded or used", "re-save or delete it; fit skips it"),
    "odd_size": ("a picture much smaller or larger than the others, or a long strip",
                 "check it is what you meant; crop or drop it"),
    "grey": ("a grey picture among colour ones", "check it belongs; colour carries information grey ones lack"),
    "colour": ("a colour picture among grey ones", "check it belongs; one colour picture makes fit train in colour"),
    "small_class": ("a class with far fewer training pictures than the others", "add pictures of it"),
}


@dataclass(frozen=True)
class Finding:
    kind: str  # a key of KINDS
    file: str  # relative to the folder, or SPLIT/INDEX for MNIST and Fashion-MNIST; a class name for small_class
    other: str  # the match, or the suggested class for a label
    score: float  # higher is worse within a kind
    detail: str


COLUMNS = tuple(f.name for f in fields(Finding))


def sorted_findings(findings: list[Finding]) -> list[Finding]:
    order = list(KINDS)
    return sorted(findings, key=lambda f: (order.index(f.kind), -f.score, f.file))


def write_csv(path: Path, findings: list[Finding]) -> None:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(astuple(f) for f in sorted_findings(findings))
    atomic_write_text(path, out.getvalue())


def read_csv(path: Path) -> list[Finding]:
    with open(path, newline="") as f:
        return [Finding(r["kind"], r["file"], r["other"], float(r["score"]), r["detail"]) for r in csv.DictReader(f)]
