"""Threaded read receipts and per-thread notification counts (spec v1.4, MSC3771/3773),
with matrix-nio sending and a real server counting."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from nio import AsyncClient, JoinResponse, RoomCreateResponse, RoomPreset

from tests.e2e.helpers import api, close_all, expect, register
from tests.e2e.test_relations import edit, msg, send, thread
from tests.servers import OutlastProcess

V3 = "/_matrix/client/v3"
THREADED = json.dumps({"room": {"timeline": {"unread_thread_notifications": True}}})


async def room_of(server: OutlastProcess, client: AsyncClient, room_id: str, **params: str) -> Any:
    status, body = await api(
        "GET", server.url + V3 + "/sync", token=client.access_token, params=params
    )
    assert status == 200, body
    return body["rooms"]["join"][room_id]


async def receipt(
    server: OutlastProcess, client: AsyncClient, room_id: str, event_id: str, thread_id: str | None
) -> None:
    path = f"{V3}/rooms/{quote(room_id)}/receipt/m.read/{quote(event_id)}"
    body = {} if thread_id is None else {"thread_id": thread_id}
    status, answer = await api("POST", server.url + path, body, token=client.access_token)
    assert status == 200, answer


def count(counts: dict[str, int]) -> int:
    return counts["notification_count"]


async def test_each_thread_and_the_main_timeline_count_and_clear_apart(
    server: OutlastProcess,
) -> None:
    alice, bob = await register(server.url, "alice"), await register(server.url, "bob")
    try:
        resp = await alice.room_create(preset=RoomPreset.public_chat)
        room_id = str(expect(resp, RoomCreateResponse).room_id)
        expect(await bob.join(room_id), JoinResponse)
        root = await send(alice, room_id, msg("root"))
        first = await send(bob, room_id, thread(root, "reply one"))
        second = await send(bob, room_id, thread(root, "reply two, for alice"))
        main = await send(bob, room_id, msg("a main-timeline message"))

        room = await room_of(server, alice, room_id, filter=THREADED)
        assert count(room["unread_notifications"]) == 1  # the main timeline only
        assert {k: count(v) for k, v in room["unread_thread_notifications"].items()} == {root: 2}

        # A receipt inside the thread reads the thread up to it, not the main timeline.
        await receipt(server, alice, room_id, first, root)
        room = await room_of(server, alice, room_id, filter=THREADED)
        assert count(room["unread_notifications"]) == 1
        assert count(room["unread_thread_notifications"][root]) == 1
        # The receipt is echoed with its thread, to everyone in the room.
        for client in (alice, bob):
            ephemeral = (await room_of(server, client, room_id))["ephemeral"]["events"]
            receipts = [e["content"] for e in ephemeral if e["type"] == "m.receipt"]
            assert {"thread_id": root} == {
                k: v for k, v in receipts[0][first]["m.read"][alice.user_id].items() if k != "ts"
            }

        # A main-timeline receipt on the latest event leaves the thread's last reply unread.
        await receipt(server, alice, room_id, main, "main")
        room = await room_of(server, alice, room_id, filter=THREADED)
        assert count(room["unread_notifications"]) == 0
        assert count(room["unread_thread_notifications"][root]) == 1

        # Clients that did not ask keep the unthreaded count and no per-thread map.
        plain = await room_of(server, alice, room_id)
        assert "unread_thread_notifications" not in plain

        # An unthreaded receipt reads everything up to it, in every thread.
        await receipt(server, alice, room_id, second, None)
        room = await room_of(server, alice, room_id, filter=THREADED)
        assert room["unread_thread_notifications"] == {}
        assert count(room["unread_notifications"]) == 0

        # An edit notifies no one (the default rule .m.rule.suppress_edits), in a
        # thread or not; a new reply counts in its thread again.
        await send(bob, room_id, edit(second, "reply two, edited"))
        room = await room_of(server, alice, room_id, filter=THREADED)
        assert count(room["unread_notifications"]) == 0
        assert room["unread_thread_notifications"] == {}
        await send(bob, room_id, thread(root, "reply three"))
        room = await room_of(server, alice, room_id, filter=THREADED)
        assert count(room["unread_notifications"]) == 0
        assert {k: count(v) for k, v in room["unread_thread_notifications"].items()} == {root: 1}
    finally:
        await close_all(alice, bob)
