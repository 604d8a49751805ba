"""What state events carry and how state writes answer."""

from __future__ import annotations

from typing import Any

from nio import AsyncClient, RoomCreateResponse, RoomPutStateResponse

from tests.e2e.helpers import V3, api, expect


async def messages(url: str, client: AsyncClient, room_id: str) -> list[dict[str, Any]]:
    status, body = await api(
        "GET",
        f"{url}{V3}/rooms/{room_id}/messages",
        token=client.access_token,
        params={"dir": "b", "limit": "50"},
    )
    assert status == 200, body
    return list(body["chunk"])


async def test_state_events_carry_what_they_replaced(
    url: str, pair: tuple[AsyncClient, AsyncClient]
) -> None:
    alice, _ = pair
    room_id = expect(await alice.room_create(name="first"), RoomCreateResponse).room_id
    first = [e for e in await messages(url, alice, room_id) if e["type"] == "m.room.name"][0]
    assert "replaces_state" not in first["unsigned"]  # the first of its key replaced nothing
    second = expect(
        await alice.room_put_state(room_id, "m.room.name", {"name": "second"}),
        RoomPutStateResponse,
    ).event_id
    await alice.set_displayname("Alice L")

    events = {e["event_id"]: e for e in await messages(url, alice, room_id)}
    assert events[second]["unsigned"]["replaces_state"] == first["event_id"]
    assert events[second]["unsigned"]["prev_content"] == {"name": "first"}
    assert events[second]["unsigned"]["prev_sender"] == "@alice:localhost"
    rename = [
        e
        for e in events.values()
        if e["type"] == "m.room.member" and e["content"].get("displayname") == "Alice L"
    ][0]
    assert rename["unsigned"]["prev_content"] == {"membership": "join", "displayname": "alice"}

    status, body = await api("GET", f"{url}{V3}/sync", token=alice.access_token)
    timeline = body["rooms"]["join"][room_id]["timeline"]["events"]
    synced = [e for e in timeline if e["event_id"] == rename["event_id"]]
    assert synced and synced[0]["unsigned"]["prev_content"]["displayname"] == "alice"


async def test_resending_identical_state_returns_the_existing_event(
    url: str, pair: tuple[AsyncClient, AsyncClient]
) -> None:
    alice, _ = pair
    room_id = expect(await alice.room_create(), RoomCreateResponse).room_id
    topic = {"topic": "tea"}
    first = expect(
        await alice.room_put_state(room_id, "m.room.topic", topic), RoomPutStateResponse
    ).event_id
    again = expect(
        await alice.room_put_state(room_id, "m.room.topic", topic), RoomPutStateResponse
    ).event_id
    assert again == first
    topics = [e for e in await messages(url, alice, room_id) if e["type"] == "m.room.topic"]
    assert [e["event_id"] for e in topics] == [first]
    changed = expect(
        await alice.room_put_state(room_id, "m.room.topic", {"topic": "coffee"}),
        RoomPutStateResponse,
    ).event_id
    assert changed != first


async def test_a_state_read_can_answer_the_whole_event(
    url: str, pair: tuple[AsyncClient, AsyncClient]
) -> None:
    alice, _ = pair
    room_id = expect(await alice.room_create(name="Tea"), RoomCreateResponse).room_id
    path = f"{url}{V3}/rooms/{room_id}/state/m.room.name/"
    assert await api("GET", path, token=alice.access_token) == (200, {"name": "Tea"})
    status, event = await api("GET", path, token=alice.access_token, params={"format": "event"})
    assert status == 200, event
    assert (event["type"], event["state_key"], event["content"]) == (
        "m.room.name",
        "",
        {"name": "Tea"},
    )
    assert (event["room_id"], event["sender"]) == (room_id, "@alice:localhost")
    assert event["event_id"].startswith("$")
    status, body = await api("GET", path, token=alice.access_token, params={"format": "pdu"})
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
