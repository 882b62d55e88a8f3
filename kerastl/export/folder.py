"""The export folder appears whole or not at all: files are written to a hidden staging folder in
the run folder, which is renamed onto `export/` only after every file converted and ran."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def staging_folder(run_dir: Path, name: str) -> Path:
    """A hidden temporary folder in the run folder, with the permissions of an ordinary new folder."""
    staging = Path(tempfile.mkdtemp(dir=run_dir, prefix=f".{name}-"))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)
    return staging


def move_into_place(staging: Path, target: Path) -> None:
    """Rename `staging` onto `target`; an old export is moved aside first and removed only afterwards."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}-old-{os.getpid()}")
        os.replace(target, old)
    try:
        os.replace(staging, target)
    except OSError:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
