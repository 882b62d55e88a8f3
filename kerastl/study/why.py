"""The study's "Why" section: where in the ImageNet backbone digits are best read, from a probe of
every block (`kerastl.explain`, written into the study's `why/` folder once and reused on a rerun).
Its sentences come from `why/probe.csv` (kerastl.explanation.report), never from text written here."""

from __future__ import annotations

from pathlib import Path

import kerastl
from kerastl.errors import first_line
from kerastl.log import Log

WHY_DIR = "why"
TRANSFER_CONTENDERS = ("feature", "finetune")  # a study with one of them gets the section


def explain_backbone(study_dir: Path, study: dict, log: Log) -> Path | None:
    """Explain the study's ImageNet backbone on MNIST (quick budget, no check run) unless done;
    returns the folder, or None when the study has no ImageNet contender or the probe failed."""
    from kerastl.explanation.probe import PROBE_CSV  # imports Keras: a study's report is written without it

    folder = Path(study_dir) / WHY_DIR
    if not any(c in study["contenders"] for c in TRANSFER_CONTENDERS):
        return None
    if (folder / PROBE_CSV).is_file():
        return folder
    limit = study.get("test_limit")
    log(f"why: probing every block of {study['imagenet_backbone']['label']} on MNIST (kerastl.explain, quick budget)")
    try:
        return kerastl.explain(backbone=study["imagenet_backbone"]["backbone"], dataset="mnist", output_dir=folder, check=False,
                               test_images=limit, train_images=limit, log=lambda line: None)
    except Exception as exc:  # the study's own results must not be lost to the explanation
        log(f"why: not measured ({first_line(exc)})")
        return None


def section(study_dir: Path) -> list[str]:
    """The report's lines: the probe figure and two sentences from why/probe.csv ([] without it)."""
    # imports Keras (the probe's module): a study's report is written without it
    from kerastl.explanation.figures import PROBE_FIGURE
    from kerastl.explanation.probe import PROBE_CSV
    from kerastl.explanation.report import why_section

    probe_csv = Path(study_dir) / WHY_DIR / PROBE_CSV
    if not probe_csv.is_file():
        return []
    lines = why_section(probe_csv, f"{WHY_DIR}/{PROBE_FIGURE}")
    return lines + [f"The whole explanation (filters, feature maps, embeddings, saliency): [{WHY_DIR}/report.md]({WHY_DIR}/report.md).", ""]
