"""Where backups are kept: a small interface, and the directory that implements it.

A backup is a set of named files plus ``manifest.json``, which is written last
and names every other file with its SHA-256: a backup without a manifest is
unfinished and never restored. An S3-compatible target follows the same
shape — one object per file under a key prefix per backup (multipart upload
for large streams), the manifest object put last as the commit point, and
listing by prefix for ``backup list`` — so only this module changes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

MANIFEST = "manifest.json"


class BackupTarget(Protocol):
    """One backup's storage: write named files, read them back, list them."""

    def describe(self) -> str: ...

    def writer(self, name: str) -> contextlib.AbstractContextManager[BinaryIO]: ...

    def reader(self, name: str) -> contextlib.AbstractContextManager[BinaryIO]: ...

    def exists(self, name: str) -> bool: ...

    def size(self, name: str) -> int: ...


class DirectoryTarget:
    """A backup as a directory of files; each file appears under its name only when whole."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def describe(self) -> str:
        return str(self.path)

    def _file(self, name: str) -> Path:
        candidate = (self.path / name).resolve()
        if self.path.resolve() not in candidate.parents:
            raise ValueError(f"backup file name {name!r} leaves the backup directory")
        return candidate

    @contextlib.contextmanager
    def writer(self, name: str) -> Iterator[BinaryIO]:
        final = self._file(name)
        final.parent.mkdir(parents=True, exist_ok=True)
        partial = final.with_name(final.name + ".part")
        with open(partial, "wb") as sink:
            yield sink
            sink.flush()
            os.fsync(sink.fileno())
        partial.replace(final)

    @contextlib.contextmanager
    def reader(self, name: str) -> Iterator[BinaryIO]:
        with open(self._file(name), "rb") as source:
            yield source

    def exists(self, name: str) -> bool:
        return self._file(name).is_file()

    def size(self, name: str) -> int:
        return self._file(name).stat().st_size


def sha256_of(target: BackupTarget, name: str) -> str:
    digest = hashlib.sha256()
    with target.reader(name) as source:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def backups_in(directory: Path) -> list[Path]:
    """The finished backups a directory holds (itself, or its subdirectories), oldest first."""
    if (directory / MANIFEST).is_file():
        return [directory]
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if (p / MANIFEST).is_file())
