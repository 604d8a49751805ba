"""Rooms end to end: presets, names and aliases, membership changes, state, permissions."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import pytest
from nio import (
    AsyncClient,
    JoinedMembersResponse,
    JoinedRoomsResponse,
    JoinResponse,
    RoomBanResponse,
    RoomCreateResponse,
    RoomForgetResponse,
    RoomGetEventResponse,
    RoomGetStateEventResponse,
    RoomGetStateResponse,
    RoomInviteResponse,
    RoomKickResponse,
    RoomLeaveResponse,
    RoomPreset,
    RoomPutStateResponse,
    RoomSendResponse,
    RoomUnbanResponse,
    RoomVisibility,
)

from tests.e2e.helpers import api, close_all, expect, expect_error, forbidden, register, text
from tests.servers import OutlastProcess

V3 = "/_matrix/client/v3"
ALICE, BOB, CAROL = "@alice:localhost", "@bob:localhost", "@carol:localhost"


@pytest.fixture
async def users(
    server: OutlastProcess,
) -> AsyncIterator[tuple[AsyncClient, AsyncClient, AsyncClient]]:
    clients = [await register(server.url, name) for name in ("alice", "bob", "carol")]
    try:
        yield clients[0], clients[1], clients[2]
    finally:
        await close_all(*clients)


async def create(client: AsyncClient, **kwargs: object) -> str:
    resp = await client.room_create(**kwargs)  # type: ignore[arg-type,unused-ignore]
    return str(expect(resp, RoomCreateResponse).room_id)


async def joined(client: AsyncClient) -> list[str]:
    return list(expect(await client.joined_rooms(), JoinedRoomsResponse).rooms)


async def member_ids(client: AsyncClient, room_id: str) -> set[str]:
    resp = expect(await client.joined_members(room_id), JoinedMembersResponse)
    return {m.user_id for m in resp.members}


async def test_presets_and_room_ids(server: OutlastProcess, users: tuple[AsyncClient, ...]) -> None:
    alice, bob, _ = users
    public = await create(alice, visibility=RoomVisibility.public, preset=RoomPreset.public_chat)
    private = await create(alice, preset=RoomPreset.private_chat)
    for room_id in (public, private):
        assert re.fullmatch(r"![A-Za-z0-9._~-]+:localhost", room_id), room_id
    expect(await bob.join(public), JoinResponse)
    expect_error(await bob.join(private), 403, "M_FORBIDDEN")
    assert await member_ids(alice, public) == {ALICE, BOB}
    assert await member_ids(alice, private) == {ALICE}
    rule = expect(
        await alice.room_get_state_event(private, "m.room.join_rules"), RoomGetStateEventResponse
    )
    assert rule.content == {"join_rule": "invite"}
    status, body = await api("GET", server.url + V3 + "/capabilities", token=alice.access_token)
    assert status == 200
    assert body["capabilities"]["m.room_versions"]["default"] == "10"
    create_event = expect(
        await alice.room_get_state_event(public, "m.room.create"), RoomGetStateEventResponse
    )
    assert create_event.content["room_version"] == "10"


async def test_name_topic_alias_and_join_by_alias(users: tuple[AsyncClient, ...]) -> None:
    alice, bob, _ = users
    room = await create(
        alice, visibility=RoomVisibility.public, alias="tea", name="Tea", topic="Earl Grey"
    )
    name = expect(await alice.room_get_state_event(room, "m.room.name"), RoomGetStateEventResponse)
    topic = expect(
        await alice.room_get_state_event(room, "m.room.topic"), RoomGetStateEventResponse
    )
    alias = expect(
        await alice.room_get_state_event(room, "m.room.canonical_alias"), RoomGetStateEventResponse
    )
    assert (name.content, topic.content["topic"]) == ({"name": "Tea"}, "Earl Grey")
    assert alias.content["alias"] == "#tea:localhost"

    joined_room = expect(await bob.join("#tea:localhost"), JoinResponse)
    assert joined_room.room_id == room
    expect_error(await bob.join("#no-such-alias:localhost"), 404, "M_NOT_FOUND")
    # The alias is taken now.
    expect_error(await alice.room_create(alias="tea"), 400, "M_ROOM_IN_USE")

    expect(
        await alice.room_put_state(room, "m.room.topic", {"topic": "Assam"}), RoomPutStateResponse
    )
    topic = expect(await bob.room_get_state_event(room, "m.room.topic"), RoomGetStateEventResponse)
    assert topic.content == {"topic": "Assam"}


async def test_invite_join_leave_forget(users: tuple[AsyncClient, ...]) -> None:
    alice, bob, _ = users
    room = await create(alice, name="private")
    expect(await alice.room_invite(room, BOB), RoomInviteResponse)
    members = await api_members(alice, room)
    assert members[BOB] == "invite"
    expect(await bob.join(room), JoinResponse)
    assert room in await joined(bob)
    assert await member_ids(alice, room) == {ALICE, BOB}

    expect(await bob.room_leave(room), RoomLeaveResponse)
    assert room not in await joined(bob)
    assert await member_ids(alice, room) == {ALICE}
    # Leaving was final: the invite was used up, the room is invite-only.
    expect_error(await bob.join(room), 403, "M_FORBIDDEN")
    # Cannot forget a room one is still in; can after leaving.
    expect_error(await alice.room_forget(room), 400, "M_UNKNOWN")
    expect(await bob.room_forget(room), RoomForgetResponse)
    sync = await bob.sync(timeout=0, sync_filter={"room": {"include_leave": True}})
    assert room not in sync.rooms.leave


async def api_members(client: AsyncClient, room_id: str) -> dict[str, str]:
    status, body = await api(
        "GET", client.homeserver + V3 + f"/rooms/{room_id}/members", token=client.access_token
    )
    assert status == 200, body
    return {e["state_key"]: e["content"]["membership"] for e in body["chunk"]}


async def test_kick_and_rejoin_public(users: tuple[AsyncClient, ...]) -> None:
    alice, bob, _ = users
    room = await create(alice, visibility=RoomVisibility.public)
    expect(await bob.join(room), JoinResponse)
    # bob (power 0) cannot kick alice (100).
    expect_error(await bob.room_kick(room, ALICE), 403, "M_FORBIDDEN")
    expect(await alice.room_kick(room, BOB, reason="out"), RoomKickResponse)
    members = await api_members(alice, room)
    assert members[BOB] == "leave"
    forbidden(await bob.room_send(room, "m.room.message", text("still here?")))
    expect(await bob.join(room), JoinResponse)
    assert await member_ids(alice, room) == {ALICE, BOB}


async def test_ban_and_unban(users: tuple[AsyncClient, ...]) -> None:
    alice, bob, _ = users
    room = await create(alice, visibility=RoomVisibility.public)
    expect(await bob.join(room), JoinResponse)
    expect(await alice.room_ban(room, BOB, reason="spam"), RoomBanResponse)
    assert (await api_members(alice, room))[BOB] == "ban"
    expect_error(await bob.join(room), 403, "M_FORBIDDEN")
    expect_error(await alice.room_invite(room, BOB), 403, "M_FORBIDDEN")
    expect(await alice.room_unban(room, BOB), RoomUnbanResponse)
    assert (await api_members(alice, room))[BOB] == "leave"
    expect(await bob.join(room), JoinResponse)
    assert await member_ids(alice, room) == {ALICE, BOB}


async def test_members_and_state_endpoints(users: tuple[AsyncClient, ...]) -> None:
    alice, bob, carol = users
    room = await create(alice, visibility=RoomVisibility.public, name="Room")
    expect(await bob.join(room), JoinResponse)
    expect(await alice.room_invite(room, CAROL), RoomInviteResponse)

    members = await api_members(alice, room)
    assert members == {ALICE: "join", BOB: "join", CAROL: "invite"}
    status, body = await api(
        "GET",
        alice.homeserver + V3 + f"/rooms/{room}/members",
        token=alice.access_token,
        params={"membership": "invite"},
    )
    assert status == 200 and [e["state_key"] for e in body["chunk"]] == [CAROL]
    status, body = await api(
        "GET", alice.homeserver + V3 + f"/rooms/{room}/joined_members", token=bob.access_token
    )
    assert status == 200 and set(body["joined"]) == {ALICE, BOB}
    assert body["joined"][BOB]["display_name"] == "bob"

    state = expect(await bob.room_get_state(room), RoomGetStateResponse)
    types = {(e["type"], e["state_key"]) for e in state.events}
    assert {
        ("m.room.create", ""),
        ("m.room.power_levels", ""),
        ("m.room.name", ""),
        ("m.room.join_rules", ""),
        ("m.room.member", CAROL),
    } <= types
    assert all("event_id" in e and "sender" in e for e in state.events)

    put = expect(
        await alice.room_put_state(room, "org.example.custom", {"k": 1}, state_key="x"),
        RoomPutStateResponse,
    )
    got = expect(
        await bob.room_get_state_event(room, "org.example.custom", "x"), RoomGetStateEventResponse
    )
    assert got.content == {"k": 1}
    missing = await bob.room_get_state_event(room, "org.example.custom", "nope")
    assert missing.transport_response is not None and missing.transport_response.status == 404

    event = expect(await bob.room_get_event(room, put.event_id), RoomGetEventResponse)
    assert event.event.source["content"] == {"k": 1}
    assert event.event.source["state_key"] == "x"
    sent = expect(await bob.room_send(room, "m.room.message", text("hi")), RoomSendResponse)
    msg = expect(await alice.room_get_event(room, sent.event_id), RoomGetEventResponse)
    assert msg.event.source["sender"] == BOB
    status, body = await api(
        "GET", alice.homeserver + V3 + f"/rooms/{room}/event/$nope", token=alice.access_token
    )
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    assert room in await joined(alice) and room in await joined(bob)
    assert room not in await joined(carol)


async def test_non_member_is_locked_out(users: tuple[AsyncClient, ...]) -> None:
    alice, _, carol = users
    room = await create(alice, name="secret")
    sent = expect(
        await alice.room_send(room, "m.room.message", text("for members")), RoomSendResponse
    )
    expect_error(await carol.room_messages(room, limit=10), 403, "M_FORBIDDEN")
    expect_error(await carol.room_get_state(room), 403, "M_FORBIDDEN")
    expect_error(await carol.room_get_state_event(room, "m.room.name"), 403, "M_FORBIDDEN")
    forbidden(await carol.room_send(room, "m.room.message", text("let me in")))
    forbidden(await carol.room_put_state(room, "m.room.topic", {"topic": "x"}))
    expect_error(await carol.joined_members(room), 403, "M_FORBIDDEN")
    status, body = await api(
        "GET", carol.homeserver + V3 + f"/rooms/{room}/members", token=carol.access_token
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, _ = await api(
        "GET",
        carol.homeserver + V3 + f"/rooms/{room}/event/{sent.event_id}",
        token=carol.access_token,
    )
    assert status in (403, 404)
    expect_error(await carol.room_invite(room, CAROL), 403, "M_FORBIDDEN")


async def test_power_levels_guard_state(users: tuple[AsyncClient, ...]) -> None:
    alice, bob, _ = users
    room = await create(alice, preset=RoomPreset.private_chat, name="Alice's")
    expect(await alice.room_invite(room, BOB), RoomInviteResponse)
    expect(await bob.join(room), JoinResponse)
    levels = expect(
        await bob.room_get_state_event(room, "m.room.power_levels"), RoomGetStateEventResponse
    )
    assert levels.content["users"][ALICE] == 100 and levels.content.get("state_default", 50) == 50
    forbidden(await bob.room_put_state(room, "m.room.name", {"name": "Bob's"}))
    content = dict(levels.content)
    content["users"] = {**content["users"], BOB: 100}
    expect_error(await bob.room_put_state(room, "m.room.power_levels", content), 403, "M_FORBIDDEN")
    # Messages are allowed at level 0; alice can raise bob, then bob can rename.
    expect(await bob.room_send(room, "m.room.message", text("hello")), RoomSendResponse)
    content["users"] = {**levels.content["users"], BOB: 50}
    expect(await alice.room_put_state(room, "m.room.power_levels", content), RoomPutStateResponse)
    expect(await bob.room_put_state(room, "m.room.name", {"name": "Bob's"}), RoomPutStateResponse)
    name = expect(await alice.room_get_state_event(room, "m.room.name"), RoomGetStateEventResponse)
    assert name.content == {"name": "Bob's"}


async def test_concurrent_joins_and_state_changes_all_succeed(server: OutlastProcess) -> None:
    """Many simultaneous membership/state changes on one room through one process all commit."""
    alice = await register(server.url, "alice")
    others = [await register(server.url, f"user{i}") for i in range(15)]
    try:
        room = await create(alice, visibility=RoomVisibility.public)
        results = await asyncio.gather(*[c.join(room) for c in others])
        for resp in results:
            expect(resp, JoinResponse)
        puts = await asyncio.gather(
            *[alice.room_put_state(room, "m.room.topic", {"topic": f"t{i}"}) for i in range(15)]
        )
        put_ids = {expect(resp, RoomPutStateResponse).event_id for resp in puts}
        assert len(put_ids) == 15
        assert await member_ids(alice, room) == {ALICE} | {c.user_id for c in others}
    finally:
        await close_all(alice, *others)
