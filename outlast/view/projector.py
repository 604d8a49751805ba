"""The projector: the view's only writer. Consumes every stream, applies in order.

Messages from all streams meet in one queue; one task drains it in batches,
each batch a single SQLite transaction that also records the applied
sequences. A redelivered message (sequence at or below the applied one) is
skipped; a gap (a sequence beyond applied + 1) means the consumer lost its
place, so that stream is re-followed from the applied position.

A view shared by a site's workers (``serve --workers N``, :class:`Sharing`)
has one projector at a time: the worker holding the view's lock file
(outlast/view/ownership.py). Every other worker's projector only follows
what the owner commits (outlast/view/follower.py) while it waits for the
lock; when the owner dies the kernel hands the lock to one of them, which
takes in the owner's last commits and continues from the positions stored
in the view, so nothing is applied twice or skipped.

A PostgreSQL view (``[view] backend = "postgresql"``) is always shared, by
workers on any number of machines; its owner holds the database's advisory
lock (outlast/view/pg/lock.py). Since a lock session can die while its
worker lives on (a cut connection), each of that owner's transactions first
locks the ``positions`` rows and checks they are where it left them: if
another worker wrote meanwhile, the batch is rolled back and this worker goes
back to following.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from outlast.clock import SYSTEM, Clock
from outlast.core.push_prune import DEFAULT as DEFAULT_PRUNE
from outlast.core.push_prune import PrunePolicy
from outlast.log.client import Following, LogClient, LogMessage
from outlast.log.names import StreamSpec
from outlast.view.apply import apply_message
from outlast.view.follower import Commit, Follower, record_commit
from outlast.view.notifier import Notifier
from outlast.view.ownership import Ownership
from outlast.view.state_cache import BatchStates, StateCache
from outlast.view.store import Positions

log = logging.getLogger(__name__)

BATCH = 512
# A batch also ends once it has applied for this long. Applying runs on the event
# loop; a whole batch of 512 in rooms with push rules took 0.25-0.5 s, and the loop
# then read at most one socket buffer of the nats connection per batch. In a big
# replay that kept the streams' data (and, behind it, idle streams' heartbeats and
# JetStream API answers) waiting in the socket: the nats client re-created ordered
# consumers it thought dead 300 times in one 100 k rebuild, and asking JetStream
# anything timed out (bench/RESULTS.md, "A replay that starved its own connection").
SLICE_SECONDS = 0.05
# Messages delivered by the streams' consumers, not yet applied. While it is full,
# the nats client holds what arrives and answers JetStream's flow control only
# later (it looks every 0.25 s), so each stream's delivery stalls: with 10,000 a
# 100 k rebuild took 52-54 s, with 50,000 45.5-45.9 s, for a peak of 228 MB
# against 182 MB (bench/RESULTS.md, "A replay that starved its own connection").
QUEUE_BOUND = 50_000

# Between attempts to start projecting after taking a shared view over.
RETRY_SECONDS = 0.5


@dataclass(frozen=True)
class Sharing:
    """A view several worker processes use: its lock, and the subject its owner nudges on."""

    lock: Ownership
    subject: str
    backend: str = "sqlite"  # "postgresql": fenced transactions, no PRAGMAs

    @property
    def fenced(self) -> bool:
        return self.backend == "postgresql"


class LostView(RuntimeError):
    """Another worker wrote the view since this one's last commit: it is no longer the owner."""


class TransactionLost(RuntimeError):
    """The database rolled the projector's transaction back by itself mid-batch."""


# How often a PostgreSQL view's owner checks that its lock session still answers.
LOCK_CHECK_SECONDS = 5.0


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
        sharing: Sharing | None = None,
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
        self._queue: asyncio.Queue[LogMessage] = asyncio.Queue(maxsize=QUEUE_BOUND)
        self._subs: dict[str, Following] = {}
        self._task: asyncio.Task[None] | None = None
        self._refollow: set[str] = set()
        self._last_applied_at = self.clock.monotonic()
        self._applied_count = 0
        self.sharing = sharing
        self._follower: Follower | None = None
        self._takeover: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._demoting: asyncio.Task[None] | None = None

    @property
    def owns(self) -> bool:
        """Whether this worker projects (always, unless the view is shared and another does)."""
        return self.sharing is None or (self.sharing.lock.held and self._follower is None)

    @property
    def last_applied_at(self) -> float:
        """When the view last moved (as seen by this worker)."""
        if self._follower is not None:
            return self._follower.last_applied_at
        return self._last_applied_at

    @property
    def applied_count(self) -> int:
        if self._follower is not None:
            return self._follower.applied_count
        return self._applied_count

    async def start(self) -> None:
        """Project, or (a shared view another worker owns) follow and wait to take over."""
        if self.sharing is None or self.sharing.lock.try_acquire():
            await self._project()
        elif self._follower is None:
            if not self.sharing.fenced:
                self.conn.execute("PRAGMA query_only=1")  # a follower never writes
            self._follower = Follower(
                self.conn,
                self.positions,
                self.notifier,
                self.state_cache,
                clock=self.clock,
                probe=not self.sharing.fenced,
            )
            await self._follower.start(self.log, self.sharing.subject)
            self._takeover = asyncio.create_task(self._take_over(), name="view-takeover")

    async def _project(self) -> None:
        if self.sharing is not None:
            if not self.sharing.fenced:
                self.conn.execute("PRAGMA query_only=0")
            # The lock is ours: the view's positions are final, whoever wrote them.
            self.positions.reload(self.conn)
        for spec in self.streams:
            await self._follow(spec)
        self._task = asyncio.create_task(self._run(), name="projector")
        if self.sharing is not None and self.sharing.fenced and self._watch is None:
            self._watch = asyncio.create_task(self._watch_lock(), name="view-lock-watch")

    async def _watch_lock(self) -> None:
        """A PostgreSQL owner whose lock session died stops projecting: someone else may."""
        assert self.sharing is not None
        alive = getattr(self.sharing.lock, "alive", None)
        while alive is not None:
            await asyncio.sleep(LOCK_CHECK_SECONDS)
            if not await alive():
                log.warning("the view's lock session is gone; this worker stops projecting")
                self._watch = None
                await self._demote()
                return

    async def _demote(self) -> None:
        """Stop writing, let go of the lock and follow whoever projects now."""
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        watch, self._watch = self._watch, None
        if watch is not None and watch is not asyncio.current_task():
            watch.cancel()
        await self._unfollow_all()
        while not self._queue.empty():
            self._queue.get_nowait()
        assert self.sharing is not None
        self.sharing.lock.release()
        self.positions.reload(self.conn)
        await self.start()

    async def _take_over(self) -> None:
        assert self.sharing is not None
        await self.sharing.lock.acquire()
        follower, self._follower = self._follower, None
        assert follower is not None
        await follower.stop()
        follower.catch_up()  # the last commits of the previous owner: caches, waits, long-polls
        self._applied_count = follower.applied_count
        self._last_applied_at = follower.last_applied_at
        log.warning("this worker (pid %d) now projects the shared view", os.getpid())
        while True:
            try:
                await self._project()
                return
            except Exception:  # JetStream may be settling; the lock stays ours meanwhile
                log.exception("starting to project after taking the view over failed; retrying")
                await asyncio.sleep(RETRY_SECONDS)

    async def _unfollow_all(self) -> None:
        """Stop following every stream, all at once: each closes a connection of its own."""
        subs, self._subs = list(self._subs.values()), {}
        await asyncio.gather(*(sub.unsubscribe() for sub in subs), return_exceptions=True)

    async def _follow(self, spec: StreamSpec) -> None:
        old = self._subs.pop(spec.name, None)
        if old is not None:
            with contextlib.suppress(Exception):
                await old.unsubscribe()
        self._subs[spec.name] = await self.log.follow(
            spec.name, spec.subjects[0], self.positions.applied(spec.name) + 1, self._queue.put
        )

    async def stop(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.cancel()
        takeover, self._takeover = self._takeover, None
        if takeover is not None:
            takeover.cancel()
            await asyncio.wait({takeover}, timeout=5)
        follower, self._follower = self._follower, None
        if follower is not None:
            await follower.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._unfollow_all()
        if self.sharing is not None:
            self.sharing.lock.release()  # after the last write: the next owner starts now

    async def _run(self) -> None:
        batch: list[LogMessage] = []  # taken from the queue, not yet applied
        while True:
            if not batch:
                batch.append(await self._queue.get())
            while len(batch) < BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                taken, committed = self._apply_batch(
                    batch, until=self.clock.monotonic() + SLICE_SECONDS
                )
                del batch[:taken]
                if committed is not None:
                    await self._nudge(committed)
                # Let the loop run between batches. A non-empty queue hands out its next
                # message without suspending, so a catching-up view worked through up to
                # its queued messages (5 s and more) without a pause: requests,
                # the nats client's reads and pings all waited behind it.
                await asyncio.sleep(0)
            except LostView:
                log.warning("another worker projects the view now; this one follows it")
                self._demoting = asyncio.create_task(self._demote(), name="view-demote")
                return
            except Exception:
                log.exception("projector failed to apply a batch; retrying from the log")
                batch.clear()
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

    async def _nudge(self, commit: Commit) -> None:
        """Tell the site's other workers what the view's last commit changed."""
        assert self.sharing is not None
        try:
            await self.log.publish_notice(self.sharing.subject, commit.to_json())
        except Exception:  # they look by themselves every second
            log.debug("nudging the view's followers failed", exc_info=True)

    def _apply_batch(
        self, batch: list[LogMessage], until: float | None = None
    ) -> tuple[int, Commit | None]:
        """Apply and commit the batch, or its first messages once the clock passes ``until``.

        Returns how many messages of the batch it took, and the ``commits`` row
        written (shared views only).
        """
        applied = {spec.name: self.positions.applied(spec.name) for spec in self.streams}
        affected: set[str] = set()
        commit: Commit | None = None
        count = 0
        states = BatchStates(self.conn, self.state_cache)
        fenced = self.sharing is not None and self.sharing.fenced
        self.conn.execute("BEGIN" if fenced else "BEGIN IMMEDIATE")
        try:
            if fenced:
                self._fence(applied)
            taken = 0
            for msg in batch:
                if taken and until is not None and self.clock.monotonic() >= until:
                    break
                taken += 1
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
                self._still_in_transaction()
                applied[msg.stream] = msg.seq
                count += 1
            self._still_in_transaction()
            for stream, seq in applied.items():
                if seq != self.positions.applied(stream):
                    self.conn.execute(
                        "UPDATE positions SET seq = ? WHERE stream = ?", (seq, stream)
                    )
            if self.sharing is not None and count:
                commit = record_commit(self.conn, count, affected, states.touched, applied)
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:  # SQLite may have rolled it back already
                self.conn.execute("ROLLBACK")
            if self.state_cache is not None:
                self.state_cache.invalidate(states.touched)
            raise
        if self.state_cache is not None:
            self.state_cache.invalidate(states.touched)
        self._applied_count += taken
        self._last_applied_at = self.clock.monotonic()
        for stream, seq in applied.items():
            self.positions.advance(stream, seq)
        self.notifier.notify(affected)
        return taken, commit

    def _still_in_transaction(self) -> None:
        """SQLite ends a transaction by itself on some errors (a full disk, an I/O
        error); anything written after that would autocommit on its own, positions
        included. Whoever swallowed such an error, the batch stops here."""
        if not self.conn.in_transaction:
            raise TransactionLost("the view's transaction ended under the projector")

    def _fence(self, expected: dict[str, int]) -> None:
        """Inside the transaction: lock the positions and check nobody moved them since."""
        rows = self.conn.execute("SELECT stream, seq FROM positions FOR UPDATE").fetchall()
        found = {str(row[0]): int(row[1]) for row in rows}
        moved = [s for s, seq in expected.items() if found.get(s, 0) != seq]
        if moved:
            raise LostView(f"positions of {moved[:3]} moved under this worker")

    def queue_depth(self) -> int:
        return self._queue.qsize()
