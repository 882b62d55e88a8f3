"""A teach session is a folder: OUTPUT/pictures/ is the project, one subfolder of pictures per
class, the layout `python -m kerastl.fit --dataset OUTPUT/pictures` reads. Reopening OUTPUT reopens
the session. A picture is stored under the first 16 hex digits of its SHA-256 (the same picture
twice is one picture), so a file's name is also the key of its cached features.

Every change goes through `Session`, under one lock: a class name is checked before it becomes a
folder name (no path tricks, nothing a folder dataset would read as a split), a picture is checked
as an image folder's pictures are before it is written, and nothing is written outside OUTPUT.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

from kerastl.data.folders import EXTENSIONS, SPLIT_FOLDERS
from kerastl.errors import UserError
from kerastl.files import atomic_path
from kerastl.web import pictures

PICTURES = "pictures"
RUNS = "runs"  # the exported runs (kerastl.teach.export), beside pictures/
CLASS_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.+-]{0,39}")
RESERVED = {"train", *(name for names in SPLIT_FOLDERS.values() for name in names)}  # a folder dataset reads them as splits


class SessionError(UserError):
    """A request the session refuses (a bad class name, an unknown class, a bad picture)."""


class NotFound(SessionError):
    pass


def check_class_name(name: str) -> str:
    """The name, stripped, if it can be a class folder; SessionError otherwise."""
    name = (name or "").strip()
    if not CLASS_NAME.fullmatch(name) or name.endswith(".") or ".." in name:
        raise SessionError(f"class name {name!r}: use 1 to 40 letters, digits, spaces, '_', '-', '+' or '.', "
                           "starting with a letter or digit (no '/', no '..')")
    if name.lower() in RESERVED:
        raise SessionError(f"class name {name!r} is reserved: a folder of that name is read as a split of the dataset")
    return name


@dataclass(frozen=True)
class Picture:
    path: Path
    label: int


class Session:
    """The classes and pictures under OUTPUT/pictures/, changed only under `lock`."""

    def __init__(self, output_dir: str | Path):
        self.output_dir = Path(output_dir).expanduser().resolve()
        self.root = self.output_dir / PICTURES
        self.root.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()

    # What there is

    def class_names(self) -> list[str]:
        """The class folders, sorted as a folder dataset sorts them (the models' output order)."""
        with self.lock:
            return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def examples(self, name: str) -> list[Path]:
        with self.lock:
            folder = self._existing(name)
            return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS)

    def classes(self) -> list[dict]:
        """[{"name", "examples", "pictures": [file names]}], in output order."""
        with self.lock:
            return [{"name": name, "examples": len(files), "pictures": [p.name for p in files]}
                    for name in self.class_names() for files in [self.examples(name)]]

    def snapshot(self) -> tuple[list[str], list[Picture]]:
        """(class names, every picture with its label): what one training uses."""
        with self.lock:
            names = self.class_names()
            return names, [Picture(path, label) for label, name in enumerate(names) for path in self.examples(name)]

    def picture_path(self, name: str, file_name: str) -> Path:
        with self.lock:
            path = self._existing(name) / file_name
            if Path(file_name).name != file_name or not path.is_file():
                raise NotFound(f"class {name!r} has no picture {file_name!r}")
            return path

    # Changes

    def add_class(self, name: str) -> str:
        name = check_class_name(name)
        with self.lock:
            if self._folder(name).exists():
                raise SessionError(f"class {name!r} exists already")
            self._folder(name).mkdir()
            return name

    def rename_class(self, name: str, new_name: str) -> str:
        new_name = check_class_name(new_name)
        with self.lock:
            folder = self._existing(name)
            if new_name != name and self._folder(new_name).exists():
                raise SessionError(f"class {new_name!r} exists already")
            folder.rename(self._folder(new_name))
            return new_name

    def remove_class(self, name: str) -> None:
        with self.lock:
            shutil.rmtree(self._existing(name))

    def add_example(self, name: str, picture: bytes) -> dict:
        """Check the picture, store it in class `name` (made if new): {"class", "examples", "picture"}."""
        name = check_class_name(name)
        try:
            extension = pictures.checked(picture)
        except pictures.PictureError as exc:
            raise SessionError(f"not added to {name!r}: {exc}") from None
        file_name = hashlib.sha256(picture).hexdigest()[:16] + extension
        with self.lock:
            folder = self._folder(name)
            folder.mkdir(exist_ok=True)
            with atomic_path(folder / file_name) as tmp:
                tmp.write_bytes(picture)
            return {"class": name, "examples": len(self.examples(name)), "picture": file_name}

    def remove_example(self, name: str, file_name: str) -> dict:
        with self.lock:
            self.picture_path(name, file_name).unlink()
            return {"class": name, "examples": len(self.examples(name))}

    # Paths, checked

    def _folder(self, name: str) -> Path:
        folder = (self.root / check_class_name(name)).resolve()
        if folder.parent != self.root:  # never reached after check_class_name; the last guard
            raise SessionError(f"class name {name!r} leaves the pictures folder")
        return folder

    def _existing(self, name: str) -> Path:
        folder = self._folder(name)
        if not folder.is_dir():
            raise NotFound(f"no class {name!r}")
        return folder
