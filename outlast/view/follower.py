"""A worker that shares a view without projecting into it: learning what the projector applied.

The projecting worker (another process) records, in the transaction that
applies a batch, one ``commits`` row: how many messages, the users whose
/sync may now show something new and the rooms whose state changed. After
committing it publishes a nudge on a plain NATS subject. A follower, nudged,
reads the rows after the last one it saw together with the ``positions``
table in one read transaction, then drops those rooms from its state cache,
advances its positions (waking read-your-writes waits) and wakes exactly
those users' long-polls.

Why a nudge and a table rather than either alone: the table is durable and
ordered, so nothing is missed, but reading it needs a reason; the nudge is
that reason within a fraction of a millisecond, without polling, but plain
NATS may drop it (a reconnect, a slow consumer). So a follower also looks
every ``FALLBACK_SECONDS``, and only reads further when ``PRAGMA
data_version`` says another connection committed since (that pragma is
answered from the WAL index in shared memory, no query). A follower that
finds rows were pruned before it read them (it fell far behind) drops its
whole state cache and wakes every long-poll instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from collections.abc import Iterable
from typing import Any

from outlast.clock import SYSTEM, Clock
from outlast.log.client import LogClient, Subscription
from outlast.view.notifier import Notifier
from outlast.view.state_cache import StateCache
from outlast.view.store import Positions

log = logging.getLogger(__name__)

FALLBACK_SECONDS = 1.0
# Rows the projector keeps: a follower more than this many commits behind
# starts afresh (whole cache dropped, everyone woken).
KEEP_COMMITS = 10_000


def record_commit(
    conn: sqlite3.Connection, messages: int, users: Iterable[str], rooms: Iterable[str]
) -> int:
    """Inside the projector's transaction: one row saying what this batch changed."""
    cursor = conn.execute(
        "INSERT INTO commits (messages, users, rooms) VALUES (?, ?, ?)",
        (messages, json.dumps(sorted(users)), json.dumps(sorted(rooms))),
    )
    commit_id = int(cursor.lastrowid or 0)
    if commit_id % 256 == 0:
        conn.execute("DELETE FROM commits WHERE id <= ?", (commit_id - KEEP_COMMITS,))
    return commit_id


def last_commit(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT max(id) FROM commits").fetchone()
    return int(row[0] or 0)


class Follower:
    """Keeps a reading worker's positions, state cache and long-polls in step with the view."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        positions: Positions,
        notifier: Notifier,
        state_cache: StateCache | None,
        *,
        clock: Clock = SYSTEM,
    ) -> None:
        self.conn = conn
        self.positions = positions
        self.notifier = notifier
        self.state_cache = state_cache
        self.clock = clock
        self.seen = last_commit(conn)
        self._data_version = -1
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sub: Subscription | None = None
        self.applied_count = 0
        self.last_applied_at = clock.monotonic()

    async def start(self, log_client: LogClient, subject: str) -> None:
        self.catch_up()
        try:
            self._sub = await log_client.subscribe_notices(subject, self._nudged)
        except Exception:  # the fallback timer still follows, only slower
            log.exception("cannot subscribe to the view's nudges; following by polling")
        self._task = asyncio.create_task(self._run(), name="view-follower")

    async def _nudged(self, _: Any) -> None:
        self._wake.set()

    async def stop(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            try:
                await sub.unsubscribe()
            except Exception:  # stopping is best effort
                log.debug("unsubscribing the view's nudges failed", exc_info=True)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task}, timeout=5)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), FALLBACK_SECONDS)
            self._wake.clear()
            try:
                self.catch_up()
            except sqlite3.Error:
                log.exception("reading the shared view's progress failed; trying again")

    def catch_up(self) -> int:
        """Take in every commit since the last one seen; returns how many."""
        version = int(self.conn.execute("PRAGMA data_version").fetchone()[0])
        if version == self._data_version:
            return 0
        self._data_version = version
        self.conn.execute("BEGIN")
        try:
            rows = self.conn.execute(
                "SELECT id, messages, users, rooms FROM commits WHERE id > ? ORDER BY id",
                (self.seen,),
            ).fetchall()
            positions = self.conn.execute("SELECT stream, seq FROM positions").fetchall()
        finally:
            self.conn.execute("COMMIT")
        if not rows:
            return 0
        users: set[str] = set()
        rooms: set[str] = set()
        for row in rows:
            users.update(json.loads(row["users"]))
            rooms.update(json.loads(row["rooms"]))
            self.applied_count += int(row["messages"])
        missed = int(rows[0]["id"]) != self.seen + 1
        self.seen = int(rows[-1]["id"])
        if self.state_cache is not None:
            if missed:
                self.state_cache.clear()
            else:
                self.state_cache.invalidate(rooms)
        for row in positions:
            if int(row["seq"]) > self.positions.applied(row["stream"]):
                self.positions.advance(row["stream"], int(row["seq"]))
        self.last_applied_at = self.clock.monotonic()
        if missed:
            self.notifier.notify_all()
        else:
            self.notifier.notify(users)
        return len(rows)
