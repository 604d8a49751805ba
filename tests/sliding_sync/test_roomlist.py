"""The room list reads, against the view a real server's log projects to
(tests/log/fixtures/log-v1.jsonl): no server, a real SQLite view."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from outlast.core.sliding.request import parse_request
from outlast.core.tokens import SyncToken
from outlast.sliding_sync import queries as sliding_queries
from outlast.sliding_sync.roomlist import changed_rooms, user_rooms
from tests.log.fixture_log import load, project

STREAMS = ["OUTLAST_USERS", "OUTLAST_DIRECTORY", "OUTLAST_ROOMS_0", "OUTLAST_ROOMS_1"]
ROOM = "!HcEEqslNZvWvFzyVpO:localhost"
ALICE, BOB = "@alice:localhost", "@bob:localhost"
REQUEST = parse_request({"lists": {"all": {"ranges": [[0, 9]], "timeline_limit": 1}}})


def at(rooms_0: int) -> SyncToken:
    return SyncToken((51, 3, rooms_0, 0))


@pytest.fixture(scope="module")
def conn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sqlite3.Connection]:
    view = project(load(), Path(tmp_path_factory.mktemp("view")) / "view.sqlite")
    yield view
    view.close()


def test_activity_is_the_latest_bumping_event_up_to_the_snapshot(conn: sqlite3.Connection) -> None:
    rooms = user_rooms(conn, STREAMS, ALICE, REQUEST, at(16))
    assert list(rooms) == [ROOM]
    entry = rooms[ROOM].entry
    assert entry.membership == "join"
    # The last message is at seq 6; the redaction, topic and members after it do not bump.
    last_message = conn.execute(
        "SELECT json_extract(json, '$.origin_server_ts') FROM events WHERE room_id = ? AND seq = 6",
        (ROOM,),
    ).fetchone()[0]
    assert entry.activity == last_message
    # Read at a position before that message, the one before it is the latest.
    assert (sliding_queries.last_bump_ts(conn, ROOM, 5) or 0) < last_message
    # A membership applied after the snapshot waits for the next pass.
    assert user_rooms(conn, STREAMS, ALICE, REQUEST, at(12)) == {}


def test_a_forgotten_room_is_not_listed(conn: sqlite3.Connection) -> None:
    assert user_rooms(conn, STREAMS, BOB, REQUEST, at(16)) == {}


def test_changed_rooms_are_those_with_events_after_the_pos(conn: sqlite3.Connection) -> None:
    rooms = user_rooms(conn, STREAMS, ALICE, REQUEST, at(16))
    assert changed_rooms(conn, STREAMS, rooms, at(8), at(16)) == {ROOM}
    assert changed_rooms(conn, STREAMS, rooms, at(16), at(16)) == set()
    assert changed_rooms(conn, STREAMS, rooms, None, at(16)) == set()
