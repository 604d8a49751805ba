"""/sync counts from the push rules, read with matrix-nio against an in-process site."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from nio import (
    AsyncClient,
    JoinResponse,
    RoomCreateResponse,
    RoomInviteResponse,
    RoomRedactResponse,
    RoomSendResponse,
    SyncResponse,
)

from outlast.site import Site
from tests.e2e.helpers import V3, api, close_all, expect, register, sync

Pair = tuple[AsyncClient, AsyncClient, str]


@pytest.fixture
async def pair(site: Site) -> AsyncIterator[Pair]:
    """Alice's group room (three members, so not a one-to-one) with Bob and Carol."""
    url = f"http://127.0.0.1:{site.port}"
    alice = await register(url, "alice")
    bob = await register(url, "bob")
    carol = await register(url, "carol")
    try:
        room = expect(await alice.room_create(name="busy"), RoomCreateResponse).room_id
        for member in (bob, carol):
            expect(await alice.room_invite(room, member.user_id), RoomInviteResponse)
            expect(await member.join(room), JoinResponse)
        yield alice, bob, room
    finally:
        await close_all(alice, bob, carol)


async def send(client: AsyncClient, room: str, content: dict[str, Any]) -> str:
    resp = await client.room_send(room, "m.room.message", content)
    return str(expect(resp, RoomSendResponse).event_id)


def counts(resp: SyncResponse, room: str) -> tuple[int, int]:
    got = resp.rooms.join[room].unread_notifications
    assert got is not None
    return got.notification_count, got.highlight_count


def plain(body: str, **extra: Any) -> dict[str, Any]:
    return {"msgtype": "m.text", "body": body, "m.mentions": {}, **extra}


async def test_mentions_highlight_and_a_receipt_resets(pair: Pair) -> None:
    alice, bob, room = pair
    await send(bob, room, plain("good morning"))
    await send(bob, room, plain("lunch?", **{"m.mentions": {"user_ids": [alice.user_id]}}))
    # @room needs the "room" notification level (50); Bob has 0: it notifies, no highlight.
    await send(bob, room, plain("anyone?", **{"m.mentions": {"room": True}}))
    # No m.mentions at all: the legacy display-name rule applies.
    last = await send(bob, room, {"msgtype": "m.text", "body": "alice: are you there"})
    assert counts(await sync(alice, timeout=0), room) == (4, 2)
    # Bob's own messages never count for him; Alice's are not in this room yet.
    assert counts(await sync(bob, timeout=0), room) == (0, 0)

    await alice.room_read_markers(room, last, read_event=last)
    assert counts(await sync(alice, timeout=0), room) == (0, 0)
    await send(bob, room, plain("one more"))
    assert counts(await sync(alice, timeout=0), room) == (1, 0)


async def test_a_muted_room_counts_only_mentions(pair: Pair) -> None:
    """A room rule without ``notify`` mutes the room; override rules (mentions) come
    first in the spec's order, so a mention still notifies and highlights."""
    alice, bob, room = pair
    url = f"{alice.homeserver}{V3}/pushrules/global/room/{room}"
    status, _ = await api("PUT", url, {"actions": ["dont_notify"]}, alice.access_token)
    assert status == 200
    await send(bob, room, plain("muted chatter"))
    await send(bob, room, {"msgtype": "m.text", "body": "alice: no m.mentions, still muted?"})
    assert counts(await sync(alice, timeout=0), room) == (1, 1)
    await send(bob, room, plain("but this", **{"m.mentions": {"user_ids": [alice.user_id]}}))
    assert counts(await sync(alice, timeout=0), room) == (2, 2)


async def test_a_muted_sender_is_listed_and_counts_only_mentions(pair: Pair) -> None:
    """A ``sender`` rule is listed by GET /pushrules/ under its kind and, without
    ``notify``, mutes that sender everywhere but for mentions."""
    alice, bob, room = pair
    base = f"{alice.homeserver}{V3}/pushrules/"
    rule = f"{base}global/sender/{bob.user_id}"
    assert (await api("PUT", rule, {"actions": []}, alice.access_token))[0] == 200
    status, body = await api("GET", base, token=alice.access_token)
    assert status == 200
    assert {"rule_id": bob.user_id, "actions": [], "enabled": True, "default": False} in body[
        "global"
    ]["sender"]
    await send(bob, room, plain("muted sender"))
    assert counts(await sync(alice, timeout=0), room) == (0, 0)
    await send(bob, room, plain("but this", **{"m.mentions": {"user_ids": [alice.user_id]}}))
    assert counts(await sync(alice, timeout=0), room) == (1, 1)


async def test_threads_are_counted_apart_when_the_filter_asks(pair: Pair) -> None:
    alice, bob, room = pair
    root = await send(bob, room, plain("a topic"))
    reply = {"rel_type": "m.thread", "event_id": root}
    last = await send(bob, room, plain("in the thread", **{"m.relates_to": reply}))
    base = f"{alice.homeserver}{V3}"
    threaded = '{"room":{"timeline":{"unread_thread_notifications":true}}}'

    async def room_counts(params: dict[str, str]) -> dict[str, Any]:
        status, body = await api("GET", f"{base}/sync", None, alice.access_token, params)
        assert status == 200
        entry: dict[str, Any] = body["rooms"]["join"][room]
        return entry

    plain_view = await room_counts({"timeout": "0"})
    assert plain_view["unread_notifications"]["notification_count"] == 2
    assert "unread_thread_notifications" not in plain_view
    split = await room_counts({"timeout": "0", "filter": threaded})
    assert split["unread_notifications"]["notification_count"] == 1
    assert split["unread_thread_notifications"][root]["notification_count"] == 1

    # A receipt in the thread reads the thread only.
    status, _ = await api(
        "POST",
        f"{base}/rooms/{room}/receipt/m.read/{last}",
        {"thread_id": root},
        alice.access_token,
    )
    assert status == 200
    after = await room_counts({"timeout": "0", "filter": threaded})
    assert after["unread_notifications"]["notification_count"] == 1
    assert root not in after.get("unread_thread_notifications", {})


async def test_a_redacted_message_stops_counting(pair: Pair) -> None:
    alice, bob, room = pair
    keep = await send(bob, room, plain("stays"))
    gone = await send(bob, room, plain("oops", **{"m.mentions": {"user_ids": [alice.user_id]}}))
    assert counts(await sync(alice, timeout=0), room) == (2, 1)
    expect(await bob.room_redact(room, gone), RoomRedactResponse)
    assert counts(await sync(alice, timeout=0), room) == (1, 0)
    url = f"{alice.homeserver}{V3}/notifications"
    status, body = await api("GET", url, None, alice.access_token)
    assert status == 200
    assert [n["event"]["event_id"] for n in body["notifications"]] == [keep]
