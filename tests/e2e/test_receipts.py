"""Receipts, read markers, unread notifications and the per-message unread number, end to end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from nio import (
    AsyncClient,
    FullyReadEvent,
    JoinResponse,
    ReceiptEvent,
    RoomCreateResponse,
    RoomReadMarkersResponse,
    RoomSendResponse,
    RoomVisibility,
    SyncResponse,
    UpdateReceiptMarkerResponse,
)
from nio.api import ReceiptType

from tests.e2e.helpers import api, close_all, eventually, expect, register, sync, text
from tests.servers import OutlastProcess, http_json

V3 = "/_matrix/client/v3"
UNREAD = "io.outlast.unread_count"

Trio = tuple[AsyncClient, AsyncClient, AsyncClient, str]


@pytest.fixture
async def trio(server: OutlastProcess) -> AsyncIterator[Trio]:
    """Alice's room with Bob and Carol joined."""
    alice = await register(server.url, "alice")
    bob = await register(server.url, "bob")
    carol = await register(server.url, "carol")
    try:
        room = expect(
            await alice.room_create(visibility=RoomVisibility.public, name="read"),
            RoomCreateResponse,
        ).room_id
        expect(await bob.join(room), JoinResponse)
        expect(await carol.join(room), JoinResponse)
        yield alice, bob, carol, room
    finally:
        await close_all(alice, bob, carol)


async def send(client: AsyncClient, room: str, body: str) -> str:
    return str(
        expect(
            await client.room_send(room, "m.room.message", text(body)), RoomSendResponse
        ).event_id
    )


async def read(
    client: AsyncClient, room: str, event_id: str, receipt_type: ReceiptType = ReceiptType.read
) -> None:
    expect(
        await client.update_receipt_marker(room, event_id, receipt_type),
        UpdateReceiptMarkerResponse,
    )


def receipts(resp: SyncResponse, room: str) -> list[tuple[str, str, str]]:
    """(event id, receipt type, user) of every receipt in a room's ephemeral events."""
    if room not in resp.rooms.join:
        return []
    return [
        (r.event_id, r.receipt_type, r.user_id)
        for e in resp.rooms.join[room].ephemeral
        if isinstance(e, ReceiptEvent)
        for r in e.receipts
    ]


def unread_counts(resp: SyncResponse, room: str) -> tuple[int, int]:
    counts = resp.rooms.join[room].unread_notifications
    assert counts is not None
    return counts.notification_count, counts.highlight_count


async def number_everywhere(
    server: OutlastProcess, client: AsyncClient, room: str, event_id: str
) -> tuple[Any, Any, Any]:
    """The unread number of one event as /sync (initial), /messages and /event show it."""
    token = client.access_token
    status, synced = await api(
        "GET", f"{server.url}{V3}/sync", token=token, params={"timeout": "0"}
    )
    assert status == 200, synced
    timeline = synced["rooms"]["join"][room]["timeline"]["events"]
    in_sync = next(e for e in timeline if e["event_id"] == event_id)["unsigned"].get(UNREAD)
    status, page = await api(
        "GET",
        f"{server.url}{V3}/rooms/{room}/messages",
        token=token,
        params={"dir": "b", "limit": "50"},
    )
    assert status == 200, page
    in_page = next(e for e in page["chunk"] if e["event_id"] == event_id)["unsigned"].get(UNREAD)
    status, single = await api(
        "GET", f"{server.url}{V3}/rooms/{room}/event/{event_id}", token=token
    )
    assert status == 200, single
    return in_sync, in_page, single["unsigned"].get(UNREAD)


async def initial_receipts(
    server: OutlastProcess, client: AsyncClient, room: str
) -> set[tuple[str, str, str]]:
    """Receipts in a room as a fresh (token-less) /sync shows them to ``client``."""
    status, body = await api(
        "GET", f"{server.url}{V3}/sync", token=client.access_token, params={"timeout": "0"}
    )
    assert status == 200, body
    return {
        (event_id, rtype, user)
        for e in body["rooms"]["join"][room]["ephemeral"]["events"]
        if e["type"] == "m.receipt"
        for event_id, by_type in e["content"].items()
        for rtype, by_user in by_type.items()
        for user in by_user
    }


async def sync_waiters(server: OutlastProcess) -> int:
    status, body = await asyncio.to_thread(http_json, "GET", server.url + "/_outlast/health")
    return int(body["sync_waiters"]) if status == 200 else 0


async def test_receipts_reach_members_and_private_ones_stay_private(
    server: OutlastProcess, trio: Trio
) -> None:
    alice, bob, carol, room = trio
    event_id = await send(alice, room, "did you read this?")
    first = await sync(alice, timeout=0)
    await read(bob, room, event_id)
    await read(carol, room, event_id, ReceiptType.read_private)

    later = await sync(alice, timeout=0, since=first.next_batch)
    assert receipts(later, room) == [(event_id, "m.read", bob.user_id)]
    receipt = next(e for e in later.rooms.join[room].ephemeral if isinstance(e, ReceiptEvent))
    assert receipt.receipts[0].thread_id == "main"  # nio sends thread_id "main"; it is kept

    # An initial sync carries the current receipts; Carol alone sees her private one.
    assert await initial_receipts(server, alice, room) == {(event_id, "m.read", bob.user_id)}
    assert await initial_receipts(server, carol, room) == {
        (event_id, "m.read", bob.user_id),
        (event_id, "m.read.private", carol.user_id),
    }


async def test_unread_notifications_go_down_when_the_user_reads(trio: Trio) -> None:
    alice, bob, carol, room = trio
    first = await sync(alice, timeout=0)
    await send(bob, room, "hello everyone")
    await send(carol, room, "alice, are you around?")
    last = await send(bob, room, f"ping {alice.user_id}")
    await send(alice, room, "my own messages never count")

    before = await sync(alice, timeout=0, since=first.next_batch)
    assert unread_counts(before, room) == (3, 2)

    expect(await alice.room_read_markers(room, last, read_event=last), RoomReadMarkersResponse)
    after = await sync(alice, timeout=0, since=before.next_batch)
    assert unread_counts(after, room) == (0, 0)
    markers = [e for e in after.rooms.join[room].account_data if isinstance(e, FullyReadEvent)]
    assert [m.event_id for m in markers] == [last]

    await send(bob, room, "one more")
    again = await sync(alice, timeout=0, since=after.next_batch)
    assert unread_counts(again, room) == (1, 0)


async def test_unread_number_counts_down_as_members_read(
    server: OutlastProcess, trio: Trio
) -> None:
    alice, bob, carol, room = trio
    event_id = await send(alice, room, "KakaoTalk-style")
    assert await number_everywhere(server, alice, room, event_id) == (2, 2, 2)

    await read(bob, room, event_id)
    assert await number_everywhere(server, alice, room, event_id) == (1, 1, 1)

    # A receipt on a later event implies this one was read; private receipts count too.
    later = await send(bob, room, "a reply")
    await read(carol, room, later, ReceiptType.read_private)
    assert await number_everywhere(server, alice, room, event_id) == (0, 0, 0)
    # Every reader sees the same number, and Bob's reply waits only for Alice.
    assert (await number_everywhere(server, carol, room, event_id))[2] == 0
    assert (await number_everywhere(server, bob, room, later))[2] == 1


async def test_senders_long_poll_wakes_when_someone_reads(
    server: OutlastProcess, trio: Trio
) -> None:
    alice, bob, _, room = trio
    event_id = await send(alice, room, "tell me when you have read it")
    first = await sync(alice, timeout=0)
    poll = asyncio.create_task(alice.sync(timeout=20_000, since=first.next_batch))
    try:
        await eventually(lambda: sync_waiters(server))
        await read(bob, room, event_id)
        resp = expect(await asyncio.wait_for(poll, 15), SyncResponse)
    finally:
        poll.cancel()
    assert receipts(resp, room) == [(event_id, "m.read", bob.user_id)]


async def test_receipts_never_move_backwards(server: OutlastProcess, trio: Trio) -> None:
    alice, bob, _, room = trio
    early = await send(alice, room, "one")
    late = await send(alice, room, "two")
    await read(bob, room, late)
    first = await sync(alice, timeout=0)
    await read(bob, room, early)
    quiet = await sync(alice, timeout=0, since=first.next_batch)
    assert receipts(quiet, room) == []
    assert (await number_everywhere(server, alice, room, late))[2] == 1  # Carol only


async def test_receipt_and_marker_errors(server: OutlastProcess, trio: Trio) -> None:
    alice, bob, _, room = trio
    event_id = await send(alice, room, "x")
    other = expect(await bob.room_create(name="elsewhere"), RoomCreateResponse).room_id
    elsewhere = await send(bob, other, "not in alice's room")
    dave = await register(server.url, "dave")
    base = f"{server.url}{V3}/rooms"
    token = alice.access_token
    try:
        cases: list[tuple[str, str, Any, str | None, int, str]] = [
            (
                "POST",
                f"{base}/{room}/receipt/m.bogus/{event_id}",
                {},
                token,
                400,
                "M_INVALID_PARAM",
            ),
            ("POST", f"{base}/{room}/receipt/m.read/$nope", {}, token, 404, "M_NOT_FOUND"),
            ("POST", f"{base}/{room}/receipt/m.read/{elsewhere}", {}, token, 404, "M_NOT_FOUND"),
            (
                "POST",
                f"{base}/{room}/receipt/m.read/{event_id}",
                {"thread_id": 5},
                token,
                400,
                "M_INVALID_PARAM",
            ),
            (
                "POST",
                f"{base}/{room}/receipt/m.read/{event_id}",
                {"thread_id": ""},
                token,
                400,
                "M_INVALID_PARAM",
            ),
            (
                "POST",
                f"{base}/{room}/receipt/m.read/{event_id}",
                b"{not json",
                token,
                400,
                "M_NOT_JSON",
            ),
            (
                "POST",
                f"{base}/{room}/receipt/m.read/{event_id}",
                {},
                dave.access_token,
                403,
                "M_FORBIDDEN",
            ),
            ("POST", f"{base}/{room}/receipt/m.read/{event_id}", {}, None, 401, "M_MISSING_TOKEN"),
            (
                "POST",
                f"{base}/not-a-room/receipt/m.read/{event_id}",
                {},
                token,
                400,
                "M_INVALID_PARAM",
            ),
            ("POST", f"{base}/{room}/read_markers", {"m.fully_read": 7}, token, 400, "M_BAD_JSON"),
            ("POST", f"{base}/{room}/read_markers", {"m.read": "$nope"}, token, 404, "M_NOT_FOUND"),
            (
                "POST",
                f"{base}/{room}/read_markers",
                {"m.fully_read": event_id},
                dave.access_token,
                403,
                "M_FORBIDDEN",
            ),
        ]
        for method, url, body, who, status, errcode in cases:
            got, answer = await api(method, url, body, who)
            assert (got, answer["errcode"]) == (status, errcode), (url, body, answer)
        # The threaded form and an explicit m.fully_read through /receipt are accepted.
        for rtype, body in (("m.read", {"thread_id": event_id}), ("m.fully_read", {})):
            got, answer = await api(
                "POST", f"{base}/{room}/receipt/{rtype}/{event_id}", body, token
            )
            assert (got, answer) == (200, {})
    finally:
        await close_all(dave)
