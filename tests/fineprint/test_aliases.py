"""``m.room.canonical_alias`` names only valid aliases of its room, and loses deleted ones."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from nio import AsyncClient, RoomCreateResponse

from tests.e2e.helpers import V3, api, expect

CANONICAL = "m.room.canonical_alias"


async def put_canonical(
    url: str, client: AsyncClient, room_id: str, content: dict[str, Any]
) -> tuple[int, Any]:
    return await api(
        "PUT", f"{url}{V3}/rooms/{room_id}/state/{CANONICAL}", content, client.access_token
    )


async def add_alias(url: str, client: AsyncClient, alias: str, room_id: str) -> None:
    status, body = await api(
        "PUT", f"{url}{V3}/directory/room/{quote(alias)}", {"room_id": room_id}, client.access_token
    )
    assert status == 200, body


async def test_canonical_alias_content_is_checked(
    url: str, pair: tuple[AsyncClient, AsyncClient]
) -> None:
    alice, _ = pair
    room = expect(await alice.room_create(), RoomCreateResponse).room_id
    other = expect(await alice.room_create(), RoomCreateResponse).room_id
    await add_alias(url, alice, "#here:localhost", room)
    await add_alias(url, alice, "#there:localhost", other)

    refusals: list[tuple[dict[str, Any], str]] = [
        ({"alias": "#nowhere:localhost"}, "M_BAD_ALIAS"),  # unknown
        ({"alias": "#there:localhost"}, "M_BAD_ALIAS"),  # another room's
        ({"alias": "not an alias"}, "M_INVALID_PARAM"),
        ({"alias": "#here:localhost", "alt_aliases": ["#there:localhost"]}, "M_BAD_ALIAS"),
        ({"alt_aliases": ["#bad"]}, "M_INVALID_PARAM"),
        ({"alt_aliases": "#here:localhost"}, "M_INVALID_PARAM"),
    ]
    for content, errcode in refusals:
        status, body = await put_canonical(url, alice, room, content)
        assert (status, body.get("errcode")) == (400, errcode), content
    status, _ = await put_canonical(
        url, alice, room, {"alias": "#here:localhost", "alt_aliases": ["#here:localhost"]}
    )
    assert status == 200
    assert (await put_canonical(url, alice, room, {}))[0] == 200  # clearing is always fine


async def test_deleting_an_alias_takes_it_out_of_the_canonical_alias(
    url: str, pair: tuple[AsyncClient, AsyncClient]
) -> None:
    alice, _ = pair
    room = expect(await alice.room_create(alias="main"), RoomCreateResponse).room_id
    await add_alias(url, alice, "#alt:localhost", room)
    content = {"alias": "#main:localhost", "alt_aliases": ["#alt:localhost"]}
    assert (await put_canonical(url, alice, room, content))[0] == 200

    status, _ = await api(
        "DELETE", f"{url}{V3}/directory/room/{quote('#alt:localhost')}", None, alice.access_token
    )
    assert status == 200
    state_url = f"{url}{V3}/rooms/{room}/state/{CANONICAL}/"
    assert await api("GET", state_url, token=alice.access_token) == (
        200,
        {"alias": "#main:localhost"},
    )
    status, _ = await api(
        "DELETE", f"{url}{V3}/directory/room/{quote('#main:localhost')}", None, alice.access_token
    )
    assert status == 200
    assert await api("GET", state_url, token=alice.access_token) == (200, {})
