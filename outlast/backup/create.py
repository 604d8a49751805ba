"""``outlast backup create``: an online, consistent copy of every stream and the media bucket.

Consistency: the backup point is each stream's last sequence, all captured
at one moment before anything is read, dependents before what they depend on
(room partitions, then the directory, users, drills, and the media bucket
last): a room message in the backup never refers to an account, alias or
upload that the backup lacks. Each stream is then read up to its captured
sequence through an ordered consumer while writes continue; nothing after
the backup point is copied. The manifest is written last and the backup
verified (every file re-read against its checksum) before the command says so.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from outlast.backup.manifest import FORMAT, Manifest, StreamEntry, encode_record
from outlast.backup.source import Source
from outlast.backup.target import MANIFEST, BackupTarget, DirectoryTarget
from outlast.backup.verify import verify
from outlast.log.archive import StreamExtent, extent, read_stream
from outlast.log.client import StreamMissing

Progress = Callable[[str], None]
PROGRESS_EVERY = 2.0  # seconds between progress lines on long streams


def stderr_progress(line: str) -> None:
    print(f"outlast backup: {line}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Planned:
    role: str
    extent: StreamExtent


def backup_streams(source: Source) -> list[tuple[str, str]]:
    """(stream, role) in capture order: dependents first, the media bucket last."""
    names = source.names
    rooms = [(names.rooms_stream(i), "log") for i in range(names.partitions)]
    return [
        *rooms,
        (names.directory_stream, "log"),
        (names.users_stream, "log"),
        (names.drills_stream, "control"),
        (f"OBJ_{names.media_bucket}", "media"),
    ]


def new_backup_dir(parent: Path, now: datetime) -> Path:
    stamp = now.strftime("%Y%m%dT%H%M%S.%fZ")
    return parent / f"backup-{stamp}"


async def capture(source: Source, progress: Progress) -> list[Planned]:
    planned: list[Planned] = []
    for name, role in backup_streams(source):
        try:
            found = await extent(source.log, name)
        except StreamMissing:
            if role == "log":
                raise
            progress(f"{name}: no such stream (nothing to back up)")
            continue
        planned.append(Planned(role, found))
    return planned


async def copy_stream(
    source: Source, target: BackupTarget, plan: Planned, progress: Progress
) -> StreamEntry:
    ext = plan.extent
    file = f"streams/{ext.name}.jsonl"
    digest = hashlib.sha256()
    count = size = 0
    first_time = last_time = 0
    last_said = time.monotonic()
    with target.writer(file) as sink:
        async for msg in read_stream(source.log, ext.name, ext.last_seq):
            line = encode_record(msg.seq, msg.time_ns, msg.subject, msg.data, msg.headers)
            sink.write(line)
            digest.update(line)
            count, size = count + 1, size + len(line)
            first_time = first_time or msg.time_ns
            last_time = msg.time_ns
            if time.monotonic() - last_said > PROGRESS_EVERY:
                last_said = time.monotonic()
                progress(f"{ext.name}: {msg.seq}/{ext.last_seq} ({count} messages)")
    progress(f"{ext.name}: {count} messages up to sequence {ext.last_seq}, {size} bytes")
    return StreamEntry(
        name=ext.name,
        role=plan.role,
        file=file,
        first_seq=ext.first_seq,
        last_seq=ext.last_seq,
        messages=count,
        bytes=size,
        sha256=digest.hexdigest(),
        first_time_ns=first_time,
        last_time_ns=last_time,
        config=ext.config,
    )


async def create_backup(
    source: Source, parent: Path, progress: Progress = stderr_progress
) -> tuple[Path, Manifest]:
    """Write one backup under ``parent`` and verify it; returns its manifest's path."""
    started = time.monotonic()
    now = datetime.now(UTC)
    directory = new_backup_dir(parent, now)
    directory.mkdir(parents=True, exist_ok=False)
    target = DirectoryTarget(directory)
    progress(f"backing up {source.where} into {directory}")
    planned = await capture(source, progress)
    points = ", ".join(f"{p.extent.name}={p.extent.last_seq}" for p in planned)
    progress(f"backup point: {points}")
    entries = [await copy_stream(source, target, plan, progress) for plan in planned]
    manifest = Manifest(
        format=FORMAT,
        created=now.isoformat(),
        source=source.where,
        deployment=source.deployment,
        streams=tuple(entries),
        duration_seconds=round(time.monotonic() - started, 3),
    )
    with target.writer(MANIFEST) as sink:
        sink.write(manifest.encode())
    # Re-reading every file takes a while on a big backup: off the event loop, so a
    # worker taking a scheduled backup keeps serving (and renewing its lease).
    problems = await asyncio.get_running_loop().run_in_executor(None, verify, target)
    if problems:
        raise BackupFailed("; ".join(problems))
    return directory / MANIFEST, manifest


class BackupFailed(Exception):
    """The backup did not verify: it must not be trusted."""
