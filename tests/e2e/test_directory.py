"""Aliases, the public room directory and the user directory, end to end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from nio import (
    AsyncClient,
    JoinResponse,
    ProfileSetDisplayNameResponse,
    RoomCreateResponse,
    RoomDeleteAliasResponse,
    RoomGetVisibilityResponse,
    RoomPreset,
    RoomPutAliasResponse,
    RoomResolveAliasResponse,
    RoomVisibility,
)

from tests.e2e.helpers import api, close_all, expect, expect_error, forbidden, register
from tests.servers import OutlastProcess, start_outlast

V3 = "/_matrix/client/v3"
ALICE, BOB, CAROL, DAVE = (f"@{n}:localhost" for n in ("alice", "bob", "carol", "dave"))


@pytest.fixture
async def users(server: OutlastProcess) -> AsyncIterator[list[AsyncClient]]:
    clients = [await register(server.url, n) for n in ("alice", "bob", "carol", "dave")]
    try:
        yield clients
    finally:
        await close_all(*clients)


async def create(client: AsyncClient, **kwargs: Any) -> str:
    return str(expect(await client.room_create(**kwargs), RoomCreateResponse).room_id)


async def public_rooms(url: str, token: str | None = None, **body: Any) -> dict[str, Any]:
    if token is None:
        status, page = await api(
            "GET", url + V3 + "/publicRooms", params={k: str(v) for k, v in body.items()}
        )
    else:
        status, page = await api("POST", url + V3 + "/publicRooms", body, token)
    assert status == 200, page
    return dict(page)


async def test_alias_lifecycle(server: OutlastProcess, users: list[AsyncClient]) -> None:
    alice, bob, carol, _ = users
    room_id = await create(alice, preset=RoomPreset.public_chat)
    alias = "#tea-party:localhost"
    expect(await alice.room_put_alias(alias, room_id), RoomPutAliasResponse)
    resolved = expect(await bob.room_resolve_alias(alias), RoomResolveAliasResponse)
    assert (resolved.room_id, resolved.servers) == (room_id, ["localhost"])
    expect(await bob.join(alias), JoinResponse)

    # Taken aliases, foreign servers and malformed aliases are refused. (nio reads any
    # answer to this call as success, so these go over raw HTTP.)
    async def call(method: str, who: AsyncClient, name: str, body: Any = None) -> tuple[int, str]:
        status, answer = await api(
            method,
            f"{server.url}{V3}/directory/room/{quote(name, safe='')}",
            body,
            who.access_token,
        )
        return status, (answer or {}).get("errcode", "")

    async def put(who: AsyncClient, name: str, target: str) -> tuple[int, str]:
        return await call("PUT", who, name, {"room_id": target})

    assert await put(bob, alias, room_id) == (409, "M_ROOM_IN_USE")
    assert await put(alice, "#x:elsewhere.org", room_id) == (400, "M_INVALID_PARAM")
    assert await put(alice, "no-hash:localhost", room_id) == (400, "M_INVALID_PARAM")
    assert await put(alice, "#y:localhost", "!nope:localhost") == (404, "M_NOT_FOUND")
    assert await put(carol, "#carols:localhost", room_id) == (403, "M_FORBIDDEN")  # not a member

    # Only members list the room's aliases.
    status, body = await api(
        "GET", f"{server.url}{V3}/rooms/{room_id}/aliases", token=bob.access_token
    )
    assert (status, body) == (200, {"aliases": [alias]})
    status, body = await api(
        "GET", f"{server.url}{V3}/rooms/{room_id}/aliases", token=carol.access_token
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")

    # Bob neither created the alias nor moderates the room.
    assert await call("DELETE", bob, alias) == (403, "M_FORBIDDEN")
    expect(await alice.room_delete_alias(alias), RoomDeleteAliasResponse)
    expect_error(await bob.room_resolve_alias(alias), 404, "M_NOT_FOUND")
    assert await call("DELETE", alice, alias) == (404, "M_NOT_FOUND")

    # A deleted alias can be claimed again, by a member, and removed by a moderator.
    expect(await bob.room_put_alias(alias, room_id), RoomPutAliasResponse)
    again = expect(await carol.room_resolve_alias(alias), RoomResolveAliasResponse)
    assert again.room_id == room_id
    expect(await alice.room_delete_alias(alias), RoomDeleteAliasResponse)


async def test_create_room_alias_and_canonical_alias(users: list[AsyncClient]) -> None:
    alice, bob, _, _ = users
    room_id = await create(alice, alias="wonderland", preset=RoomPreset.public_chat)
    resolved = expect(
        await bob.room_resolve_alias("#wonderland:localhost"), RoomResolveAliasResponse
    )
    assert resolved.room_id == room_id
    expect_error(await alice.room_create(alias="wonderland"), 400, "M_ROOM_IN_USE")


async def test_public_rooms_listing_search_and_pages(
    server: OutlastProcess, users: list[AsyncClient]
) -> None:
    alice, bob, carol, _ = users
    tea = await create(
        alice, visibility=RoomVisibility.public, name="Tea Party", topic="Unbirthdays", alias="tea"
    )
    croquet = await create(bob, visibility=RoomVisibility.public, name="Croquet")
    hidden = await create(carol, preset=RoomPreset.public_chat, name="Not listed")
    expect(await carol.join(tea), JoinResponse)

    vis = expect(await bob.room_get_visibility(tea), RoomGetVisibilityResponse)
    assert vis.visibility == "public"
    assert (
        expect(await bob.room_get_visibility(hidden), RoomGetVisibilityResponse).visibility
        == "private"
    )

    page = await public_rooms(server.url)
    assert [r["room_id"] for r in page["chunk"]] == [tea, croquet]  # most members first
    assert page["total_room_count_estimate"] == 2
    entry = page["chunk"][0]
    assert entry == {
        "room_id": tea,
        "name": "Tea Party",
        "topic": "Unbirthdays",
        "canonical_alias": "#tea:localhost",
        "num_joined_members": 2,
        "world_readable": False,
        "guest_can_join": False,
        "join_rule": "public",
    }

    # Publishing an existing room; searching; paging with since.
    status, _ = await api(
        "PUT",
        f"{server.url}{V3}/directory/list/room/{hidden}",
        {"visibility": "public"},
        carol.access_token,
    )
    assert status == 200
    found = await public_rooms(
        server.url, alice.access_token, filter={"generic_search_term": "birthday"}
    )
    assert [r["room_id"] for r in found["chunk"]] == [tea]
    found = await public_rooms(
        server.url, alice.access_token, filter={"generic_search_term": "LISTED"}
    )
    assert [r["room_id"] for r in found["chunk"]] == [hidden]

    seen: list[str] = []
    since: str | None = None
    for _ in range(5):
        body: dict[str, Any] = {"limit": 1} | ({"since": since} if since else {})
        page = await public_rooms(server.url, alice.access_token, **body)
        seen += [r["room_id"] for r in page["chunk"]]
        since = page.get("next_batch")
        if since is None:
            break
        assert page["total_room_count_estimate"] == 3
    assert seen[0] == tea and sorted(seen) == sorted([tea, croquet, hidden])
    page = await public_rooms(server.url, limit=2)
    assert len(page["chunk"]) == 2 and "next_batch" in page and "prev_batch" not in page
    page = await public_rooms(server.url, limit=2, since=page["next_batch"])
    assert len(page["chunk"]) == 1 and "next_batch" not in page and "prev_batch" in page
    status, body = await api("GET", server.url + V3 + "/publicRooms", params={"since": "junk"})
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")

    # Only members with state power change a listing.
    for who, room_id in ((bob, tea), (carol, tea), (alice, croquet)):
        status, body = await api(
            "PUT",
            f"{server.url}{V3}/directory/list/room/{room_id}",
            {"visibility": "private"},
            who.access_token,
        )
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN"), who.user_id
    status, _ = await api(
        "PUT",
        f"{server.url}{V3}/directory/list/room/{tea}",
        {"visibility": "private"},
        alice.access_token,
    )
    assert status == 200
    page = await public_rooms(server.url)
    assert tea not in [r["room_id"] for r in page["chunk"]]
    status, body = await api("GET", f"{server.url}{V3}/directory/list/room/!nope:localhost")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")


async def test_user_directory_search(server: OutlastProcess, users: list[AsyncClient]) -> None:
    alice, bob, carol, dave = users
    shared = await create(alice, invite=[BOB])
    expect(await bob.join(shared), JoinResponse)
    await create(carol, preset=RoomPreset.public_chat)  # carol sits in a public room
    await create(dave)  # dave is alone in a private room
    expect(await bob.set_displayname("Bill the Lizard"), ProfileSetDisplayNameResponse)

    async def search(term: str, limit: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"search_term": term} | ({"limit": limit} if limit else {})
        status, found = await api(
            "POST", server.url + V3 + "/user_directory/search", body, alice.access_token
        )
        assert status == 200, found
        return dict(found)

    assert (await search("bob"))["results"] == [{"user_id": BOB, "display_name": "Bill the Lizard"}]
    assert [r["user_id"] for r in (await search("LIZARD"))["results"]] == [BOB]
    assert [r["user_id"] for r in (await search("carol"))["results"]] == [CAROL]
    assert (await search("dave")) == {"results": [], "limited": False}
    both = await search("localhost", limit=1)
    assert len(both["results"]) == 1 and both["limited"] is True
    status, body = await api(
        "POST", server.url + V3 + "/user_directory/search", {}, alice.access_token
    )
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")


async def test_publishing_can_be_reserved_for_admins(tmp_path: Path) -> None:
    proc = start_outlast(
        tmp_path / "closed", log_extra="\n[directory]\nusers_may_publish = false\n"
    )
    try:
        alice = await register(proc.url, "alice")
        try:
            forbidden(await alice.room_create(visibility=RoomVisibility.public))
            room_id = await create(alice, preset=RoomPreset.public_chat)
            status, body = await api(
                "PUT",
                f"{proc.url}{V3}/directory/list/room/{room_id}",
                {"visibility": "public"},
                alice.access_token,
            )
            assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
            assert (await public_rooms(proc.url))["chunk"] == []
        finally:
            await alice.close()
    finally:
        proc.stop()
