"""The projector: the view's only writer. Consumes every stream, applies in order.

Messages from all streams meet in one queue; one task drains it in batches,
each batch a single SQLite transaction that also records the applied
sequences. A redelivered message (sequence at or below the applied one) is
skipped; a gap (a sequence beyond applied + 1) means the consumer lost its
place, so that stream is re-followed from the applied position.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Sequence
from typing import Any

from outlast.clock import SYSTEM, Clock
from outlast.core.push_prune import DEFAULT as DEFAULT_PRUNE
from outlast.core.push_prune import PrunePolicy
from outlast.log.client import LogClient, LogMessage
from outlast.log.names import StreamSpec
from outlast.view.apply import apply_message
from outlast.view.notifier import Notifier
from outlast.view.state_cache import BatchStates, StateCache
from outlast.view.store import Positions

log = logging.getLogger(__name__)

BATCH = 512


class Projector:
    def __init__(
        self,
        conn: sqlite3.Connection,
        log_client: LogClient,
        streams: Sequence[StreamSpec],
        positions: Positions,
        notifier: Notifier,
        state_cache: StateCache | None = None,
        *,
        clock: Clock = SYSTEM,
        push_prune: PrunePolicy = DEFAULT_PRUNE,
    ) -> None:
        self.conn = conn
        self.push_prune = push_prune
        self.clock = clock
        self.log = log_client
        self.streams = list(streams)
        self.positions = positions
        self.notifier = notifier
        self.state_cache = state_cache
        self._queue: asyncio.Queue[LogMessage] = asyncio.Queue(maxsize=10_000)
        self._subs: dict[str, Any] = {}
        self._task: asyncio.Task[None] | None = None
        self._refollow: set[str] = set()
        self.last_applied_at = self.clock.monotonic()
        self.applied_count = 0

    async def start(self) -> None:
        for spec in self.streams:
            await self._follow(spec)
        self._task = asyncio.create_task(self._run(), name="projector")

    async def _follow(self, spec: StreamSpec) -> None:
        old = self._subs.pop(spec.name, None)
        if old is not None:
            with contextlib.suppress(Exception):
                await old.unsubscribe()
        self._subs[spec.name] = await self.log.follow(
            spec.name, spec.subjects[0], self.positions.applied(spec.name) + 1, self._queue.put
        )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for sub in self._subs.values():
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._subs.clear()

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            while len(batch) < BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                self._apply_batch(batch)
            except Exception:
                log.exception("projector failed to apply a batch; retrying from the log")
                for spec in self.streams:
                    self._refollow.add(spec.name)
                await asyncio.sleep(0.5)
            if self._refollow:
                names, self._refollow = self._refollow, set()
                for spec in self.streams:
                    if spec.name in names:
                        try:
                            await self._follow(spec)
                        except Exception:
                            log.exception("re-following %s failed", spec.name)
                            self._refollow.add(spec.name)

    def _apply_batch(self, batch: list[LogMessage]) -> None:
        applied = {spec.name: self.positions.applied(spec.name) for spec in self.streams}
        affected: set[str] = set()
        states = BatchStates(self.conn, self.state_cache)
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            for msg in batch:
                last = applied.get(msg.stream, 0)
                if msg.seq <= last:
                    continue
                if msg.seq != last + 1:
                    log.warning("gap in %s: at %d, got %d", msg.stream, last, msg.seq)
                    self._refollow.add(msg.stream)
                    continue
                if msg.stream in self._refollow:
                    continue
                affected |= apply_message(self.conn, msg, states, self.push_prune)
                applied[msg.stream] = msg.seq
            for stream, seq in applied.items():
                if seq != self.positions.applied(stream):
                    self.conn.execute(
                        "UPDATE positions SET seq = ? WHERE stream = ?", (seq, stream)
                    )
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            if self.state_cache is not None:
                self.state_cache.invalidate(states.touched)
            raise
        if self.state_cache is not None:
            self.state_cache.invalidate(states.touched)
        self.applied_count += len(batch)
        self.last_applied_at = self.clock.monotonic()
        for stream, seq in applied.items():
            self.positions.advance(stream, seq)
        self.notifier.notify(affected)

    def queue_depth(self) -> int:
        return self._queue.qsize()
