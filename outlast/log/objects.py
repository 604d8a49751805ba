"""Object store buckets (media, view snapshots): JetStream object stores, read and
written in chunks (the log's object-store adapter: its users see put, info, read,
names and delete).

The layout is NATS's own object store (stream ``OBJ_<bucket>``, chunks on
``$O.<bucket>.C.<nuid>``, one metadata message per object on
``$O.<bucket>.M.<base64 name>``), so ``nats object get`` works on it and the
bucket replicates like every stream. Two things nats-py's ObjectStore does
not offer are done here:

- writes fence the metadata message on the sequence the writer saw, so a
  media id created by ``/create`` can be uploaded exactly once, at any site;
- reads fetch one chunk at a time (a direct get from the nearest replica,
  falling back to the stream leader), so a download never holds a whole file
  in memory and goes only as fast as the client reads.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO

import nats.errors
import nats.js.errors
from nats.js import api

from outlast.log.client import LogClient, LogUnavailable

log = logging.getLogger(__name__)

CHUNK_SIZE = 128 * 1024
WRONG_LAST_SEQUENCE = 10071
STREAM_NAME_IN_USE = 10058
UNAVAILABLE = (
    nats.errors.NoRespondersError,
    nats.errors.TimeoutError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.js.errors.ServiceUnavailableError,
    asyncio.TimeoutError,
)


class AlreadyWritten(Exception):
    """The object changed since the writer looked (e.g. a second upload to one id)."""


@dataclass
class StoredObject:
    """One object's metadata message: what a reader needs to stream it."""

    name: str
    seq: int
    nuid: str
    size: int
    chunks: int
    digest: str
    metadata: dict[str, str] = field(default_factory=dict)

    def sha256_hex(self) -> str | None:
        """The SHA-256 (hex) of the object's bytes, from its digest; None when unknown.
        :meth:`ObjectBucket.read` checks every read against it, so a file written from
        a completed read has this checksum without being hashed again."""
        if self.chunks == 0 or not self.digest.startswith("SHA-256="):
            return None
        try:
            raw = base64.urlsafe_b64decode(self.digest.removeprefix("SHA-256="))
        except (binascii.Error, ValueError):
            return None
        return raw.hex() if len(raw) == hashlib.sha256().digest_size else None


class ObjectBucket:
    def __init__(self, log_client: LogClient, bucket: str) -> None:
        self.log = log_client
        self.bucket = bucket
        self.stream = f"OBJ_{bucket}"

    async def ensure(
        self, replicas: int, timeout: float = 60.0, description: str = "Outlast media repository"
    ) -> None:
        """Create the bucket (file storage, the log's replica count), waiting out elections.

        A worker without stream management only checks that it exists (StreamMissing).
        """
        if not self.log.manage_streams:
            await self.log.require_stream(self.stream)
            return
        config = api.ObjectStoreConfig(
            bucket=self.bucket,
            replicas=replicas,
            storage=api.StorageType.FILE,
            description=description,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                # nats-py overwrites config.bucket with its first argument.
                await self.log.js.create_object_store(self.bucket, config=config)
                return
            except Exception as exc:  # JetStream may still be electing
                if getattr(exc, "err_code", None) == STREAM_NAME_IN_USE:
                    return  # created earlier with other settings: use it as it is
                if time.monotonic() > deadline:
                    raise
                log.info("waiting for JetStream to accept the media bucket: %s", exc)
                await asyncio.sleep(0.5)

    def _meta_subject(self, name: str) -> str:
        encoded = base64.urlsafe_b64encode(name.encode("utf-8")).decode()
        return f"$O.{self.bucket}.M.{encoded}"

    def _chunk_subject(self, nuid: str) -> str:
        return f"$O.{self.bucket}.C.{nuid}"

    async def _get(self, subject: str, seq: int | None) -> api.RawStreamMsg | None:
        """Last (seq None) or next-from-seq message on a subject: nearest replica, then leader."""
        js = self.log.js
        try:
            for direct in (True, False):
                try:
                    if seq is None:
                        return await js.get_msg(self.stream, subject=subject, direct=direct)
                    return await js.get_msg(
                        self.stream, seq=seq, subject=subject, direct=direct, next=True
                    )
                except nats.js.errors.NotFoundError:
                    continue
        except UNAVAILABLE as exc:
            raise LogUnavailable(f"media bucket unavailable: {type(exc).__name__}") from exc
        return None

    async def info(self, name: str) -> StoredObject | None:
        msg = await self._get(self._meta_subject(name), None)
        if msg is None or not msg.data:
            return None
        try:
            raw = json.loads(msg.data)
        except ValueError:
            return None
        if raw.get("deleted"):
            return None
        return StoredObject(
            name=name,
            seq=int(msg.seq or 0),
            nuid=str(raw.get("nuid", "")),
            size=int(raw.get("size") or 0),
            chunks=int(raw.get("chunks") or 0),
            digest=str(raw.get("digest") or ""),
            metadata={str(k): str(v) for k, v in (raw.get("metadata") or {}).items()},
        )

    async def names(self) -> list[str]:
        """Every object name with a metadata message (deleted ones included); [] when the
        bucket does not exist."""
        try:
            info = await self.log.js.stream_info(
                self.stream, subjects_filter=f"$O.{self.bucket}.M.>"
            )
        except nats.js.errors.NotFoundError:
            return []
        except UNAVAILABLE as exc:
            raise LogUnavailable(f"bucket {self.bucket} unavailable: {type(exc).__name__}") from exc
        prefix = f"$O.{self.bucket}.M."
        found = []
        for subject in info.state.subjects or {}:
            try:
                found.append(base64.urlsafe_b64decode(subject.removeprefix(prefix)).decode())
            except ValueError:
                continue
        return sorted(found)

    async def delete(self, obj: StoredObject) -> None:
        """Remove the object: its metadata message first (so no reader finds it), then its
        chunks."""
        await self._purge(self._meta_subject(obj.name))
        await self._purge(self._chunk_subject(obj.nuid))

    async def put(
        self, name: str, source: IO[bytes] | None, metadata: dict[str, str], *, expected_seq: int
    ) -> StoredObject:
        """Store ``source`` under ``name`` only if its metadata is still at ``expected_seq``
        (0: the name is new). Chunks first, then the metadata message that makes them visible."""
        js = self.log.js
        nuid = secrets.token_hex(11)
        chunk_subject = self._chunk_subject(nuid)
        digest, size, chunks = hashlib.sha256(), 0, 0
        loop = asyncio.get_running_loop()
        try:
            while source is not None:
                payload = await loop.run_in_executor(None, source.read, CHUNK_SIZE)
                if not payload:
                    break
                digest.update(payload)
                await js.publish(chunk_subject, payload)
                size, chunks = size + len(payload), chunks + 1
            meta = {
                "name": name,
                "bucket": self.bucket,
                "nuid": nuid,
                "size": size,
                "chunks": chunks,
                "mtime": datetime.now(UTC).isoformat(),
                "digest": "SHA-256=" + base64.urlsafe_b64encode(digest.digest()).decode(),
                "options": {"max_chunk_size": CHUNK_SIZE},
                "metadata": metadata,
            }
            ack = await js.publish(
                self._meta_subject(name),
                json.dumps(meta).encode(),
                headers={
                    "Nats-Rollup": "sub",
                    "Nats-Expected-Last-Subject-Sequence": str(expected_seq),
                },
            )
        except BaseException as exc:
            await self._purge(chunk_subject)
            if isinstance(exc, nats.js.errors.APIError) and exc.err_code == WRONG_LAST_SEQUENCE:
                raise AlreadyWritten(name) from exc
            if isinstance(exc, UNAVAILABLE):
                raise LogUnavailable(f"media bucket unavailable: {type(exc).__name__}") from exc
            raise
        return StoredObject(name, int(ack.seq), nuid, size, chunks, str(meta["digest"]), metadata)

    async def _purge(self, subject: str) -> None:
        try:
            await self.log.js.purge_stream(self.stream, subject=subject)
        except Exception:  # orphaned chunks are only wasted space
            log.warning("could not purge %s", subject, exc_info=True)

    async def read(self, obj: StoredObject) -> AsyncIterator[bytes]:
        """The object's bytes chunk by chunk, checked against its digest at the end."""
        subject = self._chunk_subject(obj.nuid)
        digest = hashlib.sha256()
        seq = 1
        for _ in range(obj.chunks):
            msg = await self._get(subject, seq)
            if msg is None or msg.data is None:
                raise LogUnavailable(f"chunk missing from {obj.name}")
            digest.update(msg.data)
            seq = int(msg.seq or seq) + 1
            yield msg.data
        expected = obj.digest.removeprefix("SHA-256=")
        if obj.chunks and base64.urlsafe_b64encode(digest.digest()).decode() != expected:
            raise LogUnavailable(f"digest mismatch reading {obj.name}")

    async def read_into(self, obj: StoredObject, sink: IO[bytes]) -> None:
        async for chunk in self.read(obj):
            sink.write(chunk)
        sink.seek(0)
