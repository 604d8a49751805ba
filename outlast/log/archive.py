"""Read whole streams out of JetStream and write them back, sequence for sequence.

The backup commands (outlast/backup) see streams only through this module, so
nats-py stays inside ``outlast/log``. Reading uses an ordered push consumer
(flow-controlled, no server-side state left behind): an online read that never
touches the server's files. Writing republishes each message, in order, into a
fresh stream with ``Nats-Expected-Last-Sequence`` set to the sequence before
it, so the restored stream holds every message at its original sequence or
the write fails loudly. Where the source has a hole (messages deleted or
rolled up), a placeholder fills each missing sequence and is purged at the
end: the sequences after a hole stay the original ones too. A restored message
keeps its subject, payload and descriptive headers (``Nats-Msg-Id``); the
headers that instructed the original write are dropped, and the restore's own
guard header stays on it (nothing in Outlast reads headers back).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import api

from outlast.log.client import NO_ANSWER, LogClient, LogUnavailable, StreamMissing

# Headers that instructed the original write; on a republish they would test
# (or, for a rollup, change) the restored stream instead of describing it.
WRITE_INSTRUCTIONS = frozenset(
    {
        "Nats-Expected-Last-Subject-Sequence",
        "Nats-Expected-Last-Sequence",
        "Nats-Expected-Last-Msg-Id",
        "Nats-Expected-Stream",
        "Nats-Rollup",
    }
)
GAP_SUFFIX = "_restore_gap"
READ_BUFFER = 4096  # messages read ahead of the caller
ACK_TIMEOUT = 60.0
IN_FLIGHT = 512  # republished messages awaiting their acknowledgement at once


@dataclass(frozen=True)
class RawMessage:
    """One stored message as the stream holds it."""

    seq: int
    time_ns: int
    subject: str
    data: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StreamExtent:
    """Where a stream starts and ends, and its configuration, at one moment."""

    name: str
    first_seq: int
    last_seq: int
    messages: int
    bytes: int
    config: dict[str, Any]


async def extent(log: LogClient, stream: str) -> StreamExtent:
    """The stream's bounds and configuration now (from its leader)."""
    try:
        info = await log.js.stream_info(stream)
    except nats.js.errors.NotFoundError as exc:
        raise StreamMissing(stream) from exc
    except NO_ANSWER as exc:
        raise LogUnavailable(f"no answer about {stream}: {type(exc).__name__}") from exc
    state = info.state
    return StreamExtent(
        name=stream,
        first_seq=int(state.first_seq or 0),
        last_seq=int(state.last_seq or 0),
        messages=int(state.messages or 0),
        bytes=int(state.bytes or 0),
        config=info.config.as_dict(),
    )


def _time_ns(when: datetime | None) -> int:
    return int(when.timestamp() * 1_000_000) * 1000 if when is not None else 0


async def read_stream(
    log: LogClient, stream: str, last_seq: int, *, idle_timeout: float = 2.0, deadline: float = 3600
) -> AsyncIterator[RawMessage]:
    """Every message of ``stream`` up to ``last_seq``, in order (writes after it are not read).

    Messages arrive through a callback into a bounded buffer that the caller
    drains in batches (waiting per message costs more than reading it); a full
    buffer holds the callback, and with it the consumer's flow control.
    Bounded: the read stops when the stream has nothing more at or below
    ``last_seq`` (asked of the stream after ``idle_timeout`` of silence) and
    fails after ``deadline`` seconds."""
    if last_seq < 1:
        return
    buffer: deque[RawMessage] = deque()
    arrived = asyncio.Event()
    room = asyncio.Event()
    room.set()

    async def on_msg(msg: Msg) -> None:
        meta = msg.metadata
        headers = {str(k): str(v) for k, v in (msg.headers or {}).items()}
        buffer.append(
            RawMessage(
                int(meta.sequence.stream),
                _time_ns(meta.timestamp),
                msg.subject,
                bytes(msg.data),
                headers,
            )
        )
        arrived.set()
        if len(buffer) >= READ_BUFFER:
            room.clear()
            await room.wait()

    sub = await log.js.subscribe(
        "",
        stream=stream,
        cb=on_msg,
        ordered_consumer=True,
        idle_heartbeat=1.0,
        flow_control=True,
        config=api.ConsumerConfig(deliver_policy=api.DeliverPolicy.ALL),
    )
    give_up = time.monotonic() + deadline
    seen = 0
    try:
        while time.monotonic() < give_up:
            if not buffer:
                arrived.clear()
                room.set()
                try:
                    await asyncio.wait_for(arrived.wait(), idle_timeout)
                except TimeoutError:
                    if not await _more_below(log, stream, seen, last_seq):
                        return
                continue
            while buffer:
                msg = buffer.popleft()
                if len(buffer) < READ_BUFFER // 2:
                    room.set()
                if msg.seq > last_seq:
                    return
                if msg.seq <= seen:
                    continue  # a redelivery after the ordered consumer re-created itself
                seen = msg.seq
                yield msg
                if seen == last_seq:
                    return
        raise LogUnavailable(f"reading {stream} took longer than {deadline} s")
    finally:
        room.set()
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


async def _more_below(log: LogClient, stream: str, seen: int, last_seq: int) -> bool:
    """Whether the stream still holds a message after ``seen`` and at most ``last_seq``."""
    try:
        msg = await log.js.get_msg(stream, seen + 1, next=True)
    except nats.js.errors.NotFoundError:
        return False
    except NO_ANSWER as exc:
        raise LogUnavailable(f"no answer from {stream}: {type(exc).__name__}") from exc
    return int(msg.seq or 0) <= last_seq


async def create_stream(log: LogClient, config: dict[str, Any], *, replicas: int) -> None:
    """Create an empty stream with a backed-up configuration (refusing an existing one)."""
    raw = dict(config)
    raw["num_replicas"] = replicas
    for key in ("sources", "mirror", "metadata"):
        raw.pop(key, None)
    stream_config = api.StreamConfig.from_response(raw)
    try:
        await log.js.add_stream(stream_config)
    except nats.js.errors.BadRequestError as exc:
        raise ValueError(f"cannot create stream {raw.get('name')}: {exc.description}") from exc


def gap_subject(config: dict[str, Any]) -> str:
    """A subject inside the stream that nothing reads: placeholders for holes go there."""
    first = str((config.get("subjects") or [""])[0])
    head = first.rstrip(">").rstrip("*").rstrip(".")
    return f"{head}.{GAP_SUFFIX}" if head else GAP_SUFFIX


class StreamWriter:
    """Republish one stream's messages in order, at their original sequences."""

    def __init__(self, log: LogClient, stream: str, config: dict[str, Any]) -> None:
        self.log = log
        self.stream = stream
        self.gap = gap_subject(config)
        self.last = 0
        self.gaps = 0
        self._pending: list[tuple[int, asyncio.Future[api.PubAck]]] = []

    async def pad_to(self, last_seq: int) -> None:
        """End at ``last_seq`` even where the source's tail was deleted (placeholders)."""
        await self._fill(last_seq)

    async def _publish(
        self, subject: str, data: bytes, headers: dict[str, str], *, placeholder: bool = False
    ) -> None:
        expected = self.last
        hdrs = {k: v for k, v in headers.items() if k not in WRITE_INSTRUCTIONS}
        hdrs["Nats-Expected-Last-Sequence"] = str(expected)
        if placeholder:
            self.gaps += 1
        try:
            # No stall timeout: IN_FLIGHT is far below nats-py's limit of pending
            # publishes, and without one, publishes queue up without yielding and
            # leave in one socket write.
            future = await self.log.js.publish_async(subject, data, headers=hdrs)
        except NO_ANSWER as exc:
            raise LogUnavailable(f"restore of {self.stream} stalled: {exc!r}") from exc
        self.last = expected + 1
        self._pending.append((self.last, future))
        if len(self._pending) >= IN_FLIGHT:
            await self._settle()

    async def _fill(self, upto: int) -> None:
        while self.last < upto:
            await self._publish(self.gap, b"", {}, placeholder=True)

    async def write(self, msg: RawMessage) -> None:
        if msg.seq <= self.last:
            raise ValueError(f"{self.stream}: sequence {msg.seq} out of order (after {self.last})")
        await self._fill(msg.seq - 1)
        await self._publish(msg.subject, msg.data, msg.headers)

    async def _settle(self) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        await asyncio.wait([f for _, f in pending], timeout=ACK_TIMEOUT)
        for seq, future in pending:
            if not future.done():
                future.cancel()
                raise LogUnavailable(f"{self.stream}: no acknowledgement for {seq}")
            try:
                ack = future.result()
            except nats.js.errors.APIError as exc:
                raise ValueError(
                    f"{self.stream}: republishing sequence {seq} refused: {exc.description}"
                ) from exc
            except NO_ANSWER as exc:
                raise LogUnavailable(f"{self.stream}: no acknowledgement for {seq}") from exc
            if int(ack.seq) != seq:
                raise ValueError(f"{self.stream}: stored at {ack.seq}, expected {seq}")

    async def finish(self) -> None:
        """Wait for every acknowledgement, then drop the placeholders."""
        await self._settle()
        if self.gaps:
            await self.log.js.purge_stream(self.stream, subject=self.gap)


async def delete_stream(log: LogClient, stream: str) -> bool:
    """Delete a stream (the tests' "mistake"); False if there was none."""
    try:
        return bool(await log.js.delete_stream(stream))
    except nats.js.errors.NotFoundError:
        return False
