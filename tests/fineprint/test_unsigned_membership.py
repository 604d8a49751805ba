"""Served events carry ``unsigned.membership``: the reader's membership at each event
(spec v1.11), on /sync, /messages, /context, /event and /relations alike."""

from __future__ import annotations

from nio import AsyncClient, RoomSendResponse

from tests.e2e.helpers import V3, expect, text
from tests.fineprint.helpers import get, join, public_room


async def test_each_event_says_what_the_reader_was_then(
    url: str, pair: tuple[AsyncClient, AsyncClient]
) -> None:
    alice, bob = pair
    room_id = await public_room(url, alice)
    send = alice.room_send
    early = expect(await send(room_id, "m.room.message", text("early")), RoomSendResponse)
    await join(url, bob, room_id)
    later = expect(await send(room_id, "m.room.message", text("later")), RoomSendResponse)
    reaction = {
        "m.relates_to": {"rel_type": "m.annotation", "event_id": later.event_id, "key": "x"}
    }
    expect(await send(room_id, "m.reaction", reaction), RoomSendResponse)

    room = f"{V3}/rooms/{room_id}"
    page = await get(url, bob, f"{room}/messages", dir="b", limit="50")
    seen = {e["event_id"]: e["unsigned"]["membership"] for e in page["chunk"]}
    assert seen[early.event_id] == "leave"  # shared history from before bob was in
    assert seen[later.event_id] == "join"
    own = [e for e in page["chunk"] if e.get("state_key") == "@bob:localhost"][0]
    assert own["unsigned"]["membership"] == "join"  # counting the event itself
    # alice is told "join" from her own join on; the create event came before it.
    theirs = await get(url, alice, f"{room}/messages", dir="b", limit="50")
    told = {e["type"]: e["unsigned"]["membership"] for e in reversed(theirs["chunk"])}
    assert told["m.room.create"] == "leave"
    assert {m for t, m in told.items() if t != "m.room.create"} == {"join"}

    sync = await get(url, bob, f"{V3}/sync")
    timeline = sync["rooms"]["join"][room_id]["timeline"]["events"]
    assert {e["event_id"]: e["unsigned"]["membership"] for e in timeline}[later.event_id] == "join"
    assert (await get(url, bob, f"{room}/event/{early.event_id}"))["unsigned"][
        "membership"
    ] == "leave"
    context = await get(url, bob, f"{room}/context/{later.event_id}", limit="10")
    assert context["event"]["unsigned"]["membership"] == "join"
    assert {e["unsigned"]["membership"] for e in context["events_before"]} >= {"leave", "join"}
    related = await get(url, bob, f"/_matrix/client/v1/rooms/{room_id}/relations/{later.event_id}")
    assert [e["unsigned"]["membership"] for e in related["chunk"]] == ["join"]
