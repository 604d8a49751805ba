"""The projector's batch transaction: all of a batch, with its positions, or none of it.

SQLite ends a transaction by itself on some errors (a full disk, an I/O error).
A disk-full drill lost 17 messages at one site's view when push evaluation,
which logs and swallows its own failures, swallowed such an error: the rest
of the batch then ran in autocommit and the positions moved past events that
had been rolled back. Here a trigger that ends the transaction from inside
push evaluation (``RAISE(ROLLBACK)``, what SQLITE_FULL does) stands in for the
full disk, on a real view file.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from outlast.log.client import LogClient, LogMessage
from outlast.view.notifier import Notifier
from outlast.view.projector import BATCH, SLICE_SECONDS, Projector
from outlast.view.store import Positions, open_db
from tests.clock import ManualClock
from tests.view.test_apply import ALICE, BOB, NAMES, STREAMS, SUBJECTS, member, message, new_room

FULL_DISK = (
    "CREATE TRIGGER full_disk BEFORE INSERT ON push_actions"
    " BEGIN SELECT RAISE(ROLLBACK, 'database or disk is full'); END"
)


def _batch(seq: int, *events: dict[str, object]) -> list[LogMessage]:
    fact = {"op": "events", "events": list(events)}
    return [LogMessage(SUBJECTS.stream, seq, SUBJECTS.state, fact)]


def test_a_transaction_ended_inside_push_evaluation_moves_no_position(tmp_path: Path) -> None:
    conn = open_db(tmp_path / "view.sqlite", STREAMS)
    try:
        positions = Positions(conn)
        projector = Projector(
            conn, LogClient([], name="test"), NAMES.streams(), positions, Notifier()
        )
        projector._apply_batch(_batch(1, *new_room(), member(BOB, "join")))
        said = message("are you there?", sender=BOB)  # notifies Alice: a push row

        conn.execute(FULL_DISK)
        with pytest.raises(Exception):  # noqa: B017 - whichever error, nothing may move
            projector._apply_batch(_batch(2, said))
        stored = conn.execute("SELECT seq FROM positions WHERE stream = ?", (SUBJECTS.stream,))
        assert stored.fetchone()[0] == 1, "the position moved past a rolled-back event"
        assert positions.applied(SUBJECTS.stream) == 1
        found = conn.execute("SELECT count(*) FROM events WHERE event_id = ?", (said["event_id"],))
        assert found.fetchone()[0] == 0

        conn.execute("DROP TRIGGER full_disk")  # space again: the retry applies it whole
        projector._apply_batch(_batch(2, said))
        assert positions.applied(SUBJECTS.stream) == 2
        found = conn.execute("SELECT count(*) FROM events WHERE event_id = ?", (said["event_id"],))
        assert found.fetchone()[0] == 1
        notified = conn.execute(
            "SELECT count(*) FROM push_actions p JOIN events e ON e.stream = p.stream"
            " AND e.seq = p.seq AND e.idx = p.idx WHERE p.user_id = ? AND e.event_id = ?",
            (ALICE, said["event_id"]),
        )
        assert notified.fetchone()[0] == 1
    finally:
        conn.close()


async def test_a_long_backlog_lets_the_event_loop_run_between_batches(tmp_path: Path) -> None:
    """While the projector works through a queued backlog, other tasks (the nats client's
    reads and pings, requests) run between its batches, not only once the queue is empty."""
    conn = open_db(tmp_path / "view.sqlite", STREAMS)
    try:
        positions = Positions(conn)
        projector = Projector(
            conn, LogClient([], name="test"), NAMES.streams(), positions, Notifier()
        )
        backlog = [*_batch(1, *new_room(), member(BOB, "join"))]
        total = 3 * BATCH + 1
        for seq in range(2, total + 1):
            backlog += _batch(seq, message(f"m{seq}", sender=BOB))
        for msg in backlog:
            projector._queue.put_nowait(msg)
        seen: list[int] = []

        async def probe() -> None:
            seen.append(positions.applied(SUBJECTS.stream))

        run = asyncio.create_task(projector._run())
        probing = asyncio.create_task(probe())  # ready at once, behind the projector
        async with asyncio.timeout(60):
            while positions.applied(SUBJECTS.stream) < total:
                await asyncio.sleep(0.01)
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run
        await probing
        assert seen and seen[0] < total, seen
    finally:
        conn.close()


class TickingClock(ManualClock):
    """Every reading is ``step`` seconds after the last: applying takes time."""

    def __init__(self, step: float) -> None:
        super().__init__()
        self.step = step

    def monotonic(self) -> float:
        self.advance(self.step)
        return super().monotonic()


def test_a_batch_ends_when_its_time_is_spent_and_the_rest_waits_its_turn(
    tmp_path: Path,
) -> None:
    """A long batch held the event loop for 0.25-0.5 s (the nats client's reads, heartbeats
    and JetStream answers waited): a batch now stops once its slice of time is spent,
    commits what it applied with its positions, and leaves the rest to the next one."""
    conn = open_db(tmp_path / "view.sqlite", STREAMS)
    try:
        positions = Positions(conn)
        clock = TickingClock(SLICE_SECONDS / 4)
        projector = Projector(
            conn, LogClient([], name="test"), NAMES.streams(), positions, Notifier(), clock=clock
        )
        backlog = [*_batch(1, *new_room(), member(BOB, "join"))]
        for seq in range(2, 41):
            backlog += _batch(seq, message(f"m{seq}", sender=BOB))
        slices = []
        while backlog:
            taken, _ = projector._apply_batch(backlog, until=clock.monotonic() + SLICE_SECONDS)
            assert 1 <= taken < 40, taken
            del backlog[:taken]
            slices.append(taken)
            stored = conn.execute("SELECT seq FROM positions WHERE stream = ?", (SUBJECTS.stream,))
            assert stored.fetchone()[0] == sum(slices)  # each slice committed, positions too
        assert len(slices) > 5, slices
        assert positions.applied(SUBJECTS.stream) == 40
        count = conn.execute("SELECT count(*) FROM events WHERE type = 'm.room.message'")
        assert count.fetchone()[0] == 39
        # Without a deadline (the log fixture, a caller applying one message) it takes all.
        more = [msg for seq in range(41, 51) for msg in _batch(seq, message(f"m{seq}"))]
        assert projector._apply_batch(more)[0] == 10
    finally:
        conn.close()
