"""/sync end to end: long-polling, filters, limited timelines, invites, leaves, full state."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from nio import (
    AsyncClient,
    JoinResponse,
    RoomCreateResponse,
    RoomInviteResponse,
    RoomKickResponse,
    RoomLeaveResponse,
    RoomPutStateResponse,
    RoomSendResponse,
    RoomVisibility,
    SyncResponse,
    UploadFilterResponse,
)

from tests.e2e.helpers import api, close_all, eventually, expect, register, sync, text
from tests.servers import OutlastProcess, http_json

V3 = "/_matrix/client/v3"


@pytest.fixture
async def pair(server: OutlastProcess) -> AsyncIterator[tuple[AsyncClient, AsyncClient, str]]:
    alice = await register(server.url, "alice")
    bob = await register(server.url, "bob")
    try:
        room = expect(
            await alice.room_create(visibility=RoomVisibility.public, name="sync"),
            RoomCreateResponse,
        ).room_id
        expect(await bob.join(room), JoinResponse)
        yield alice, bob, room
    finally:
        await close_all(alice, bob)


async def send(client: AsyncClient, room: str, body: str) -> str:
    resp = await client.room_send(room, "m.room.message", text(body))
    return str(expect(resp, RoomSendResponse).event_id)


def timeline_ids(resp: SyncResponse, room: str) -> list[str]:
    return [e.event_id for e in resp.rooms.join[room].timeline.events]


async def sync_waiters(server: OutlastProcess) -> int:
    status, body = await asyncio.to_thread(http_json, "GET", server.url + "/_outlast/health")
    return int(body["sync_waiters"]) if status == 200 else 0


async def test_long_poll_wakes_on_message(
    server: OutlastProcess, pair: tuple[AsyncClient, AsyncClient, str]
) -> None:
    alice, bob, room = pair
    first = await sync(bob, timeout=0)
    started = time.monotonic()
    poll = asyncio.create_task(bob.sync(timeout=20_000, since=first.next_batch))
    try:
        # Wait until the server has parked the long-poll, then send.
        await eventually(lambda: sync_waiters(server))
        event_id = await send(alice, room, "wake up")
        resp = expect(await asyncio.wait_for(poll, 30), SyncResponse)
    finally:
        poll.cancel()
    assert time.monotonic() - started < 15
    assert event_id in timeline_ids(resp, room)


async def test_long_poll_wakes_on_invite(
    server: OutlastProcess, pair: tuple[AsyncClient, AsyncClient, str]
) -> None:
    alice, bob, _ = pair
    first = await sync(bob, timeout=0)
    private = expect(await alice.room_create(name="surprise"), RoomCreateResponse).room_id
    poll = asyncio.create_task(bob.sync(timeout=20_000, since=first.next_batch))
    try:
        await eventually(lambda: sync_waiters(server))
        expect(await alice.room_invite(private, "@bob:localhost"), RoomInviteResponse)
        resp = expect(await asyncio.wait_for(poll, 30), SyncResponse)
    finally:
        poll.cancel()
    assert private in resp.rooms.invite


async def test_long_poll_times_out_empty(pair: tuple[AsyncClient, AsyncClient, str]) -> None:
    _, bob, room = pair
    first = await sync(bob, timeout=0)
    resp = await sync(bob, timeout=500, since=first.next_batch)
    assert room not in resp.rooms.join
    assert resp.next_batch


async def test_initial_sync_and_incremental(pair: tuple[AsyncClient, AsyncClient, str]) -> None:
    alice, bob, room = pair
    first = await sync(bob, timeout=0)
    joined = first.rooms.join[room]
    state_types = {e.source["type"] for e in joined.state} | {
        e.source["type"] for e in joined.timeline.events if "state_key" in e.source
    }
    assert {"m.room.create", "m.room.member", "m.room.power_levels", "m.room.name"} <= state_types
    a = await send(alice, room, "one")
    b = await send(alice, room, "two")
    nxt = await sync(bob, timeout=0, since=first.next_batch)
    assert timeline_ids(nxt, room) == [a, b]
    assert not nxt.rooms.join[room].timeline.limited
    # Nothing new: the room is absent from an immediate incremental sync.
    empty = await sync(bob, timeout=0, since=nxt.next_batch)
    assert room not in empty.rooms.join


async def test_timeline_limit_inline_and_uploaded_filter(
    server: OutlastProcess, pair: tuple[AsyncClient, AsyncClient, str]
) -> None:
    alice, bob, room = pair
    first = await sync(bob, timeout=0)
    sent = [await send(alice, room, f"m{i}") for i in range(7)]

    inline = await sync(
        bob, timeout=0, since=first.next_batch, sync_filter={"room": {"timeline": {"limit": 3}}}
    )
    assert timeline_ids(inline, room) == sent[-3:]
    assert inline.rooms.join[room].timeline.limited

    unlimited = await sync(
        bob, timeout=0, since=first.next_batch, sync_filter={"room": {"timeline": {"limit": 20}}}
    )
    assert timeline_ids(unlimited, room) == sent
    assert not unlimited.rooms.join[room].timeline.limited

    room_filter = {"timeline": {"limit": 2, "types": ["m.room.message"]}}
    uploaded = expect(await bob.upload_filter(room=room_filter), UploadFilterResponse)
    status, stored = await api(
        "GET",
        server.url + V3 + f"/user/@bob:localhost/filter/{uploaded.filter_id}",
        token=bob.access_token,
    )
    assert status == 200 and stored["room"] == room_filter
    # Another user cannot read bob's filter.
    status, _ = await api(
        "GET",
        server.url + V3 + f"/user/@bob:localhost/filter/{uploaded.filter_id}",
        token=alice.access_token,
    )
    assert status == 403
    by_id = await sync(bob, timeout=0, since=first.next_batch, sync_filter=uploaded.filter_id)
    assert timeline_ids(by_id, room) == sent[-2:]
    assert by_id.rooms.join[room].timeline.limited

    status, body = await api(
        "GET",
        server.url + V3 + "/sync",
        token=bob.access_token,
        params={"filter": "no-such-filter"},
    )
    assert status == 404 and body["errcode"] == "M_NOT_FOUND"


async def test_invite_shows_invite_state(pair: tuple[AsyncClient, AsyncClient, str]) -> None:
    alice, bob, _ = pair
    first = await sync(bob, timeout=0)
    private = expect(
        await alice.room_create(name="Invite only", topic="shh"), RoomCreateResponse
    ).room_id
    expect(await alice.room_invite(private, "@bob:localhost"), RoomInviteResponse)
    resp = await sync(bob, timeout=0, since=first.next_batch)
    assert private in resp.rooms.invite
    status, raw = await api(
        "GET",
        bob.homeserver + V3 + "/sync",
        token=bob.access_token,
        params={"since": first.next_batch},
    )
    events = raw["rooms"]["invite"][private]["invite_state"]["events"]
    by_type = {(e["type"], e["state_key"]): e for e in events}
    assert by_type[("m.room.name", "")]["content"] == {"name": "Invite only"}
    assert by_type[("m.room.member", "@bob:localhost")]["content"]["membership"] == "invite"
    assert by_type[("m.room.member", "@bob:localhost")]["sender"] == "@alice:localhost"
    assert private not in resp.rooms.join
    # Joining moves the room to the join section.
    expect(await bob.join(private), JoinResponse)
    after = await sync(bob, timeout=0, since=resp.next_batch)
    assert private in after.rooms.join and private not in after.rooms.invite


async def test_leave_section_after_kick(pair: tuple[AsyncClient, AsyncClient, str]) -> None:
    alice, bob, room = pair
    first = await sync(bob, timeout=0)
    expect(await alice.room_kick(room, "@bob:localhost", reason="bye"), RoomKickResponse)
    secret = await send(alice, room, "after the kick")
    resp = await sync(bob, timeout=0, since=first.next_batch)
    assert room in resp.rooms.leave and room not in resp.rooms.join
    events = [e.source for e in resp.rooms.leave[room].timeline.events]
    kick = [
        e for e in events if e["type"] == "m.room.member" and e["state_key"] == "@bob:localhost"
    ]
    assert kick and kick[-1]["content"]["membership"] == "leave"
    assert kick[-1]["sender"] == "@alice:localhost"
    assert secret not in [e["event_id"] for e in events]
    # Later syncs do not repeat the leave, nor show messages after it.
    later = await sync(bob, timeout=0, since=resp.next_batch)
    assert room not in later.rooms.leave and room not in later.rooms.join


async def test_full_state(pair: tuple[AsyncClient, AsyncClient, str]) -> None:
    alice, bob, room = pair
    first = await sync(bob, timeout=0)
    msg = await send(alice, room, "hello")
    incremental = await sync(bob, timeout=0, since=first.next_batch)
    assert incremental.rooms.join[room].state == []
    full = await sync(bob, timeout=0, since=first.next_batch, full_state=True)
    joined = full.rooms.join[room]
    state = {(e.source["type"], e.source["state_key"]) for e in joined.state}
    assert {
        ("m.room.create", ""),
        ("m.room.power_levels", ""),
        ("m.room.name", ""),
        ("m.room.member", "@alice:localhost"),
        ("m.room.member", "@bob:localhost"),
    } <= state
    assert timeline_ids(full, room) == [msg]
    # full_state with no news still lists the room at once.
    quiet = await sync(bob, timeout=0, since=full.next_batch, full_state=True)
    assert room in quiet.rooms.join and quiet.rooms.join[room].timeline.events == []


async def test_limited_sync_carries_state_changes(
    pair: tuple[AsyncClient, AsyncClient, str],
) -> None:
    alice, bob, room = pair
    first = await sync(bob, timeout=0)
    expect(await alice.room_put_state(room, "m.room.topic", {"topic": "gap"}), RoomPutStateResponse)
    sent = [await send(alice, room, f"m{i}") for i in range(5)]
    resp = await sync(
        bob, timeout=0, since=first.next_batch, sync_filter={"room": {"timeline": {"limit": 2}}}
    )
    joined = resp.rooms.join[room]
    assert joined.timeline.limited and timeline_ids(resp, room) == sent[-2:]
    topics = [e.source for e in joined.state if e.source["type"] == "m.room.topic"]
    assert topics and topics[0]["content"] == {"topic": "gap"}


async def test_bad_sync_parameters(pair: tuple[AsyncClient, AsyncClient, str]) -> None:
    _, bob, _ = pair
    url = bob.homeserver + V3 + "/sync"
    cases: list[dict[str, Any]] = [
        {"since": "garbage"},
        {"since": "s1_2"},
        {"filter": "{not json"},
        {"filter": '{"room": {"timeline": {"limit": -1}}}'},
        {"timeout": "soon"},
    ]
    for params in cases:
        status, body = await api("GET", url, token=bob.access_token, params=params)
        assert status == 400, (params, body)
        assert body["errcode"].startswith("M_"), (params, body)


async def test_incremental_sync_carries_each_change_in_its_own_room_only(
    server: OutlastProcess, pair: tuple[AsyncClient, AsyncClient, str]
) -> None:
    """An incremental sync looks only at the rooms where something happened since the
    token; every kind of change must still reach the room it happened in, and the
    rooms where nothing happened stay out."""
    alice, bob, shared = pair
    rooms = []
    for i in range(6):
        created = await alice.room_create(name=f"many {i}")
        rooms.append(expect(created, RoomCreateResponse).room_id)
    marked = await send(alice, rooms[2], "to be read")
    # Typing before the token, in two rooms: only a later change may show.
    for room in (rooms[1], rooms[5]):
        await alice.room_typing(room, typing_state=True, timeout=30000)

    async def raw_sync(since: str | None) -> dict[str, Any]:
        params = {"timeout": "0", **({"since": since} if since else {})}
        status, body = await api(
            "GET", server.url + V3 + "/sync", token=alice.access_token, params=params
        )
        assert status == 200, body
        return dict(body)

    token = (await raw_sync(None))["next_batch"]
    message = await send(alice, rooms[0], "new")
    await alice.room_typing(rooms[1], typing_state=False)
    status, _ = await api(
        "POST",
        server.url + V3 + f"/rooms/{rooms[2]}/receipt/m.read/{marked}",
        {},
        token=alice.access_token,
    )
    assert status == 200
    status, _ = await api(
        "PUT",
        server.url + V3 + f"/user/{alice.user_id}/rooms/{rooms[3]}/account_data/org.example.x",
        {"n": 1},
        token=alice.access_token,
    )
    assert status == 200
    expect(await alice.room_leave(rooms[4]), RoomLeaveResponse)
    invite_room = expect(await bob.room_create(name="invite"), RoomCreateResponse).room_id
    expect(await bob.room_invite(invite_room, alice.user_id), RoomInviteResponse)

    body = await raw_sync(token)
    joined = body["rooms"]["join"]
    assert set(joined) == {rooms[0], rooms[1], rooms[2], rooms[3]}
    assert [e["event_id"] for e in joined[rooms[0]]["timeline"]["events"]] == [message]
    typing = [e for e in joined[rooms[1]]["ephemeral"]["events"] if e["type"] == "m.typing"]
    assert typing == [{"type": "m.typing", "content": {"user_ids": []}}]
    receipts = [e for e in joined[rooms[2]]["ephemeral"]["events"] if e["type"] == "m.receipt"]
    assert marked in receipts[0]["content"]
    assert joined[rooms[3]]["account_data"]["events"] == [
        {"type": "org.example.x", "content": {"n": 1}}
    ]
    assert set(body["rooms"]["leave"]) == {rooms[4]}
    assert set(body["rooms"]["invite"]) == {invite_room}
    assert shared not in joined and rooms[5] not in joined
