"""Rooms of versions 10, 11 and 12: created, used, redacted, and advertised truthfully."""

from __future__ import annotations

from typing import Any

import pytest
from nio import AsyncClient, RoomCreateResponse, RoomRedactResponse, RoomSendResponse

from tests.e2e.helpers import V3, api, expect


async def state(url: str, client: AsyncClient, room_id: str, kind: str) -> Any:
    status, body = await api(
        "GET", f"{url}{V3}/rooms/{room_id}/state/{kind}/", token=client.access_token
    )
    assert status == 200, body
    return body


async def test_capabilities_list_exactly_the_creatable_versions(
    url: str, pair: tuple[AsyncClient, AsyncClient]
) -> None:
    alice, _ = pair
    status, body = await api("GET", f"{url}{V3}/capabilities", token=alice.access_token)
    assert status == 200
    assert body["capabilities"]["m.room_versions"] == {
        "default": "10",
        "available": {"10": "stable", "11": "stable", "12": "stable"},
    }


async def test_the_default_version_is_10_with_a_creator(
    url: str, pair: tuple[AsyncClient, AsyncClient]
) -> None:
    alice, _ = pair
    room_id = expect(await alice.room_create(), RoomCreateResponse).room_id
    create = await state(url, alice, room_id, "m.room.create")
    assert (create["room_version"], create["creator"]) == ("10", "@alice:localhost")


@pytest.mark.parametrize("version", ["10", "11", "12"])
async def test_each_version_is_creatable_and_usable(
    url: str, pair: tuple[AsyncClient, AsyncClient], version: str
) -> None:
    alice, bob = pair
    room_id = expect(
        await alice.room_create(room_version=version, invite=["@bob:localhost"]),
        RoomCreateResponse,
    ).room_id
    create = await state(url, alice, room_id, "m.room.create")
    assert create["room_version"] == version
    assert ("creator" in create) is (version == "10")
    levels = await state(url, alice, room_id, "m.room.power_levels")
    if version == "12":
        assert ":" not in room_id  # the create event's hash, no server part
        assert "@alice:localhost" not in levels["users"]  # creators outrank every level
    else:
        assert levels["users"]["@alice:localhost"] == 100

    joined = await api("POST", f"{url}{V3}/join/{room_id}", {}, bob.access_token)
    assert joined[0] == 200, joined
    sent = expect(
        await bob.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": "hi"}),
        RoomSendResponse,
    )
    expect(await alice.room_redact(room_id, sent.event_id), RoomRedactResponse)  # creator's power
    status, event = await api(
        "GET", f"{url}{V3}/rooms/{room_id}/event/{sent.event_id}", token=bob.access_token
    )
    assert status == 200, event
    assert event["content"] == {}
    assert "redacted_because" in event["unsigned"]


async def test_an_unknown_version_is_refused(
    url: str, pair: tuple[AsyncClient, AsyncClient]
) -> None:
    alice, _ = pair
    status, body = await api(
        "POST", f"{url}{V3}/createRoom", {"room_version": "9"}, alice.access_token
    )
    assert (status, body["errcode"]) == (400, "M_UNSUPPORTED_ROOM_VERSION")
