"""View snapshots in the log's object store, and seeding a new view from one.

A rebuilt view used to replay the whole log. Stream sequences are the same at
every site, so a copy of any site's view together with the positions stored in
it is a valid view anywhere: install it, then replay only the log after those
positions.

Taking a snapshot copies the live view with SQLite's online backup API through
the view's own connection, in pages, from a worker thread. Pages the projector
changes through that connection while the copy runs are written into the copy
as well (and the copy waits out an open write transaction), so the finished
file is the view as of one commit: its rows and the ``positions`` table stored
beside them always match. The manifest's positions are read back from the
finished copy, never from memory.

Each snapshot is one object in the deployment's ``VIEWS`` bucket (replicated
like every stream), its manifest in the object's metadata: schema version,
positions per stream, server name, site, creation time, the view file's size,
the compression and the SHA-256 of the stored bytes. Only the newest ``keep``
are kept.

The object is the view file deflated (zlib format, ``compression = "zlib"``).
Why: installing a snapshot costs CPU per byte fetched from the object store
(about 113 MB/s on the benchmark machine, SHA-256 included), and a view
compresses about sevenfold (bench/RESULTS.md), so fewer bytes to move is most of
a faster install. Compression and decompression are streamed, never the whole
file in memory. The integrity checks on install: the stored (compressed) bytes
are checked against the manifest's SHA-256 and the object's digest, which are
the same hash, as they are read; zlib's own Adler-32 and length check the
inflated bytes, and the installed size must be the manifest's; then the
positions and schema version stored in the file must be the manifest's.
Snapshots stored uncompressed by older versions (no ``compression`` in the
manifest; SHA-256 of the file itself) are still installed as they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import secrets
import sqlite3
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from outlast.log.client import LogClient
from outlast.log.names import Names
from outlast.log.objects import ObjectBucket, StoredObject
from outlast.view.store import SCHEMA_VERSION

log = logging.getLogger(__name__)

MANIFEST_KEY = "outlast-view-manifest"
BACKUP_PAGES = 1024  # pages per backup step: the projector may commit between steps
ZLIB = "zlib"
NONE = "none"  # the manifests older versions wrote say nothing: uncompressed
ZLIB_LEVEL = 3  # on a real view: ratio 7.7 (6: 8.1), and the fastest of 1, 3, 6 here (RESULTS.md)
READ_SIZE = 1 << 20
INFLATE_MAX = 4 << 20  # bound on the bytes one decompress call may produce

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


@dataclass(frozen=True)
class Manifest:
    """What a snapshot holds and how to check it."""

    schema_version: int
    positions: dict[str, int]
    server_name: str
    site: str
    created_at: str
    created_ms: int
    sha256: str  # of the stored bytes: the compressed ones, or the file when uncompressed
    size: int  # of the view file
    compression: str = NONE

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @staticmethod
    def from_json(text: str) -> Manifest:
        raw = json.loads(text)
        return Manifest(
            schema_version=int(raw["schema_version"]),
            positions={str(k): int(v) for k, v in raw["positions"].items()},
            server_name=str(raw["server_name"]),
            site=str(raw["site"]),
            created_at=str(raw["created_at"]),
            created_ms=int(raw["created_ms"]),
            sha256=str(raw["sha256"]),
            size=int(raw["size"]),
            compression=str(raw.get("compression", NONE)),
        )

    @property
    def total(self) -> int:
        return sum(self.positions.values())


def _stored_positions(conn: sqlite3.Connection) -> tuple[int | None, dict[str, int]]:
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    version = int(row[0]) if row else None
    positions = {str(r[0]): int(r[1]) for r in conn.execute("SELECT stream, seq FROM positions")}
    return version, positions


def copy_view(conn: sqlite3.Connection, dest: Path) -> tuple[int | None, dict[str, int]]:
    """Copy the live view into ``dest`` (a self-contained file, no WAL); returns the schema
    version and positions stored in the copy. Blocking: run it in a thread."""
    dest.unlink(missing_ok=True)
    target = sqlite3.connect(str(dest), isolation_level=None)
    try:
        conn.backup(target, pages=BACKUP_PAGES, sleep=0.005)
        target.execute("PRAGMA journal_mode=DELETE")
        return _stored_positions(target)
    finally:
        target.close()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def deflate_file(source: Path, dest: Path, level: int = ZLIB_LEVEL) -> tuple[str, int]:
    """Write ``source`` deflated into ``dest``, streamed; the SHA-256 and size of what was
    written. Blocking: run it in a thread."""
    digest = hashlib.sha256()
    size = 0
    compressor = zlib.compressobj(level)
    with source.open("rb") as src, dest.open("wb") as out:
        while raw := src.read(READ_SIZE):
            if piece := compressor.compress(raw):
                digest.update(piece)
                out.write(piece)
                size += len(piece)
        piece = compressor.flush()
        digest.update(piece)
        out.write(piece)
        size += len(piece)
    return digest.hexdigest(), size


class Inflater:
    """Inflates a zlib stream chunk by chunk into a file, each call's output bounded;
    ``finish`` says whether the stream ended whole (zlib checks its Adler-32 itself)."""

    def __init__(self, sink: IO[bytes]) -> None:
        self.sink = sink
        self.written = 0
        self._inflate = zlib.decompressobj()

    def feed(self, data: bytes) -> None:
        while data:
            out = self._inflate.decompress(data, INFLATE_MAX)
            self.sink.write(out)
            self.written += len(out)
            data = self._inflate.unconsumed_tail
            if self._inflate.eof and (data or self._inflate.unused_data):
                raise ValueError("bytes after the end of the compressed view")

    def finish(self) -> None:
        while not self._inflate.eof:
            out = self._inflate.decompress(b"", INFLATE_MAX)
            if not out:
                raise ValueError("the compressed view ends early")
            self.sink.write(out)
            self.written += len(out)


async def fetch_into(
    bucket: ObjectBucket, obj: StoredObject, manifest: Manifest, sink: IO[bytes]
) -> str | None:
    """Download a snapshot into ``sink`` as the view file; why it is not the one its
    manifest describes, or None. The object store's reader checks the stored bytes
    against the object's digest, which must be the manifest's SHA-256."""
    if obj.sha256_hex() != manifest.sha256:
        return "its checksum does not match the manifest"
    if manifest.compression == NONE:
        await bucket.read_into(obj, sink)
    elif manifest.compression == ZLIB:
        # Inflate chunk k in a thread while chunk k+1 is fetched: on two cores the
        # download and the inflating overlap.
        loop = asyncio.get_running_loop()
        inflater = Inflater(sink)
        pending: asyncio.Future[None] | None = None
        try:
            async for chunk in bucket.read(obj):
                if pending is not None:
                    await pending
                pending = loop.run_in_executor(None, inflater.feed, chunk)
        finally:
            if pending is not None:
                await asyncio.gather(pending, return_exceptions=True)
        if pending is not None:
            await pending  # its error, if it had one
        await loop.run_in_executor(None, inflater.finish)
        if inflater.written != manifest.size:
            return f"it inflates to {inflater.written} bytes, not {manifest.size}"
    else:
        return f"its compression {manifest.compression!r} is unknown here"
    sink.flush()
    return None


def _snapshot_name(created_ms: int) -> str:
    return f"view-{created_ms:015d}-{secrets.token_hex(4)}"


async def manifests(bucket: ObjectBucket) -> list[tuple[StoredObject, Manifest]]:
    """Every snapshot in the bucket with a readable manifest, newest first."""
    found = []
    for name in await bucket.names():
        obj = await bucket.info(name)
        if obj is None or MANIFEST_KEY not in obj.metadata:
            continue
        try:
            manifest = Manifest.from_json(obj.metadata[MANIFEST_KEY])
        except (ValueError, KeyError, TypeError):
            log.warning("snapshot %s has an unreadable manifest; ignored", name)
            continue
        found.append((obj, manifest))
    found.sort(key=lambda pair: (pair[1].created_ms, pair[0].name), reverse=True)
    return found


async def upload(bucket: ObjectBucket, path: Path, manifest: Manifest) -> StoredObject:
    """Store a snapshot file under a new name with its manifest."""
    with path.open("rb") as source:
        return await bucket.put(
            _snapshot_name(manifest.created_ms),
            source,
            {MANIFEST_KEY: manifest.to_json()},
            expected_seq=0,
        )


async def take_snapshot(
    conn: sqlite3.Connection,
    log_client: LogClient,
    names: Names,
    *,
    replicas: int,
    server_name: str,
    site: str,
    keep: int,
    workdir: Path,
    progress: Progress = _quiet,
) -> Manifest:
    """Copy the view, store it in the bucket with its manifest, keep only the newest ``keep``."""
    workdir.mkdir(parents=True, exist_ok=True)
    temp = workdir / f"snapshot-{secrets.token_hex(6)}.sqlite"
    packed = temp.with_suffix(".sqlite.zlib")
    loop = asyncio.get_running_loop()
    try:
        started = time.monotonic()
        version, positions = await loop.run_in_executor(None, copy_view, conn, temp)
        if version != SCHEMA_VERSION:
            raise RuntimeError(f"the view's schema version is {version}, not {SCHEMA_VERSION}")
        copied = time.monotonic()
        digest, stored_size = await loop.run_in_executor(None, deflate_file, temp, packed)
        view_size = temp.stat().st_size
        temp.unlink()
        progress(
            f"view compressed: {view_size} to {stored_size} bytes "
            f"in {time.monotonic() - copied:.1f}s"
        )
        now = time.time()
        manifest = Manifest(
            schema_version=SCHEMA_VERSION,
            positions=positions,
            server_name=server_name,
            site=site,
            created_at=datetime.fromtimestamp(now, UTC).isoformat(),
            created_ms=int(now * 1000),
            sha256=digest,
            size=view_size,
            compression=ZLIB,
        )
        progress(
            f"view copied: {manifest.size} bytes at positions {positions} "
            f"in {time.monotonic() - started:.1f}s"
        )
        bucket = ObjectBucket(log_client, names.snapshot_bucket)
        await bucket.ensure(replicas, description="Outlast view snapshots")
        stored = await upload(bucket, packed, manifest)
        progress(f"snapshot {stored.name} stored in {names.snapshot_bucket}")
        for obj, _ in (await manifests(bucket))[keep:]:
            await bucket.delete(obj)
            progress(f"old snapshot {obj.name} deleted (keeping {keep})")
        return manifest
    finally:
        temp.unlink(missing_ok=True)
        packed.unlink(missing_ok=True)


def check_file(path: Path, manifest: Manifest) -> str | None:
    """Why the installed file's contents are not what its manifest says, or None (its
    bytes were checked as they were fetched: :func:`fetch_into`)."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            version, positions = _stored_positions(conn)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return f"it is not a readable view ({exc})"
    if version != manifest.schema_version or positions != manifest.positions:
        return "its contents disagree with the manifest"
    return None


async def seed_view(
    log_client: LogClient, names: Names, view_path: Path, progress: Progress = _quiet
) -> Manifest | None:
    """Install the newest usable snapshot as the view file at ``view_path``.

    Usable: same schema version, same streams, checksum and contents as its
    manifest says. Older snapshots are tried when a newer one is not usable.
    Returns None, having said why, when none is: the view then replays the
    whole log.
    """
    bucket = ObjectBucket(log_client, names.snapshot_bucket)
    streams = {s.name for s in names.streams()}
    try:
        candidates = await manifests(bucket)
    except Exception as exc:  # noqa: BLE001 - a missing snapshot is never fatal
        progress(f"snapshots unavailable ({exc!r}); replaying the whole log")
        return None
    if not candidates:
        progress("no view snapshot in the log's object store; replaying the whole log")
        return None
    incoming = view_path.with_name(view_path.name + ".incoming")
    view_path.parent.mkdir(parents=True, exist_ok=True)
    loop = asyncio.get_running_loop()
    for obj, manifest in candidates:
        if manifest.schema_version != SCHEMA_VERSION:
            progress(
                f"snapshot {obj.name} has schema version {manifest.schema_version}, "
                f"this view {SCHEMA_VERSION}; skipped"
            )
            continue
        if set(manifest.positions) != streams:
            progress(f"snapshot {obj.name} has other streams than this deployment; skipped")
            continue
        try:
            ahead = [
                stream
                for stream, seq in manifest.positions.items()
                if seq > await log_client.last_seq(stream)
            ]
        except Exception as exc:  # noqa: BLE001 - the log must answer before a seed
            progress(f"the log's positions are unavailable ({exc!r}); replaying the whole log")
            return None
        if ahead:
            # A view ahead of its log holds facts the log does not (another log, or one
            # recreated since): never install it.
            progress(f"snapshot {obj.name} is ahead of the log on {ahead}; skipped")
            continue
        started = time.monotonic()
        progress(
            f"fetching snapshot {obj.name} ({obj.size} bytes stored, {manifest.compression}, "
            f"{manifest.size} installed, made by site "
            f"{manifest.site} at {manifest.created_at})"
        )
        try:
            with incoming.open("wb") as sink:
                problem = await fetch_into(bucket, obj, manifest, sink)
            if problem is None:
                problem = await loop.run_in_executor(None, check_file, incoming, manifest)
        except Exception as exc:  # noqa: BLE001 - try the next one, or replay
            problem = f"it could not be read ({exc!r})"
        if problem is not None:
            incoming.unlink(missing_ok=True)
            progress(f"snapshot {obj.name} not used: {problem}")
            continue
        for suffix in ("", "-wal", "-shm"):
            Path(str(view_path) + suffix).unlink(missing_ok=True)
        os.replace(incoming, view_path)
        progress(
            f"snapshot {obj.name} installed in {time.monotonic() - started:.1f}s at positions "
            f"{manifest.positions}; replaying the log after them"
        )
        return manifest
    progress("no usable view snapshot; replaying the whole log")
    return None


class SnapshotTimer:
    """Takes a snapshot every ``interval`` seconds while the worker runs.

    Stopping lets a snapshot in progress finish (bounded) instead of cancelling
    it: its copy runs in a thread on the view's connection, which the worker
    closes right after.
    """

    STOP_GRACE = 120.0

    def __init__(self, interval: float, take: Callable[[], Awaitable[Manifest | None]]) -> None:
        self.interval = interval
        self._take = take
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.taken = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="view-snapshots")

    async def _run(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval)
            if self._stopping.is_set():
                return
            try:
                if await self._take() is not None:  # None: another worker takes them
                    self.taken += 1
            except Exception:
                log.exception("view snapshot failed; trying again in %.0fs", self.interval)

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, self.STOP_GRACE)
            except TimeoutError:
                log.warning("a view snapshot did not finish in %.0fs", self.STOP_GRACE)
            self._task = None
