"""The study folder: which one a study writes to, whether it continues an earlier study, and its
`study.json`, which marks it and records its settings."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from kerastl.config import DEFAULTS
from kerastl.errors import UserError
from kerastl.study.report import REPORT

STUDY = "study.json"  # marks a study folder; its settings decide whether a rerun continues it
SETTINGS = ("budget", "contenders", "sizes", "seeds", "test_limit", "max_epochs", "backend")


def is_study(folder: Path) -> bool:
    return (folder / STUDY).is_file()


def same_settings(folder: Path, settings: dict) -> bool:
    try:
        recorded = json.loads((folder / STUDY).read_text())
    except (OSError, ValueError):
        return False
    return all(recorded.get(k) == settings[k] for k in SETTINGS)


def choose(output_dir: str | Path | None, fresh: bool, settings: dict) -> tuple[Path, bool]:
    """(study folder, continuing?) without creating anything yet: `output_dir`, else the newest
    unfinished `saved_models/compare-*` study with the same settings, else a new one."""
    if output_dir is None:
        root = Path(DEFAULTS["output_dir"])
        unfinished = sorted(
            (d for d in root.glob("compare-*") if is_study(d) and not (d / REPORT).exists() and same_settings(d, settings)),
            key=lambda d: d.name,
        ) if root.is_dir() and not fresh else []
        if unfinished:
            return unfinished[-1], True
        return root / f"compare-{time.strftime('%Y%m%d-%H%M%S')}", False
    folder = Path(output_dir).expanduser()
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--output-dir {folder} is a file, not a folder")
    if folder.is_dir() and any(folder.iterdir()) and not is_study(folder):
        raise UserError(f"--output-dir {folder} is not empty and holds no {STUDY}: choose a new or empty folder, or a study folder")
    return folder, is_study(folder) and not fresh


def prepare(folder: Path, fresh: bool) -> None:
    """Create (or, with `fresh`, empty) the study folder; one clear line if it cannot be written."""
    created = not folder.exists()
    try:
        if fresh and is_study(folder):
            shutil.rmtree(folder)
            created = True
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        if created and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
        raise UserError(f"cannot write the study folder {folder}: {exc.strerror or exc}") from None
