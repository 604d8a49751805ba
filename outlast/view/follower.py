"""A worker that shares a view without projecting into it: learning what the projector applied.

The projecting worker (another process) records, in the transaction that
applies a batch, one ``commits`` row: how many messages, the users whose
/sync may now show something new and the rooms whose state changed. After
committing it publishes the same commit, with the positions it reached, on
a plain NATS subject. A follower then drops those rooms from its state
cache, advances its positions (waking read-your-writes waits) and wakes
exactly those users' long-polls.

Why a nudge and a table rather than either alone: the table is durable and
ordered, so nothing is missed; the nudge arrives within a fraction of a
millisecond, without polling, and when it is the next commit the follower
needs no read at all. But plain NATS may drop a message (a reconnect, a slow
consumer): a nudge that skips ids, or none for ``FALLBACK_SECONDS`` while
``PRAGMA data_version`` says another connection committed, makes the
follower read the rows after the last one it saw, with the ``positions``
table, in one read transaction. A follower that finds rows were pruned
before it read them (it fell far behind) drops its whole state cache and
wakes every long-poll instead.

On PostgreSQL (``probe=False``) there is no ``data_version``: the fallback
simply reads the rows after the last one seen, an index range that is empty
when nothing happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Commit:
    """What one projector transaction changed, as followers need it."""

    id: int
    messages: int
    users: frozenset[str]
    rooms: frozenset[str]
    positions: dict[str, int]  # every followed stream's applied sequence after it

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "messages": self.messages,
            "users": sorted(self.users),
            "rooms": sorted(self.rooms),
            "positions": self.positions,
        }

    @staticmethod
    def from_json(raw: Any) -> Commit | None:
        """The nudge's commit, or None when it is not one (then the table is read)."""
        # Only this deployment's projector publishes here: check the shape, cheaply.
        try:
            users, rooms = raw["users"], raw["rooms"]
            if not isinstance(users, list) or not isinstance(rooms, list):
                return None
            return Commit(
                id=int(raw["id"]),
                messages=int(raw["messages"]),
                users=frozenset(users),
                rooms=frozenset(rooms),
                positions={str(k): int(v) for k, v in raw["positions"].items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None


def record_commit(
    conn: sqlite3.Connection,
    messages: int,
    users: Iterable[str],
    rooms: Iterable[str],
    positions: dict[str, int],
) -> Commit:
    """Inside the projector's transaction: one row saying what this batch changed."""
    commit_users, commit_rooms = frozenset(users), frozenset(rooms)
    # RETURNING rather than lastrowid: a PostgreSQL view's connection has no lastrowid.
    row = conn.execute(
        "INSERT INTO commits (messages, users, rooms) VALUES (?, ?, ?) RETURNING id",
        (messages, json.dumps(sorted(commit_users)), json.dumps(sorted(commit_rooms))),
    ).fetchone()
    commit_id = int(row[0])
    if commit_id % 256 == 0:
        conn.execute("DELETE FROM commits WHERE id <= ?", (commit_id - KEEP_COMMITS,))
    return Commit(commit_id, messages, commit_users, commit_rooms, dict(positions))


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
        probe: bool = True,
    ) -> None:
        self.probe = probe  # SQLite: skip the read when ``data_version`` did not change
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
        self._pending: list[Commit] = []  # nudges received, not yet taken
        self.applied_count = 0
        self.last_applied_at = clock.monotonic()

    async def start(self, log_client: LogClient, subject: str) -> None:
        self.catch_up()
        try:
            self._sub = await log_client.subscribe_notices(subject, self._nudged)
        except Exception:  # the fallback timer still follows, only slower
            log.exception("cannot subscribe to the view's nudges; following by polling")
        self._task = asyncio.create_task(self._run(), name="view-follower")

    async def _nudged(self, notice: Any) -> None:
        commit = Commit.from_json(notice)
        last = self._pending[-1].id if self._pending else self.seen
        if commit is not None and commit.id == last + 1:
            # The next one: no read needed. Nudges that arrive together (the
            # projector commits faster than this worker's loop turns) are taken
            # as one batch on the loop's next turn: one cache invalidation, one
            # advance per stream and one wake-up per user instead of one each.
            self._pending.append(commit)
            if len(self._pending) == 1:
                asyncio.get_running_loop().call_soon(self._take_pending)
        elif commit is None or commit.id > last:
            self._wake.set()  # one or more nudges lost: read the table

    def _take_pending(self) -> None:
        pending = [c for c in self._pending if c.id > self.seen]  # the table may have been read
        self._pending = []
        if pending and pending[0].id == self.seen + 1:
            self._take(pending, pending[-1].positions, missed=False)
        elif pending:
            self._wake.set()  # not the next one after all: read the table

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
            except Exception:  # SQLite or PostgreSQL: the next round reads again
                log.exception("reading the shared view's progress failed; trying again")

    def catch_up(self) -> int:
        """Take in every commit since the last one seen, from the table; returns how many."""
        if self.probe:
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
        commits = [
            Commit(
                int(row[0]),
                int(row[1]),
                frozenset(json.loads(row[2])),
                frozenset(json.loads(row[3])),
                {},
            )
            for row in rows
        ]
        missed = commits[0].id != self.seen + 1
        self._take(commits, {str(r[0]): int(r[1]) for r in positions}, missed=missed)
        return len(commits)

    def _take(self, commits: list[Commit], positions: dict[str, int], *, missed: bool) -> None:
        """Caches first, then positions (which release waiting requests), then long-polls."""
        users: set[str] = set()
        rooms: set[str] = set()
        for commit in commits:
            users |= commit.users
            rooms |= commit.rooms
            self.applied_count += commit.messages
        self.seen = commits[-1].id
        if self.state_cache is not None:
            if missed:
                self.state_cache.clear()
            else:
                self.state_cache.invalidate(rooms)
        for stream, seq in positions.items():
            if seq > self.positions.applied(stream):
                self.positions.advance(stream, seq)
        self.last_applied_at = self.clock.monotonic()
        if missed:
            self.notifier.notify_all()
        else:
            self.notifier.notify(users)
