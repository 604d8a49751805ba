"""Space hierarchies through matrix-nio against an in-process site: what each user may see."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from nio import (
    AsyncClient,
    RoomCreateResponse,
    RoomInviteResponse,
    RoomPreset,
    RoomPutStateResponse,
    SpaceGetHierarchyError,
    SpaceGetHierarchyResponse,
)

from outlast.site import Site
from tests.e2e.helpers import api, close_all, expect, register


@pytest.fixture
async def clients(site: Site) -> AsyncIterator[tuple[AsyncClient, AsyncClient]]:
    url = f"http://127.0.0.1:{site.port}"
    alice, bob = await register(url, "alice"), await register(url, "bob")
    try:
        yield alice, bob
    finally:
        await close_all(alice, bob)


async def create(client: AsyncClient, name: str, **kwargs: Any) -> str:
    resp = await client.room_create(name=name, **kwargs)
    return str(expect(resp, RoomCreateResponse).room_id)


async def add_child(client: AsyncClient, space: str, child: str, **content: Any) -> None:
    body = {"via": ["localhost"], **content}
    resp = await client.room_put_state(space, "m.space.child", body, state_key=child)
    expect(resp, RoomPutStateResponse)


async def hierarchy(client: AsyncClient, space: str, **kwargs: Any) -> SpaceGetHierarchyResponse:
    return expect(await client.space_get_hierarchy(space, **kwargs), SpaceGetHierarchyResponse)


def names(resp: SpaceGetHierarchyResponse) -> list[str]:
    return [r.get("name", "") for r in resp.rooms]


async def test_a_space_shows_each_user_only_rooms_they_may_see(
    clients: tuple[AsyncClient, AsyncClient],
) -> None:
    alice, bob = clients
    space = await create(alice, "Space", space=True, preset=RoomPreset.public_chat)
    public = await create(alice, "Public", preset=RoomPreset.public_chat, topic="all welcome")
    private = await create(alice, "Private")
    sub = await create(alice, "Sub", space=True, preset=RoomPreset.public_chat)
    deep = await create(alice, "Deep", preset=RoomPreset.public_chat)
    await add_child(alice, space, public, order="a", suggested=True)
    await add_child(alice, space, private, order="b")
    await add_child(alice, space, sub, order="c")
    await add_child(alice, sub, deep)
    await add_child(alice, sub, space)  # a loop back to the top

    mine = await hierarchy(alice, space)
    assert names(mine) == ["Space", "Public", "Private", "Sub", "Deep"]
    assert mine.next_batch is None
    top = mine.rooms[0]
    assert top["room_type"] == "m.space" and top["num_joined_members"] == 1
    assert top["join_rule"] == "public"
    assert [c["state_key"] for c in top["children_state"]] == [public, private, sub]
    assert all(c["sender"] == alice.user_id for c in top["children_state"])
    assert mine.rooms[1]["topic"] == "all welcome"

    # Bob is in none of them: public rooms only; the private room's name does not leak.
    theirs = await hierarchy(bob, space)
    assert names(theirs) == ["Space", "Public", "Sub", "Deep"]
    assert names(await hierarchy(bob, space, suggested_only=True)) == ["Space", "Public"]
    assert names(await hierarchy(bob, space, max_depth=1)) == ["Space", "Public", "Sub"]

    # Once invited, Bob sees the private room too.
    expect(await alice.room_invite(private, bob.user_id), RoomInviteResponse)
    assert "Private" in names(await hierarchy(bob, space))


async def test_pages_and_refusals(clients: tuple[AsyncClient, AsyncClient], site: Site) -> None:
    alice, bob = clients
    space = await create(alice, "Space", space=True)  # private space
    for n in range(5):
        room = await create(alice, f"R{n}", preset=RoomPreset.public_chat)
        await add_child(alice, space, room, order=f"{n}")

    seen: list[str] = []
    token: str | None = None
    for _ in range(10):
        page = await hierarchy(alice, space, limit=2, from_page=token)
        seen += names(page)
        token = page.next_batch
        if token is None:
            break
    assert seen == ["Space", "R0", "R1", "R2", "R3", "R4"]

    # Bob may not see the private space; nor anyone a room that does not exist.
    for client, room_id in ((bob, space), (alice, "!nowhere:localhost")):
        resp = await client.space_get_hierarchy(room_id)
        assert isinstance(resp, SpaceGetHierarchyError) and resp.status_code == "M_FORBIDDEN"
    url = f"http://127.0.0.1:{site.port}/_matrix/client/v1/rooms/{space}/hierarchy"
    for params in ({"limit": "0"}, {"max_depth": "-1"}, {"from": "bogus"}):
        status, body = await api("GET", url, token=alice.access_token, params=params)
        assert (status, body["errcode"]) == (400, "M_INVALID_PARAM"), params
    first = await hierarchy(alice, space, limit=2)
    status, body = await api(
        "GET",
        url,
        token=alice.access_token,
        params={"from": str(first.next_batch), "max_depth": "1"},
    )
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    status, body = await api("GET", url)
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
    status, body = await api("GET", url.replace(space, "not-a-room"), token=alice.access_token)
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
