"""/messages: lazily loaded members come with the page; a filtered page still says
where the next one starts."""

from __future__ import annotations

import json

from nio import AsyncClient, RoomCreateResponse, RoomSendResponse

from tests.e2e.helpers import V3, expect, text
from tests.fineprint.helpers import get, public_room


async def test_lazy_loading_returns_the_senders_members(
    url: str, pair: tuple[AsyncClient, AsyncClient]
) -> None:
    alice, bob = pair
    room_id = await public_room(url, alice, bob)
    await bob.set_displayname("Bob B")
    expect(await bob.room_send(room_id, "m.room.message", text("hi")), RoomSendResponse)
    messages = f"{V3}/rooms/{room_id}/messages"
    lazy = json.dumps({"lazy_load_members": True, "types": ["m.room.message"]})

    page = await get(url, alice, messages, dir="b", limit="1", filter=lazy)
    assert [e["sender"] for e in page["chunk"]] == ["@bob:localhost"]
    members = [e for e in page["state"] if e["type"] == "m.room.member"]
    assert [(e["state_key"], e["content"]["displayname"]) for e in members] == [
        ("@bob:localhost", "Bob B")
    ]
    plain = await get(url, alice, messages, dir="b", limit="1")
    assert not plain.get("state")


async def test_a_page_of_url_events_still_has_an_end(
    url: str, pair: tuple[AsyncClient, AsyncClient]
) -> None:
    alice, _ = pair
    room_id = expect(await alice.room_create(), RoomCreateResponse).room_id
    sent = []
    for n in range(5):
        image = {"msgtype": "m.image", "body": f"{n}.png", "url": f"mxc://localhost/{n}"}
        sent.append(
            expect(await alice.room_send(room_id, "m.room.message", image), RoomSendResponse)
        )
        for _ in range(3):
            await alice.room_send(room_id, "m.room.message", text("chatter"))
    only_urls = json.dumps({"contains_url": True})
    found: list[str] = []
    params = {"dir": "b", "limit": "2", "filter": only_urls}
    for _ in range(10):
        page = await get(url, alice, f"{V3}/rooms/{room_id}/messages", **params)
        found += [e["event_id"] for e in page["chunk"]]
        if len(found) < len(sent):
            assert "end" in page, page  # more url events are still to come
        if "end" not in page:
            break
        params["from"] = page["end"]
    assert found == [s.event_id for s in reversed(sent)]
