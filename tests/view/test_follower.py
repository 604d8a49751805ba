"""A worker reading a view another connection projects into (outlast.view.follower).

Two connections on one real view file: the projector's, in shared mode, and
a follower's. The follower must learn positions (read-your-writes), wake
exactly the users a commit names, and never serve a room's state from its
cache once a commit changed it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from outlast.log.client import LogClient, LogMessage
from outlast.view.follower import Commit, Follower, last_commit
from outlast.view.notifier import Notifier
from outlast.view.ownership import ViewLock
from outlast.view.projector import Projector, Sharing
from outlast.view.state_cache import StateCache
from outlast.view.store import Positions, open_db
from tests.view.test_apply import ALICE, BOB, NAMES, ROOM, STREAMS, SUBJECTS, member, new_room

USERS = NAMES.users_stream


@dataclass
class Shared:
    projector: Projector
    follower: Follower
    positions: Positions
    notifier: Notifier
    cache: StateCache
    seqs: dict[str, int]

    def apply(self, *messages: tuple[str, str, dict[str, Any]]) -> Commit:
        """One projector batch of (stream, subject, fact) messages; the commit it recorded."""
        batch = []
        for stream, subject, data in messages:
            self.seqs[stream] = self.seqs.get(stream, 0) + 1
            batch.append(LogMessage(stream, self.seqs[stream], subject, data))
        _, commit = self.projector._apply_batch(batch)
        assert commit is not None
        return commit


def room_events(*events: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    return (SUBJECTS.stream, SUBJECTS.state, {"op": "events", "events": list(events)})


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[Shared]:
    path = tmp_path / "view.sqlite"
    writer = open_db(path, STREAMS, shared=True)
    reader = open_db(path, STREAMS, shared=True)
    try:
        projector = Projector(
            writer,
            LogClient([], name="test"),
            NAMES.streams(),
            Positions(writer),
            Notifier(),
            StateCache(writer),
            sharing=Sharing(ViewLock(path), "unused"),
        )
        positions, notifier, cache = Positions(reader), Notifier(), StateCache(reader)
        follower = Follower(reader, positions, notifier, cache)
        yield Shared(projector, follower, positions, notifier, cache, {})
    finally:
        reader.close()
        writer.close()


async def test_positions_and_wakeups_follow_each_commit(shared: Shared) -> None:
    room_stream = SUBJECTS.stream
    read_your_write = asyncio.create_task(shared.positions.wait_for(room_stream, 1, 5))
    alice = asyncio.create_task(shared.notifier.wait(ALICE, 5))
    bob = asyncio.create_task(shared.notifier.wait(BOB, 0.5))
    await asyncio.sleep(0)
    commit = shared.apply(room_events(*new_room()))
    assert commit.id == 1 and commit.messages == 1
    assert commit.positions[room_stream] == 1 and ALICE in commit.users
    assert shared.positions.applied(room_stream) == 0  # not until the follower reads it
    assert shared.follower.catch_up() == 1
    assert shared.positions.applied(room_stream) == 1
    assert await read_your_write
    assert await alice  # a member of the room: woken
    assert not await bob  # not concerned: left parked until its timeout
    assert shared.follower.applied_count == 1
    assert shared.follower.catch_up() == 0  # nothing committed since


async def test_a_commit_that_changes_a_room_drops_it_from_the_followers_cache(
    shared: Shared,
) -> None:
    shared.apply(room_events(*new_room()))
    shared.follower.catch_up()
    assert (("m.room.member", BOB)) not in shared.cache.get(ROOM)
    shared.apply(room_events(member(BOB, "join")))
    # Cached: the follower has not read the commit yet, so it still serves the old state.
    assert ("m.room.member", BOB) not in shared.cache.get(ROOM)
    bob = asyncio.create_task(shared.notifier.wait(BOB, 5))
    await asyncio.sleep(0)
    shared.follower.catch_up()
    assert shared.cache.get(ROOM)[("m.room.member", BOB)]["content"]["membership"] == "join"
    assert await bob


async def test_several_commits_are_taken_in_at_once(shared: Shared) -> None:
    shared.apply(room_events(*new_room()))
    shared.apply(room_events(member(BOB, "join")))
    shared.apply((USERS, NAMES.user_account_subject(ALICE), {"op": "unknown-op"}))
    assert shared.follower.catch_up() == 3
    assert shared.positions.applied(SUBJECTS.stream) == 2
    assert shared.positions.applied(USERS) == 1
    assert shared.follower.seen == last_commit(shared.projector.conn) == 3


async def test_a_follower_that_missed_pruned_commits_drops_everything_and_wakes_everyone(
    shared: Shared,
) -> None:
    shared.apply(room_events(*new_room()))
    shared.follower.catch_up()
    shared.cache.get(ROOM)
    for _ in range(3):
        shared.apply(room_events(member(BOB, "join")))
    shared.projector.conn.execute("DELETE FROM commits WHERE id <= 3")  # pruned unread
    stranger = asyncio.create_task(shared.notifier.wait("@carol:example.test", 5))
    await asyncio.sleep(0)
    assert shared.follower.catch_up() == 1
    assert await stranger  # who was concerned is unknown: everyone re-checks
    assert shared.positions.applied(SUBJECTS.stream) == 4
    assert ("m.room.member", BOB) in shared.cache.get(ROOM)


async def test_the_next_commit_is_taken_from_its_nudge_and_a_gap_sends_to_the_table(
    shared: Shared,
) -> None:
    room_stream = SUBJECTS.stream
    first = shared.apply(room_events(*new_room()))
    alice = asyncio.create_task(shared.notifier.wait(ALICE, 5))
    await asyncio.sleep(0)
    await shared.follower._nudged(first.to_json())
    await asyncio.sleep(0)  # nudges are taken on the loop's next turn
    assert shared.positions.applied(room_stream) == 1 and shared.follower.seen == 1
    assert await alice
    await shared.follower._nudged(first.to_json())  # again: already seen, ignored
    await asyncio.sleep(0)
    assert shared.follower.seen == 1
    shared.apply(room_events(member(BOB, "join")))  # its nudge is lost
    third = shared.apply(room_events(member(BOB, "leave")))
    await shared.follower._nudged(third.to_json())
    await asyncio.sleep(0)
    assert shared.positions.applied(room_stream) == 1  # not taken out of order
    assert shared.follower.catch_up() == 2  # what the woken follower does: read the table
    assert shared.positions.applied(room_stream) == 3 and shared.follower.seen == 3
    await shared.follower._nudged({"id": "not a commit"})  # garbage: also means "read"
    assert shared.follower.catch_up() == 0


async def test_nudges_arriving_together_are_taken_as_one_batch(shared: Shared) -> None:
    room_stream = SUBJECTS.stream
    first = shared.apply(room_events(*new_room()))
    second = shared.apply(room_events(member(BOB, "join")))
    await shared.follower._nudged(first.to_json())
    await shared.follower._nudged(second.to_json())  # next after the pending one: kept too
    assert shared.follower.seen == 0  # nothing taken before the loop turns
    await asyncio.sleep(0)
    assert shared.follower.seen == 2 and shared.positions.applied(room_stream) == 2
    assert shared.follower.catch_up() == 0  # nothing left for the table


def test_a_batch_of_redeliveries_writes_no_commit(shared: Shared) -> None:
    assert shared.apply(room_events(*new_room())).id == 1
    again = LogMessage(SUBJECTS.stream, 1, SUBJECTS.state, room_events(*new_room())[2])
    assert shared.projector._apply_batch([again]) == (1, None)
    assert last_commit(shared.projector.conn) == 1


def test_a_view_of_its_own_records_no_commits(tmp_path: Path) -> None:
    conn = open_db(tmp_path / "view.sqlite", STREAMS)
    try:
        projector = Projector(
            conn, LogClient([], name="test"), NAMES.streams(), Positions(conn), Notifier()
        )
        taken, commit = projector._apply_batch(
            [LogMessage(SUBJECTS.stream, 1, SUBJECTS.state, room_events(*new_room())[2])]
        )
        assert taken == 1 and commit is None
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert "commits" not in tables
    finally:
        conn.close()
