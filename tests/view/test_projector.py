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
from outlast.view.projector import BATCH, Projector
from outlast.view.store import Positions, open_db
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
