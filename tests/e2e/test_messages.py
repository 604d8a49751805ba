"""Sending and reading messages: idempotent sends, /messages pagination and filters,
history visibility and transaction ids."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from nio import (
    AsyncClient,
    JoinResponse,
    LoginResponse,
    MessageDirection,
    RoomCreateResponse,
    RoomMessagesResponse,
    RoomPutStateResponse,
    RoomSendResponse,
    RoomVisibility,
)

from tests.e2e.helpers import (
    all_messages,
    api,
    close_all,
    expect,
    ids,
    new_client,
    register,
    sync,
    text,
)
from tests.servers import OutlastProcess

V3 = "/_matrix/client/v3"


@pytest.fixture
async def pair(server: OutlastProcess) -> AsyncIterator[tuple[AsyncClient, AsyncClient, str]]:
    """alice and bob, both joined to alice's public room."""
    alice = await register(server.url, "alice")
    bob = await register(server.url, "bob")
    try:
        room = expect(
            await alice.room_create(visibility=RoomVisibility.public), RoomCreateResponse
        ).room_id
        expect(await bob.join(room), JoinResponse)
        yield alice, bob, room
    finally:
        await close_all(alice, bob)


async def send_texts(client: AsyncClient, room: str, bodies: list[str]) -> list[str]:
    out = []
    for body in bodies:
        out.append(
            expect(
                await client.room_send(room, "m.room.message", text(body)), RoomSendResponse
            ).event_id
        )
    return out


async def page(
    client: AsyncClient,
    room: str,
    start: str | None,
    direction: str,
    limit: int,
    end: str | None = None,
    message_filter: dict[str, Any] | None = None,
) -> RoomMessagesResponse:
    d = MessageDirection.back if direction == "b" else MessageDirection.front
    return expect(
        await client.room_messages(
            room, start, end, direction=d, limit=limit, message_filter=message_filter
        ),
        RoomMessagesResponse,
    )


def bodies(events: list[dict[str, Any]]) -> list[str]:
    return [e["content"]["body"] for e in events if e["type"] == "m.room.message"]


async def test_send_is_idempotent_per_txn(pair: tuple[AsyncClient, AsyncClient, str]) -> None:
    alice, bob, room = pair
    first = expect(
        await alice.room_send(room, "m.room.message", text("once"), tx_id="txn-1"), RoomSendResponse
    )
    again = expect(
        await alice.room_send(room, "m.room.message", text("once"), tx_id="txn-1"), RoomSendResponse
    )
    assert first.event_id == again.event_id
    # Same txnId from another user is a different event.
    other = expect(
        await bob.room_send(room, "m.room.message", text("once"), tx_id="txn-1"), RoomSendResponse
    )
    assert other.event_id != first.event_id
    events = await all_messages(bob, room)
    assert ids(events).count(first.event_id) == 1
    assert bodies(events) == ["once", "once"]


async def test_backward_and_forward_pagination(pair: tuple[AsyncClient, AsyncClient, str]) -> None:
    alice, bob, room = pair
    sent = await send_texts(alice, room, [f"m{i}" for i in range(25)])

    # Backwards from the end, 10 at a time, until there is no `end`.
    back: list[dict[str, Any]] = []
    start: str | None = None
    for _ in range(20):
        resp = await page(bob, room, start, "b", 10)
        assert len(resp.chunk) <= 10
        back.extend(e.source for e in resp.chunk)
        if not resp.end:
            break
        assert resp.chunk
        start = resp.end
    else:
        pytest.fail("backward pagination did not end")
    assert len(ids(back)) == len(set(ids(back)))
    assert [e["event_id"] for e in back if e["type"] == "m.room.message"] == sent[::-1]
    assert back[-1]["type"] == "m.room.create"
    assert back[0]["event_id"] == sent[-1]

    # Forwards from the beginning gives the same events in the opposite order.
    forward: list[dict[str, Any]] = []
    start = None
    for _ in range(20):
        resp = await page(bob, room, start, "f", 10)
        forward.extend(e.source for e in resp.chunk)
        if not resp.end or not resp.chunk:
            break
        start = resp.end
    assert ids(forward) == ids(back)[::-1]

    # Paging back from a middle token, then forward from the same token, splits cleanly.
    first = await page(bob, room, None, "b", 10)
    older = await page(bob, room, first.end, "b", 10)
    newer = await page(bob, room, first.end, "f", 10)
    assert [e.event_id for e in older.chunk] == sent[-11:-21:-1]
    assert [e.event_id for e in newer.chunk] == sent[-10:]
    # `to` bounds a page.
    bounded = await page(bob, room, None, "b", 50, end=first.end)
    assert [e.event_id for e in bounded.chunk] == sent[-1:-11:-1]


async def test_sync_tokens_work_as_pagination_tokens(
    pair: tuple[AsyncClient, AsyncClient, str],
) -> None:
    alice, bob, room = pair
    sent = await send_texts(alice, room, [f"a{i}" for i in range(8)])
    first = await sync(bob, timeout=0, sync_filter={"room": {"timeline": {"limit": 3}}})
    timeline = first.rooms.join[room].timeline
    assert [e.event_id for e in timeline.events] == sent[-3:]
    assert timeline.limited and timeline.prev_batch

    before = await page(bob, room, timeline.prev_batch, "b", 5)
    assert [e.event_id for e in before.chunk] == sent[-4:-9:-1]

    # next_batch as `from`: backwards gives the newest; forwards gives what comes later.
    newest = await page(bob, room, first.next_batch, "b", 2)
    assert [e.event_id for e in newest.chunk] == sent[-1:-3:-1]
    later = await send_texts(alice, room, ["b0", "b1"])
    after = await page(bob, room, first.next_batch, "f", 10)
    assert [e.event_id for e in after.chunk] == later


async def test_messages_filters(pair: tuple[AsyncClient, AsyncClient, str]) -> None:
    alice, bob, room = pair
    await send_texts(alice, room, ["a1", "a2"])
    await send_texts(bob, room, ["b1"])
    expect(await alice.room_send(room, "org.example.ping", {"n": 1}), RoomSendResponse)
    expect(await alice.room_put_state(room, "m.room.topic", {"topic": "t"}), RoomPutStateResponse)

    only_messages = await page(
        bob, room, None, "b", 50, message_filter={"types": ["m.room.message"]}
    )
    assert [e.source["content"]["body"] for e in only_messages.chunk] == ["b1", "a2", "a1"]

    wildcard = await page(bob, room, None, "b", 50, message_filter={"types": ["m.room.*"]})
    assert "org.example.ping" not in {e.source["type"] for e in wildcard.chunk}

    not_types = await page(
        bob, room, None, "b", 50, message_filter={"not_types": ["m.room.member", "m.room.message"]}
    )
    kinds = {e.source["type"] for e in not_types.chunk}
    assert "org.example.ping" in kinds and "m.room.topic" in kinds
    assert not kinds & {"m.room.member", "m.room.message"}

    from_bob = await page(bob, room, None, "b", 50, message_filter={"senders": ["@bob:localhost"]})
    assert {e.source["sender"] for e in from_bob.chunk} == {"@bob:localhost"}
    assert "b1" in bodies([e.source for e in from_bob.chunk])

    not_alice = await page(
        bob,
        room,
        None,
        "b",
        50,
        message_filter={"not_senders": ["@alice:localhost"], "types": ["m.room.message"]},
    )
    assert bodies([e.source for e in not_alice.chunk]) == ["b1"]

    # A filter's limit caps the page.
    limited = await page(bob, room, None, "b", 50, message_filter={"limit": 2})
    assert len(limited.chunk) == 2 and limited.end


async def test_history_visibility_joined_vs_shared(server: OutlastProcess) -> None:
    alice = await register(server.url, "alice")
    bob = await register(server.url, "bob")
    carol = await register(server.url, "carol")
    try:
        joined_room = expect(
            await alice.room_create(visibility=RoomVisibility.public), RoomCreateResponse
        ).room_id
        shared_room = expect(
            await alice.room_create(visibility=RoomVisibility.public), RoomCreateResponse
        ).room_id
        expect(
            await alice.room_put_state(
                joined_room, "m.room.history_visibility", {"history_visibility": "joined"}
            ),
            RoomPutStateResponse,
        )
        [secret] = await send_texts(alice, joined_room, ["before bob"])
        await send_texts(alice, shared_room, ["before bob"])
        expect(await bob.join(joined_room), JoinResponse)
        expect(await bob.join(shared_room), JoinResponse)
        await send_texts(alice, joined_room, ["after bob"])
        await send_texts(alice, shared_room, ["after bob"])

        assert bodies(await all_messages(bob, joined_room)) == ["after bob"]
        assert bodies(await all_messages(bob, shared_room)) == ["before bob", "after bob"]
        status, _ = await api(
            "GET", server.url + V3 + f"/rooms/{joined_room}/event/{secret}", token=bob.access_token
        )
        assert status == 404

        first = await sync(bob, timeout=0, sync_filter={"room": {"timeline": {"limit": 50}}})
        assert bodies([e.source for e in first.rooms.join[joined_room].timeline.events]) == [
            "after bob"
        ]
        assert bodies([e.source for e in first.rooms.join[shared_room].timeline.events]) == [
            "before bob",
            "after bob",
        ]
        # alice, joined throughout, sees both in either room.
        assert bodies(await all_messages(alice, joined_room)) == ["before bob", "after bob"]

        # Not joined at all: carol cannot read a shared room's history.
        status, body = await api(
            "GET", server.url + V3 + f"/rooms/{shared_room}/messages", token=carol.access_token
        )
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    finally:
        await close_all(alice, bob, carol)


async def test_transaction_id_only_for_sending_device(
    server: OutlastProcess, pair: tuple[AsyncClient, AsyncClient, str]
) -> None:
    alice, bob, room = pair
    other_device = await _second_device(server, "alice")
    try:
        sent = expect(
            await alice.room_send(room, "m.room.message", text("tx"), tx_id="my-txn"),
            RoomSendResponse,
        )

        def find(events: list[Any]) -> dict[str, Any]:
            [event] = [e.source for e in events if e.event_id == sent.event_id]
            return dict(event)

        own = find((await sync(alice, timeout=0)).rooms.join[room].timeline.events)
        assert own["unsigned"]["transaction_id"] == "my-txn"
        assert (
            "transaction_id"
            not in find((await sync(bob, timeout=0)).rooms.join[room].timeline.events)["unsigned"]
        )
        assert "transaction_id" not in find(
            (await sync(other_device, timeout=0)).rooms.join[room].timeline.events
        ).get("unsigned", {})
        via_messages = await page(alice, room, None, "b", 1)
        assert via_messages.chunk[0].source["unsigned"]["transaction_id"] == "my-txn"
        via_bob = await page(bob, room, None, "b", 1)
        assert "transaction_id" not in via_bob.chunk[0].source["unsigned"]
    finally:
        await other_device.close()


async def _second_device(server: OutlastProcess, name: str) -> AsyncClient:
    client = new_client(server.url, name)
    expect(await client.login(f"pw-{name}"), LoginResponse)
    return client
