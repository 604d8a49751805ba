"""Profiles end to end: display names and avatars, and their echo in member events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

import pytest
from nio import (
    AsyncClient,
    JoinedMembersResponse,
    JoinResponse,
    ProfileGetAvatarResponse,
    ProfileGetDisplayNameResponse,
    ProfileGetResponse,
    ProfileSetAvatarResponse,
    ProfileSetDisplayNameResponse,
    RoomCreateResponse,
    RoomGetStateEventResponse,
    RoomPreset,
)

from tests.e2e.helpers import api, close_all, expect, register, sync
from tests.servers import OutlastProcess

V3 = "/_matrix/client/v3"
ALICE, BOB = "@alice:localhost", "@bob:localhost"


@pytest.fixture
async def pair(server: OutlastProcess) -> AsyncIterator[tuple[AsyncClient, AsyncClient]]:
    alice, bob = await register(server.url, "alice"), await register(server.url, "bob")
    try:
        yield alice, bob
    finally:
        await close_all(alice, bob)


async def public_room(client: AsyncClient) -> str:
    resp = await client.room_create(preset=RoomPreset.public_chat)
    return str(expect(resp, RoomCreateResponse).room_id)


async def member_content(client: AsyncClient, room_id: str, user_id: str) -> dict[str, object]:
    resp = await client.room_get_state_event(room_id, "m.room.member", user_id)
    return dict(expect(resp, RoomGetStateEventResponse).content)


async def test_displayname_and_avatar_reach_member_events(
    server: OutlastProcess, pair: tuple[AsyncClient, AsyncClient]
) -> None:
    alice, bob = pair
    rooms = [await public_room(alice), await public_room(bob)]
    expect(await alice.join(rooms[1]), JoinResponse)
    expect(await bob.join(rooms[0]), JoinResponse)

    expect(await alice.set_displayname("Alice Liddell"), ProfileSetDisplayNameResponse)
    expect(await alice.set_avatar("mxc://localhost/rabbit"), ProfileSetAvatarResponse)

    name = expect(await bob.get_displayname(ALICE), ProfileGetDisplayNameResponse)
    assert name.displayname == "Alice Liddell"
    avatar = expect(await bob.get_avatar(ALICE), ProfileGetAvatarResponse)
    assert avatar.avatar_url == "mxc://localhost/rabbit"
    profile = expect(await bob.get_profile(ALICE), ProfileGetResponse)
    assert (profile.displayname, profile.avatar_url) == ("Alice Liddell", "mxc://localhost/rabbit")

    for room_id in rooms:
        content = await member_content(bob, room_id, ALICE)
        assert content == {
            "membership": "join",
            "displayname": "Alice Liddell",
            "avatar_url": "mxc://localhost/rabbit",
        }
        joined = expect(await bob.joined_members(room_id), JoinedMembersResponse)
        shown = {m.user_id: (m.display_name, m.avatar_url) for m in joined.members}
        assert shown[ALICE] == ("Alice Liddell", "mxc://localhost/rabbit")

    # Clearing the avatar removes it from the member events too.
    status, _ = await api(
        "PUT",
        f"{server.url}{V3}/profile/{ALICE}/avatar_url",
        {"avatar_url": None},
        alice.access_token,
    )
    assert status == 200
    assert "avatar_url" not in await member_content(bob, rooms[0], ALICE)
    status, body = await api("GET", f"{server.url}{V3}/profile/{ALICE}")
    assert (status, body) == (200, {"displayname": "Alice Liddell"})


async def test_new_rooms_and_joins_use_the_stored_profile(
    pair: tuple[AsyncClient, AsyncClient],
) -> None:
    alice, bob = pair
    expect(await alice.set_displayname("Queen"), ProfileSetDisplayNameResponse)
    own = await public_room(alice)
    assert (await member_content(alice, own, ALICE))["displayname"] == "Queen"
    theirs = await public_room(bob)
    expect(await alice.join(theirs), JoinResponse)
    assert (await member_content(bob, theirs, ALICE))["displayname"] == "Queen"
    # Without a profile, the localpart is the name.
    assert (await member_content(bob, theirs, BOB))["displayname"] == "bob"


async def test_profile_changes_appear_in_other_members_sync(
    pair: tuple[AsyncClient, AsyncClient],
) -> None:
    alice, bob = pair
    room_id = await public_room(alice)
    expect(await bob.join(room_id), JoinResponse)
    first = await sync(bob, timeout=0)
    expect(await alice.set_displayname("Renamed"), ProfileSetDisplayNameResponse)
    later = await sync(bob, timeout=10_000, since=first.next_batch)
    timeline = later.rooms.join[room_id].timeline.events
    renames = [e.source for e in timeline if e.source.get("type") == "m.room.member"]
    assert renames and renames[-1]["content"]["displayname"] == "Renamed"
    assert renames[-1]["state_key"] == ALICE


async def test_errors(server: OutlastProcess, pair: tuple[AsyncClient, AsyncClient]) -> None:
    alice, bob = pair
    url = server.url + V3
    status, body = await api(
        "PUT", f"{url}/profile/{ALICE}/displayname", {"displayname": "Mallory"}, bob.access_token
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    status, body = await api("GET", f"{url}/profile/{quote('@nobody:localhost')}")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await api(
        "PUT", f"{url}/profile/{ALICE}/displayname", {"displayname": 5}, alice.access_token
    )
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")
    status, body = await api("PUT", f"{url}/profile/{ALICE}/displayname", {}, alice.access_token)
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")
    status, body = await api(
        "PUT", f"{url}/profile/{ALICE}/Not-A-Key", {"Not-A-Key": 1}, alice.access_token
    )
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    status, body = await api(
        "DELETE", f"{url}/profile/{ALICE}/displayname", token=alice.access_token
    )
    assert status == 200
    status, body = await api("GET", f"{url}/profile/{ALICE}/displayname")
    assert (status, body) == (200, {})  # unset, not an error
    status, body = await api("GET", f"{url}/capabilities", token=alice.access_token)
    assert body["capabilities"]["m.set_displayname"] == {"enabled": True}
    assert body["capabilities"]["m.set_avatar_url"] == {"enabled": True}


async def test_custom_fields(server: OutlastProcess, pair: tuple[AsyncClient, AsyncClient]) -> None:
    alice, _ = pair
    url = f"{server.url}{V3}/profile/{ALICE}"
    key = "org.example.pronouns"
    status, _ = await api("PUT", f"{url}/{key}", {key: ["she", "her"]}, alice.access_token)
    assert status == 200
    assert await api("GET", f"{url}/{key}") == (200, {key: ["she", "her"]})
    assert (await api("GET", url))[1] == {"displayname": "alice", key: ["she", "her"]}
    status, _ = await api("DELETE", f"{url}/{key}", token=alice.access_token)
    assert status == 200
    status, body = await api("GET", f"{url}/{key}")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
