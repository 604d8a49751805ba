"""Leases and once-only claims on a JetStream key-value bucket.

Nothing here is an election of our own: JetStream orders every write to a key
and refuses one whose ``Nats-Expected-Last-Subject-Sequence`` is not the key's
current revision. A lease is a key written with a per-message TTL: whoever
creates it (expected revision 0: the key is absent) holds it, and keeps it by
rewriting it, each time expecting the revision it wrote last. When the holder
dies, nobody rewrites the key, JetStream removes it when its TTL runs out, and
the next create by a survivor succeeds. A claim is a create of a key that never
changes: of all who try, exactly one gets it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import nats.errors
import nats.js.errors
from nats.js import api

from outlast.log.client import NO_ANSWER, STREAM_NAME_IN_USE, LogClient, LogUnavailable

EXPECTED_LAST_SUBJECT_SEQ = "Nats-Expected-Last-Subject-Sequence"
WRONG_LAST_SEQUENCE = 10071


class KeyBucket:
    """One key-value bucket, written with compare-and-set and per-key TTLs."""

    def __init__(self, log: LogClient, bucket: str) -> None:
        self.log = log
        self.bucket = bucket
        self.stream = f"KV_{bucket}"

    async def ensure(self, replicas: int, timeout: float = 60.0) -> None:
        """Create the bucket (admin credential); without stream management only check it."""
        if not self.log.manage_streams:
            await self.log.require_stream(self.stream)
            return
        config = api.KeyValueConfig(
            bucket=self.bucket,
            history=1,
            replicas=replicas,
            storage=api.StorageType.FILE,
            description="Outlast backup schedule: lease and claimed periods",
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                await self.log.js.create_key_value(config)
                return
            except Exception as exc:  # JetStream may still be electing
                if getattr(exc, "err_code", None) == STREAM_NAME_IN_USE:
                    return
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)

    async def write(self, key: str, value: bytes, *, expect: int, ttl: float) -> int | None:
        """Write ``key`` if its revision is ``expect`` (0: absent); its new revision, or
        None when another writer got there first."""
        headers = {EXPECTED_LAST_SUBJECT_SEQ: str(expect)}
        try:
            ack = await self.log.js.publish(
                f"$KV.{self.bucket}.{key}",
                value,
                headers=headers,
                msg_ttl=max(1.0, ttl),
                timeout=self.log.publish_timeout,
            )
        except nats.js.errors.APIError as exc:
            if exc.err_code == WRONG_LAST_SEQUENCE:
                return None
            raise LogUnavailable(f"{self.bucket}.{key}: {exc}") from exc
        except (*NO_ANSWER, nats.errors.ConnectionClosedError) as exc:
            raise LogUnavailable(f"{self.bucket}.{key}: {type(exc).__name__}") from exc
        return int(ack.seq)

    async def read(self, key: str) -> tuple[int, bytes] | None:
        """The key's revision and value, or None when it is absent (or expired)."""
        try:
            msg: Any = await self.log.js.get_msg(self.stream, subject=f"$KV.{self.bucket}.{key}")
        except nats.js.errors.NotFoundError:
            return None
        except NO_ANSWER as exc:
            raise LogUnavailable(f"{self.bucket}.{key}: {type(exc).__name__}") from exc
        return int(msg.seq), bytes(msg.data or b"")


class Lease:
    """A lease on one key of a bucket: ``hold()`` takes it when free and keeps it when held."""

    def __init__(self, bucket: KeyBucket, key: str, holder: str, ttl: float) -> None:
        self.bucket = bucket
        self.key = key
        self.holder = holder
        self.ttl = ttl
        self.revision = 0  # the revision this holder wrote last; 0 when not holding

    @property
    def held(self) -> bool:
        return self.revision > 0

    async def hold(self) -> bool:
        """Take or renew the lease; False when someone else holds it (or the log is away)."""
        try:
            revision = await self.bucket.write(
                self.key, self.holder.encode(), expect=self.revision, ttl=self.ttl
            )
        except LogUnavailable:
            revision = None
        if revision is None and self.revision:
            # Lost (it expired and was taken) or the write's fate is unknown: start over.
            self.revision = 0
            return await self.hold()
        self.revision = revision or 0
        return self.held

    async def release(self) -> None:
        """Give the lease up on a planned stop: rewritten with the shortest TTL (1 s), so
        the next holder takes over at once rather than after the whole TTL."""
        if not self.held:
            return
        with contextlib.suppress(LogUnavailable):  # otherwise it lapses by its own TTL
            await self.bucket.write(self.key, b"", expect=self.revision, ttl=1)
        self.revision = 0

    async def holder_now(self) -> str:
        found = await self.bucket.read(self.key)
        return found[1].decode() if found else ""


async def claim(bucket: KeyBucket, key: str, holder: str, ttl: float) -> bool:
    """Create ``key`` once: True for exactly one of all who try while it exists."""
    return await bucket.write(key, holder.encode(), expect=0, ttl=ttl) is not None
