"""``outlast backup restore``: recreate a deployment's streams from a backup, sequence for sequence.

Each stream is created empty with its backed-up configuration and its
messages republished in order, each with ``Nats-Expected-Last-Sequence`` at
the sequence before it (outlast/log/archive.py): when nothing is skipped the
restored stream holds every message at its original sequence, or the restore
fails. Holes in the source (deleted or rolled-up messages) are filled with
placeholders that are purged afterwards, so later sequences stay the same.
Identical sequences are what keep sync tokens (positions per stream) and the
view's bookkeeping meaningful; access tokens are facts on the users stream
(their hashes), so they work after a restore just as before it.

Point in time: ``--until`` keeps the messages stored at or before a moment
(the JetStream timestamp of the original write), ``--until-seq`` the
messages up to a sequence per named stream. Only a stream's tail is ever cut,
so the sequences that remain are still the original ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from dataclasses import dataclass

from outlast.backup.manifest import (
    Cut,
    Manifest,
    StreamEntry,
    decode_record,
)
from outlast.backup.target import BackupTarget
from outlast.log.archive import RawMessage, StreamWriter, create_stream, extent
from outlast.log.client import LogClient, LogUnavailable, StreamMissing

PROGRESS_EVERY = 2.0
CREATE_TIMEOUT = 90.0
CREATE_ATTEMPT = 5.0
RESTORED_CLUSTER = "restored.json"


def say(line: str) -> None:
    print(f"outlast restore: {line}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Restored:
    name: str
    messages: int
    last_seq: int
    dropped: int  # messages of the backup the cut left out


async def restore_stream(
    log: LogClient,
    target: BackupTarget,
    entry: StreamEntry,
    cut: Cut,
    *,
    replicas: int,
) -> Restored:
    await create_empty(log, entry, replicas)
    writer = StreamWriter(log, entry.name, entry.config)
    kept = dropped = last_kept = 0
    last_said = time.monotonic()
    with target.reader(entry.file) as source:
        for line in source:
            record = decode_record(line)
            # The first message past the cut ends the stream: only a tail is ever cut
            # (storage times of a clustered stream may step back a little at a leader change).
            if dropped or not cut.keeps(entry.name, record.seq, record.time_ns):
                dropped += 1
                continue
            await writer.write(
                RawMessage(record.seq, record.time_ns, record.subject, record.data, record.headers)
            )
            kept, last_kept = kept + 1, record.seq
            if time.monotonic() - last_said > PROGRESS_EVERY:
                last_said = time.monotonic()
                say(f"{entry.name}: {record.seq}/{entry.last_seq}")
    end = cut.end(entry, last_kept, dropped > 0)
    await writer.pad_to(end)
    await writer.finish()
    found = await extent(log, entry.name)
    if found.last_seq != end or found.messages != kept:
        raise ValueError(
            f"{entry.name}: restored {found.messages} messages up to {found.last_seq}, "
            f"expected {kept} up to {end}"
        )
    say(
        f"{entry.name}: {kept} messages up to sequence {end}"
        + (f" ({dropped} after the cut left out)" if dropped else "")
    )
    return Restored(entry.name, kept, end, dropped)


async def create_empty(log: LogClient, entry: StreamEntry, replicas: int) -> None:
    """Create the stream, waiting out a JetStream cluster that is still electing."""
    deadline = time.monotonic() + CREATE_TIMEOUT
    while True:
        try:
            # Short attempts: a request that reached a node still joining its cluster
            # gets no answer at all, and waiting out the client's timeout helps nobody.
            await asyncio.wait_for(
                create_stream(log, entry.config, replicas=replicas), CREATE_ATTEMPT
            )
            return
        except ValueError:
            # An earlier attempt may have created it before its answer was lost.
            with contextlib.suppress(StreamMissing, LogUnavailable):
                if (await extent(log, entry.name)).last_seq == 0:
                    return
            raise
        except Exception as exc:
            if time.monotonic() > deadline:
                raise LogUnavailable(f"cannot create {entry.name}: {exc!r}") from exc
            await asyncio.sleep(0.5)


async def restore_into(
    log: LogClient, target: BackupTarget, manifest: Manifest, cut: Cut, *, replicas: int
) -> list[Restored]:
    return [
        await restore_stream(log, target, entry, cut, replicas=replicas)
        for entry in manifest.streams
    ]


def deployment_toml(manifest: Manifest, origin: str) -> str:
    d = manifest.deployment
    return (
        f"# Written by `outlast backup restore` from {origin}:\n"
        "# the names of the restored deployment (see docs/backup.md).\n"
        "[server]\n"
        f"server_name = {json.dumps(d.server_name)}\n\n"
        "[log]\n"
        f"prefix = {json.dumps(d.prefix)}\n"
        f"partitions = {d.partitions}\n"
    )


def summarize(restored: list[Restored], seconds: float, then: str) -> None:
    total = sum(r.messages for r in restored)
    dropped = sum(r.dropped for r in restored)
    say(
        f"done: {len(restored)} streams, {total} messages in {seconds:.2f} s"
        + (f"; {dropped} messages after the cut not applied" if dropped else "")
        + f". Start it with: {then}"
    )
