"""Check a backup: the manifest parses, every file is there with its checksum and
its records are whole, in order, and within the captured bounds."""

from __future__ import annotations

from outlast.backup.manifest import Manifest, record_seq
from outlast.backup.target import MANIFEST, BackupTarget, sha256_of


def read_manifest(target: BackupTarget) -> Manifest:
    with target.reader(MANIFEST) as source:
        return Manifest.decode(source.read())


def verify(target: BackupTarget) -> list[str]:
    """Every problem found (empty: the backup is whole)."""
    if not target.exists(MANIFEST):
        return [f"{target.describe()}: no {MANIFEST} (unfinished backup?)"]
    try:
        manifest = read_manifest(target)
    except (ValueError, KeyError, TypeError) as exc:
        return [f"{MANIFEST}: unreadable ({exc})"]
    problems: list[str] = []
    for entry in manifest.streams:
        if not target.exists(entry.file):
            problems.append(f"{entry.file}: missing")
            continue
        if target.size(entry.file) != entry.bytes:
            problems.append(
                f"{entry.file}: {target.size(entry.file)} bytes, manifest says {entry.bytes}"
            )
            continue
        if sha256_of(target, entry.file) != entry.sha256:
            problems.append(f"{entry.file}: checksum mismatch")
            continue
        count, last = 0, 0
        try:
            with target.reader(entry.file) as source:
                for line in source:
                    seq = record_seq(line)
                    if seq <= last or seq > entry.last_seq:
                        problems.append(f"{entry.file}: sequence {seq} out of order")
                        break
                    count, last = count + 1, seq
        except (ValueError, KeyError) as exc:
            problems.append(f"{entry.file}: undecodable record after {last} ({exc})")
            continue
        if count != entry.messages:
            problems.append(f"{entry.file}: {count} records, manifest says {entry.messages}")
    return problems
