"""Typing notifications and presence, end to end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from nio import (
    AsyncClient,
    JoinResponse,
    PresenceEvent,
    PresenceGetResponse,
    PresenceSetResponse,
    RoomCreateResponse,
    RoomTypingResponse,
    RoomVisibility,
    SyncResponse,
    TypingNoticeEvent,
)

from tests.e2e.helpers import (
    api,
    close_all,
    eventually,
    expect,
    expect_error,
    forbidden,
    register,
    sync,
)
from tests.servers import OutlastProcess, http_json, start_outlast

V3 = "/_matrix/client/v3"

Pair = tuple[AsyncClient, AsyncClient, str]


async def room_pair(url: str) -> tuple[AsyncClient, AsyncClient, str]:
    alice = await register(url, "alice")
    bob = await register(url, "bob")
    room = expect(
        await alice.room_create(visibility=RoomVisibility.public, name="chat"), RoomCreateResponse
    ).room_id
    expect(await bob.join(room), JoinResponse)
    return alice, bob, room


@pytest.fixture
async def pair(server: OutlastProcess) -> AsyncIterator[Pair]:
    alice, bob, room = await room_pair(server.url)
    try:
        yield alice, bob, room
    finally:
        await close_all(alice, bob)


def typing_in(resp: SyncResponse, room: str) -> list[list[str]]:
    """Every m.typing user list a room's ephemeral events carry (usually zero or one)."""
    if room not in resp.rooms.join:
        return []
    return [e.users for e in resp.rooms.join[room].ephemeral if isinstance(e, TypingNoticeEvent)]


async def sync_waiters(server: OutlastProcess) -> int:
    status, body = await asyncio.to_thread(http_json, "GET", server.url + "/_outlast/health")
    return int(body["sync_waiters"]) if status == 200 else 0


# --- typing -------------------------------------------------------------------------


async def test_typing_shows_and_expires_on_its_own(pair: Pair) -> None:
    alice, bob, room = pair
    first = await sync(alice, timeout=0)
    expect(await bob.room_typing(room, True, timeout=1500), RoomTypingResponse)

    shown = await sync(alice, timeout=5000, since=first.next_batch)
    assert typing_in(shown, room) == [[bob.user_id]]

    # Nobody stops explicitly: the server's timeout ends it, and says so.
    token = shown.next_batch

    async def stopped() -> bool:
        nonlocal token
        resp = await sync(alice, timeout=1000, since=token)
        token = resp.next_batch
        return [] in typing_in(resp, room)

    await eventually(stopped, timeout=20)


async def test_typing_wakes_a_long_poll_and_stops_when_told(
    server: OutlastProcess, pair: Pair
) -> None:
    alice, bob, room = pair
    first = await sync(alice, timeout=0)
    poll = asyncio.create_task(alice.sync(timeout=20_000, since=first.next_batch))
    try:
        await eventually(lambda: sync_waiters(server))
        expect(await bob.room_typing(room, True, timeout=30_000), RoomTypingResponse)
        woke = expect(await asyncio.wait_for(poll, 15), SyncResponse)
    finally:
        poll.cancel()
    assert typing_in(woke, room) == [[bob.user_id]]
    # An initial sync shows who is typing right now.
    status, body = await api(
        "GET", f"{server.url}{V3}/sync", token=alice.access_token, params={"timeout": "0"}
    )
    assert status == 200
    assert {"type": "m.typing", "content": {"user_ids": [bob.user_id]}} in (
        body["rooms"]["join"][room]["ephemeral"]["events"]
    )

    expect(await bob.room_typing(room, False), RoomTypingResponse)
    stopped = await sync(alice, timeout=5000, since=woke.next_batch)
    assert typing_in(stopped, room) == [[]]


async def test_typing_errors(server: OutlastProcess, pair: Pair) -> None:
    alice, bob, room = pair
    carol = await register(server.url, "carol")
    try:
        forbidden(await carol.room_typing(room, True))  # not a member
        url = f"{server.url}{V3}/rooms/{room}/typing/{bob.user_id}"
        status, body = await api("PUT", url, {"typing": True, "timeout": 1000}, alice.access_token)
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN")  # someone else's typing
        mine = f"{server.url}{V3}/rooms/{room}/typing/{alice.user_id}"
        bad: list[tuple[Any, int, str]] = [
            ({"timeout": 1000}, 400, "M_BAD_JSON"),
            ({"typing": "yes"}, 400, "M_BAD_JSON"),
            ({"typing": True, "timeout": "soon"}, 400, "M_BAD_JSON"),
            ({"typing": True, "timeout": -5}, 400, "M_BAD_JSON"),
            (b"[]", 400, "M_BAD_JSON"),
            (b"", 400, "M_NOT_JSON"),
        ]
        for payload, want_status, errcode in bad:
            status, body = await api("PUT", mine, payload, alice.access_token)
            assert (status, body["errcode"]) == (want_status, errcode), payload
        status, body = await api(
            "PUT",
            f"{server.url}{V3}/rooms/nope/typing/{alice.user_id}",
            {"typing": False},
            alice.access_token,
        )
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    finally:
        await close_all(carol)


# --- presence -----------------------------------------------------------------------


async def test_presence_set_get_and_delivered_to_room_mates(pair: Pair) -> None:
    alice, bob, _ = pair
    first = await sync(bob, timeout=0)
    expect(await alice.set_presence("unavailable", "at lunch"), PresenceSetResponse)

    mine = expect(await alice.get_presence(alice.user_id), PresenceGetResponse)
    assert (mine.presence, mine.status_msg) == ("unavailable", "at lunch")
    theirs = expect(await bob.get_presence(alice.user_id), PresenceGetResponse)
    assert (theirs.presence, theirs.status_msg, theirs.currently_active) == (
        "unavailable",
        "at lunch",
        False,
    )
    assert theirs.last_active_ago is not None and theirs.last_active_ago >= 0
    never_set = expect(await alice.get_presence(bob.user_id), PresenceGetResponse)
    assert never_set.presence == "offline"

    later = await sync(bob, timeout=5000, since=first.next_batch)
    seen = [
        (e.user_id, e.presence, e.status_msg)
        for e in later.presence_events
        if isinstance(e, PresenceEvent)
    ]
    assert seen == [(alice.user_id, "unavailable", "at lunch")]

    expect(await alice.set_presence("online"), PresenceSetResponse)
    again = await sync(bob, timeout=5000, since=later.next_batch)
    assert [(e.user_id, e.presence, e.currently_active) for e in again.presence_events] == [
        (alice.user_id, "online", True)
    ]


async def test_presence_errors(server: OutlastProcess, pair: Pair) -> None:
    alice, bob, _ = pair
    stranger = await register(server.url, "stranger")
    try:
        forbidden(await stranger.get_presence(alice.user_id))  # shares no room
        expect_error(await alice.get_presence("@nobody:localhost"), 404, "M_NOT_FOUND")
        expect_error(await alice.set_presence("sleeping"), 400, "M_INVALID_PARAM")
        url = f"{server.url}{V3}/presence/{bob.user_id}/status"
        status, body = await api("PUT", url, {"presence": "online"}, alice.access_token)
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
        mine = f"{server.url}{V3}/presence/{alice.user_id}/status"
        for payload, errcode in (
            ({}, "M_MISSING_PARAM"),
            ({"presence": "online", "status_msg": 3}, "M_BAD_JSON"),
            (b"not json", "M_NOT_JSON"),
        ):
            status, body = await api("PUT", mine, payload, alice.access_token)
            assert (status, body["errcode"]) == (400, errcode), payload
        status, body = await api(
            "GET", f"{server.url}{V3}/presence/not-a-user/status", token=alice.access_token
        )
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    finally:
        await close_all(stranger)


@pytest.fixture
def presence_off(tmp_path: Path) -> Iterator[OutlastProcess]:
    # The test config's extra text goes after [log]; a new table header ends that section.
    proc = start_outlast(tmp_path / "quiet", log_extra="\n[presence]\nenabled = false\n")
    try:
        yield proc
    finally:
        proc.stop()


async def test_presence_can_be_turned_off(presence_off: OutlastProcess) -> None:
    alice, bob, _ = await room_pair(presence_off.url)
    try:
        first = await sync(bob, timeout=0)
        expect(await alice.set_presence("online", "here"), PresenceSetResponse)
        got = expect(await bob.get_presence(alice.user_id), PresenceGetResponse)
        assert (got.presence, got.status_msg) == ("offline", None)
        later = await sync(bob, timeout=0, since=first.next_batch)
        assert later.presence_events == []
    finally:
        await close_all(alice, bob)
