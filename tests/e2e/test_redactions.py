"""Redactions end to end: every later read returns the redacted form; power checks; retries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from nio import (
    AsyncClient,
    JoinResponse,
    RoomCreateResponse,
    RoomGetEventResponse,
    RoomGetStateEventResponse,
    RoomPreset,
    RoomPutStateResponse,
    RoomRedactResponse,
    RoomSendResponse,
)

from tests.e2e.helpers import all_messages, api, close_all, expect, forbidden, register, text
from tests.servers import OutlastProcess

V3 = "/_matrix/client/v3"
ALICE, BOB = "@alice:localhost", "@bob:localhost"


@pytest.fixture
async def room(server: OutlastProcess) -> AsyncIterator[tuple[AsyncClient, AsyncClient, str]]:
    """Alice (room admin) and Bob (ordinary member) in a public room."""
    alice, bob = await register(server.url, "alice"), await register(server.url, "bob")
    try:
        resp = await alice.room_create(preset=RoomPreset.public_chat)
        room_id = str(expect(resp, RoomCreateResponse).room_id)
        expect(await bob.join(room_id), JoinResponse)
        yield alice, bob, room_id
    finally:
        await close_all(alice, bob)


async def send(client: AsyncClient, room_id: str, body: str) -> str:
    resp = await client.room_send(room_id, "m.room.message", text(body))
    return str(expect(resp, RoomSendResponse).event_id)


async def fetch(client: AsyncClient, room_id: str, event_id: str) -> dict[str, Any]:
    resp = await client.room_get_event(room_id, event_id)
    return dict(expect(resp, RoomGetEventResponse).event.source)


async def raw_sync(url: str, token: str) -> dict[str, Any]:
    status, body = await api("GET", url + V3 + "/sync", token=token, params={"timeout": "0"})
    assert status == 200, body
    return dict(body)


def assert_redacted(event: dict[str, Any], redaction_id: str, content: Any = None) -> None:
    assert event["content"] == (content or {}), event
    because = event["unsigned"]["redacted_because"]
    assert because["event_id"] == redaction_id
    assert because["type"] == "m.room.redaction"


async def test_message_is_redacted_for_everyone(
    server: OutlastProcess, room: tuple[AsyncClient, AsyncClient, str]
) -> None:
    alice, bob, room_id = room
    keep = await send(bob, room_id, "hello")
    gone = await send(bob, room_id, "something regrettable")
    resp = expect(await alice.room_redact(room_id, gone, reason="spam"), RoomRedactResponse)
    redaction_id = resp.event_id

    for client in (alice, bob):
        assert_redacted(await fetch(client, room_id, gone), redaction_id)
        events = {e["event_id"]: e for e in await all_messages(client, room_id)}
        assert_redacted(events[gone], redaction_id)
        assert events[keep]["content"]["body"] == "hello"
        redaction = events[redaction_id]
        assert redaction["content"] == {"redacts": gone, "reason": "spam"}
        assert redaction["redacts"] == gone  # also top level, for older clients
        synced = await raw_sync(server.url, client.access_token)
        timeline = {
            e["event_id"]: e for e in synced["rooms"]["join"][room_id]["timeline"]["events"]
        }
        assert_redacted(timeline[gone], redaction_id)
        assert timeline[keep]["content"]["body"] == "hello"
    # Redacting again changes nothing for readers.
    expect(await alice.room_redact(room_id, gone), RoomRedactResponse)
    assert (await fetch(bob, room_id, gone))["content"] == {}


async def test_power_levels_decide_who_may_redact(
    server: OutlastProcess, room: tuple[AsyncClient, AsyncClient, str]
) -> None:
    alice, bob, room_id = room
    hers = await send(alice, room_id, "admin words")
    forbidden(await bob.room_redact(room_id, hers))
    assert (await fetch(bob, room_id, hers))["content"]["body"] == "admin words"

    # The plain send path cannot bypass the check: the event is stored, the target kept.
    status, body = await api(
        "PUT",
        f"{server.url}{V3}/rooms/{room_id}/send/m.room.redaction/sneaky",
        {"redacts": hers},
        bob.access_token,
    )
    assert status == 200, body
    assert (await fetch(alice, room_id, hers))["content"]["body"] == "admin words"

    # Anyone may redact their own events.
    own = await send(bob, room_id, "typo")
    redaction = expect(await bob.room_redact(room_id, own), RoomRedactResponse).event_id
    assert_redacted(await fetch(alice, room_id, own), redaction)

    status, body = await api(
        "PUT", f"{server.url}{V3}/rooms/{room_id}/redact/$nope/t1", {}, alice.access_token
    )
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    status, body = await api(
        "PUT",
        f"{server.url}{V3}/rooms/{room_id}/redact/{own}/t2",
        {"reason": 5},
        alice.access_token,
    )
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")


async def test_redaction_is_idempotent_per_transaction(
    server: OutlastProcess, room: tuple[AsyncClient, AsyncClient, str]
) -> None:
    alice, bob, room_id = room
    target = await send(bob, room_id, "once")
    url = f"{server.url}{V3}/rooms/{room_id}/redact/{target}/txn-1"
    first = await api("PUT", url, {"reason": "dup"}, alice.access_token)
    second = await api("PUT", url, {"reason": "dup"}, alice.access_token)
    assert first[0] == second[0] == 200
    assert first[1]["event_id"] == second[1]["event_id"]
    redactions = [e for e in await all_messages(bob, room_id) if e["type"] == "m.room.redaction"]
    assert [e["event_id"] for e in redactions] == [first[1]["event_id"]]
    other = await api("PUT", url.replace("txn-1", "txn-2"), {}, alice.access_token)
    assert other[1]["event_id"] != first[1]["event_id"]


async def test_redacting_state_keeps_only_allowed_keys(
    server: OutlastProcess, room: tuple[AsyncClient, AsyncClient, str]
) -> None:
    alice, bob, room_id = room
    topic = expect(
        await alice.room_put_state(room_id, "m.room.topic", {"topic": "Croquet"}),
        RoomPutStateResponse,
    ).event_id
    redaction = expect(await alice.room_redact(room_id, topic), RoomRedactResponse).event_id
    state = expect(
        await bob.room_get_state_event(room_id, "m.room.topic"), RoomGetStateEventResponse
    )
    assert state.content == {}
    status, full = await api(
        "GET", f"{server.url}{V3}/rooms/{room_id}/state", token=bob.access_token
    )
    assert status == 200
    by_type = {(e["type"], e["state_key"]): e for e in full}
    assert_redacted(by_type[("m.room.topic", "")], redaction)

    # A member event keeps its membership and loses the display name.
    member = by_type[("m.room.member", BOB)]["event_id"]
    redaction = expect(await alice.room_redact(room_id, member), RoomRedactResponse).event_id
    assert_redacted(await fetch(bob, room_id, member), redaction, {"membership": "join"})
    state = expect(
        await alice.room_get_state_event(room_id, "m.room.member", BOB), RoomGetStateEventResponse
    )
    assert state.content == {"membership": "join"}
    # The room keeps working: Bob is still a member and can talk.
    await send(bob, room_id, "still here")
