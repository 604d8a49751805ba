"""A PostgreSQL view's projector fences each transaction on the positions it expects
(outlast.view.projector), and a follower takes commits in without ``data_version``.

Two projectors on one real PostgreSQL view, as after a lock session died while
its worker lived on: the stale one's next batch must be refused and leave the
view untouched, whatever the other wrote meanwhile.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from outlast.log.client import LogClient, LogMessage
from outlast.view.follower import Follower
from outlast.view.notifier import Notifier
from outlast.view.pg.lock import AdvisoryLock
from outlast.view.projector import LostView, Projector, Sharing
from outlast.view.state_cache import StateCache
from outlast.view.store import Positions, open_db
from tests.view.test_apply import NAMES, STREAMS, SUBJECTS, new_room


@dataclass
class Two:
    dsn: str
    conns: list[sqlite3.Connection]
    projectors: list[Projector]


def projector(conn: sqlite3.Connection, dsn: str) -> Projector:
    return Projector(
        conn,
        LogClient([], name="test"),
        NAMES.streams(),
        Positions(conn),
        Notifier(),
        StateCache(conn),
        sharing=Sharing(AdvisoryLock(dsn), "unused", backend="postgresql"),
    )


@pytest.fixture
def two(pg_dsn: str) -> Iterator[Two]:
    conns = [open_db(":memory:", STREAMS, shared=True, dsn=pg_dsn) for _ in range(3)]
    try:
        yield Two(pg_dsn, conns, [projector(conns[0], pg_dsn), projector(conns[1], pg_dsn)])
    finally:
        for conn in conns:
            conn.close()


def batch(seq: int, data: dict[str, Any]) -> list[LogMessage]:
    return [LogMessage(SUBJECTS.stream, seq, SUBJECTS.state, data)]


def rooms(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])


def test_a_stale_owner_is_refused_and_writes_nothing(two: Two) -> None:
    first, second = two.projectors
    room = {"op": "events", "events": list(new_room())}
    assert first._apply_batch(batch(1, room))[1] is not None
    before = rooms(two.conns[2])
    # The second projector (it took the view over) goes on from the stored positions.
    second.positions.reload(two.conns[1])
    assert second._apply_batch(batch(2, {"op": "unknown-op"}))[1] is not None
    # The first still believes the stream is at 1: its next batch is refused.
    with pytest.raises(LostView):
        first._apply_batch(batch(2, {"op": "unknown-op"}))
    assert not two.conns[0].in_transaction
    seqs = dict(two.conns[2].execute("SELECT stream, seq FROM positions").fetchall())
    assert seqs[SUBJECTS.stream] == 2
    assert rooms(two.conns[2]) == before
    messages = two.conns[2].execute("SELECT sum(messages) FROM commits").fetchone()[0]
    assert messages == 2  # one per applied message: the refused batch left no commit


def test_a_follower_reads_commits_without_data_version(two: Two) -> None:
    first = two.projectors[0]
    reader = two.conns[2]
    positions = Positions(reader)
    follower = Follower(reader, positions, Notifier(), StateCache(reader), probe=False)
    assert follower.catch_up() == 0
    first._apply_batch(batch(1, {"op": "events", "events": list(new_room())}))
    first._apply_batch(batch(2, {"op": "unknown-op"}))
    assert follower.catch_up() == 2
    assert positions.applied(SUBJECTS.stream) == 2
    assert follower.catch_up() == 0
