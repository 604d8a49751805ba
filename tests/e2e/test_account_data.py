"""Account data and room tags end to end: storage, /sync delivery, permissions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from nio import AsyncClient, RoomCreateResponse

from tests.e2e.helpers import api, close_all, expect, register
from tests.servers import OutlastProcess

V3 = "/_matrix/client/v3"
ALICE = "@alice:localhost"


@pytest.fixture
async def pair(server: OutlastProcess) -> AsyncIterator[tuple[AsyncClient, AsyncClient]]:
    alice, bob = await register(server.url, "alice"), await register(server.url, "bob")
    try:
        yield alice, bob
    finally:
        await close_all(alice, bob)


async def raw_sync(
    url: str, token: str, since: str | None = None, timeout_ms: int = 0
) -> dict[str, Any]:
    params = {"timeout": str(timeout_ms)} | ({"since": since} if since else {})
    status, body = await api("GET", url + V3 + "/sync", token=token, params=params)
    assert status == 200, body
    return dict(body)


def ours(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The account data this test set (other features add their own, e.g. m.push_rules)."""
    return {
        e["type"]: e["content"]
        for e in events
        if e["type"].startswith("org.example.") or e["type"] == "m.tag"
    }


def global_data(body: dict[str, Any]) -> dict[str, Any]:
    return ours(body["account_data"]["events"])


def room_data(body: dict[str, Any], room_id: str) -> dict[str, Any]:
    room = body["rooms"]["join"].get(room_id, {})
    return ours(room.get("account_data", {}).get("events", []))


async def test_global_and_room_account_data_in_get_and_sync(
    server: OutlastProcess, pair: tuple[AsyncClient, AsyncClient]
) -> None:
    alice, _ = pair
    url, token = server.url + V3, alice.access_token
    room_id = str(expect(await alice.room_create(), RoomCreateResponse).room_id)

    assert (
        await api(
            "PUT", f"{url}/user/{ALICE}/account_data/org.example.theme", {"dark": True}, token
        )
    )[0] == 200
    assert (
        await api(
            "PUT",
            f"{url}/user/{ALICE}/rooms/{room_id}/account_data/org.example.pin",
            {"pinned": ["$a"]},
            token,
        )
    )[0] == 200
    assert await api("GET", f"{url}/user/{ALICE}/account_data/org.example.theme", token=token) == (
        200,
        {"dark": True},
    )
    assert await api(
        "GET", f"{url}/user/{ALICE}/rooms/{room_id}/account_data/org.example.pin", token=token
    ) == (200, {"pinned": ["$a"]})
    status, body = await api(
        "GET", f"{url}/user/{ALICE}/account_data/org.example.none", token=token
    )
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    # Room data is not global data.
    status, _ = await api("GET", f"{url}/user/{ALICE}/account_data/org.example.pin", token=token)
    assert status == 404

    first = await raw_sync(server.url, token)
    assert global_data(first) == {"org.example.theme": {"dark": True}}
    assert room_data(first, room_id) == {"org.example.pin": {"pinned": ["$a"]}}

    # An incremental sync carries only what changed since the token.
    assert (
        await api("PUT", f"{url}/user/{ALICE}/account_data/org.example.other", {"n": 1}, token)
    )[0] == 200
    later = await raw_sync(server.url, token, first["next_batch"])
    assert global_data(later) == {"org.example.other": {"n": 1}}
    assert room_data(later, room_id) == {}
    quiet = await raw_sync(server.url, token, later["next_batch"])
    assert global_data(quiet) == {} and room_data(quiet, room_id) == {}

    # nio folds account data from /sync into its state as well.
    await alice.sync(timeout=0)
    assert alice.next_batch


async def test_tags(server: OutlastProcess, pair: tuple[AsyncClient, AsyncClient]) -> None:
    alice, _ = pair
    url, token = f"{server.url}{V3}/user/{ALICE}", alice.access_token
    room_id = str(expect(await alice.room_create(), RoomCreateResponse).room_id)
    assert await api("GET", f"{url}/rooms/{room_id}/tags", token=token) == (200, {"tags": {}})
    for tag, content in (("m.favourite", {"order": 0.25}), ("u.work", {})):
        status, _ = await api("PUT", f"{url}/rooms/{room_id}/tags/{tag}", content, token)
        assert status == 200
    expected = {"m.favourite": {"order": 0.25}, "u.work": {}}
    assert await api("GET", f"{url}/rooms/{room_id}/tags", token=token) == (200, {"tags": expected})
    before = await raw_sync(server.url, token)
    assert room_data(before, room_id)["m.tag"] == {"tags": expected}

    assert (await api("DELETE", f"{url}/rooms/{room_id}/tags/u.work", token=token))[0] == 200
    assert await api("GET", f"{url}/rooms/{room_id}/tags", token=token) == (
        200,
        {"tags": {"m.favourite": {"order": 0.25}}},
    )
    after = await raw_sync(server.url, token, before["next_batch"])
    assert room_data(after, room_id) == {"m.tag": {"tags": {"m.favourite": {"order": 0.25}}}}
    status, body = await api("PUT", f"{url}/rooms/{room_id}/tags/u.bad", {"order": "x"}, token)
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")


async def test_long_poll_wakes_on_account_data(
    server: OutlastProcess, pair: tuple[AsyncClient, AsyncClient]
) -> None:
    alice, _ = pair
    first = await raw_sync(server.url, alice.access_token)
    started = time.monotonic()
    poll = asyncio.create_task(
        raw_sync(server.url, alice.access_token, first["next_batch"], timeout_ms=25_000)
    )
    await asyncio.sleep(0.5)
    status, _ = await api(
        "PUT",
        f"{server.url}{V3}/user/{ALICE}/account_data/org.example.wake",
        {"now": True},
        alice.access_token,
    )
    assert status == 200
    woke = await asyncio.wait_for(poll, 30)
    assert global_data(woke) == {"org.example.wake": {"now": True}}
    assert time.monotonic() - started < 20


async def test_permissions_and_refused_types(
    server: OutlastProcess, pair: tuple[AsyncClient, AsyncClient]
) -> None:
    alice, bob = pair
    url = server.url + V3
    room_id = str(expect(await alice.room_create(), RoomCreateResponse).room_id)
    for method, path, body in (
        ("GET", f"/user/{ALICE}/account_data/org.example.theme", None),
        ("PUT", f"/user/{ALICE}/account_data/org.example.theme", {"x": 1}),
        ("PUT", f"/user/{ALICE}/rooms/{room_id}/account_data/org.example.x", {"x": 1}),
        ("GET", f"/user/{ALICE}/rooms/{room_id}/tags", None),
        ("PUT", f"/user/{ALICE}/rooms/{room_id}/tags/u.x", {}),
        ("DELETE", f"/user/{ALICE}/rooms/{room_id}/tags/u.x", None),
    ):
        status, answer = await api(method, url + path, body, bob.access_token)
        assert (status, answer["errcode"]) == (403, "M_FORBIDDEN"), path

    token = alice.access_token
    status, answer = await api(
        "PUT",
        f"{url}/user/{ALICE}/rooms/{room_id}/account_data/m.fully_read",
        {"event_id": "$x"},
        token,
    )
    assert (status, answer["errcode"]) == (405, "M_BAD_JSON")
    status, answer = await api("PUT", f"{url}/user/{ALICE}/account_data/m.push_rules", {}, token)
    assert (status, answer["errcode"]) == (405, "M_BAD_JSON")
    status, answer = await api(
        "PUT", f"{url}/user/{ALICE}/account_data/org.example.list", b"[1, 2]", token
    )
    assert (status, answer["errcode"]) == (400, "M_BAD_JSON")
    status, answer = await api(
        "PUT", f"{url}/user/{ALICE}/rooms/not-a-room/account_data/a.b", {}, token
    )
    assert (status, answer["errcode"]) == (400, "M_INVALID_PARAM")
