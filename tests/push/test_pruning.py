"""Pruning push_actions on a real site: rows go after read receipts and with age, while
/sync counts and GET /notifications answer as the remaining rows say, and a view rebuilt
from the log (a second site on the same log) forgets the same rows."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from nio import AsyncClient, JoinResponse, RoomCreateResponse, RoomInviteResponse

from outlast.site import Site
from tests.e2e.helpers import close_all, expect, register, sync
from tests.push.test_counts import counts, plain, send
from tests.push.test_notifications import notifications
from tests.testrig import new_prefix, running_site

# Every notification is old enough at once; prune on every message.
KEEP_TWO_READ = """
[push]
prune_every = 1
prune_min_age_seconds = 0.0
prune_keep_read = 2
"""
READ_FOR_A_SECOND = """
[push]
prune_every = 1
prune_min_age_seconds = 0.0
prune_max_age_seconds = 1.0
"""

Trio = tuple[AsyncClient, AsyncClient, AsyncClient, str]


@asynccontextmanager
async def group_room(site: Site) -> AsyncIterator[Trio]:
    """Bob's room with Alice and Carol (three members: every message notifies)."""
    url = f"http://127.0.0.1:{site.port}"
    alice, bob, carol = [await register(url, name) for name in ("alice", "bob", "carol")]
    try:
        room = expect(await bob.room_create(name="chatter"), RoomCreateResponse).room_id
        for member in (alice, carol):
            expect(await bob.room_invite(room, member.user_id), RoomInviteResponse)
            expect(await member.join(room), JoinResponse)
        yield alice, bob, carol, room
    finally:
        await close_all(alice, bob, carol)


def stored(site: Site, user_id: str, room: str) -> list[str]:
    """The event ids of the user's rows in the room at this site's view, oldest first."""
    assert site.ctx is not None
    conn: sqlite3.Connection = site.ctx.conn
    rows = conn.execute(
        "SELECT e.event_id FROM push_actions p JOIN events e"
        " ON e.stream = p.stream AND e.seq = p.seq AND e.idx = p.idx"
        " WHERE p.user_id = ? AND p.room_id = ? ORDER BY p.seq, p.idx",
        (user_id, room),
    )
    return [str(r[0]) for r in rows]


def listed(body: dict[str, Any]) -> list[tuple[str, bool]]:
    return [(n["event"]["event_id"], n["read"]) for n in body["notifications"]]


async def test_read_rows_past_keep_read_go_and_answers_stay_right(
    shared_nats: str, tmp_path: Path
) -> None:
    prefix = new_prefix()
    async with (
        running_site(tmp_path / "a", shared_nats, prefix=prefix, extra_toml=KEEP_TWO_READ) as a,
        group_room(a) as (alice, bob, carol, room),
    ):
        sent = [await send(bob, room, plain(f"message {n}")) for n in range(1, 6)]
        assert counts(await sync(alice, timeout=0), room) == (5, 0)
        await alice.room_read_markers(room, sent[3], read_event=sent[3])
        assert counts(await sync(alice, timeout=0), room) == (1, 0)
        # The receipt alone prunes nothing; the next notifying event in the room does.
        # (Each member's first row is their invite: .m.rule.invite_for_me.)
        assert stored(a, alice.user_id, room)[1:] == sent
        sent.append(await send(bob, room, plain("message 6")))

        assert counts(await sync(alice, timeout=0), room) == (2, 0)
        assert counts(await sync(carol, timeout=0), room) == (6, 0)
        # Read: the invite and 1..4, the newest two of them stay. Unread 5, 6 stay.
        # Carol read nothing: all hers stay.
        assert stored(a, alice.user_id, room) == sent[2:]
        assert stored(a, carol.user_id, room)[1:] == sent
        expected = [(sent[5], False), (sent[4], False), (sent[3], True), (sent[2], True)]
        assert listed(await notifications(alice)) == expected

        # A second site on the same log builds its view from scratch: same rows, same answers.
        async with running_site(
            tmp_path / "b", shared_nats, prefix=prefix, extra_toml=KEEP_TWO_READ
        ) as b:
            assert stored(b, alice.user_id, room) == sent[2:]
            assert stored(b, carol.user_id, room) == stored(a, carol.user_id, room)
            at_b = AsyncClient(f"http://127.0.0.1:{b.port}", alice.user_id)
            at_b.access_token, at_b.user_id = alice.access_token, alice.user_id
            try:
                assert listed(await notifications(at_b)) == expected
                assert counts(await sync(at_b, timeout=0), room) == (2, 0)
            finally:
                await at_b.close()


async def test_read_rows_older_than_max_age_go_unread_ones_stay(
    shared_nats: str, tmp_path: Path
) -> None:
    async with (
        running_site(tmp_path / "site", shared_nats, extra_toml=READ_FOR_A_SECOND) as site,
        group_room(site) as (alice, bob, _, room),
    ):
        sent = [await send(bob, room, plain(f"message {n}")) for n in range(1, 4)]
        await alice.room_read_markers(room, sent[1], read_event=sent[1])
        # Log time moves with the events: the next one is more than a second later.
        await asyncio.sleep(1.5)
        sent.append(await send(bob, room, plain("a second later")))
        assert counts(await sync(alice, timeout=0), room) == (2, 0)
        # The invite, 1 and 2 were read and are now older than a second; 3 is as old
        # but unread.
        assert stored(site, alice.user_id, room) == sent[2:]
        assert listed(await notifications(alice)) == [(sent[3], False), (sent[2], False)]
