"""Ignoring a user: their invites and messages are not sent, their state events are."""

from __future__ import annotations

from typing import Any

from nio import AsyncClient, RoomCreateResponse, RoomSendResponse

from tests.e2e.helpers import V3, api, expect, text
from tests.fineprint.helpers import get, public_room

IGNORE = f"{V3}/user/@bob:localhost/account_data/m.ignored_user_list"


async def invites(url: str, bob: AsyncClient) -> set[str]:
    status, body = await api("GET", f"{url}{V3}/sync", token=bob.access_token)
    assert status == 200, body
    return set(body.get("rooms", {}).get("invite", {}))


async def test_invites_from_ignored_users_are_hidden(
    url: str, pair: tuple[AsyncClient, AsyncClient]
) -> None:
    alice, bob = pair
    ignoring: dict[str, dict[str, object]] = {"ignored_users": {"@alice:localhost": {}}}
    assert (await api("PUT", url + IGNORE, ignoring, bob.access_token))[0] == 200
    hidden = expect(await alice.room_create(invite=["@bob:localhost"]), RoomCreateResponse)
    assert hidden.room_id not in await invites(url, bob)

    assert (await api("PUT", url + IGNORE, {"ignored_users": {}}, bob.access_token))[0] == 200
    shown = expect(await alice.room_create(invite=["@bob:localhost"]), RoomCreateResponse)
    assert shown.room_id in await invites(url, bob)


def said(events: list[dict[str, Any]]) -> list[str]:
    """What each event says: a message's body, a member event's display name."""
    return [e["content"].get("body") or e["content"].get("displayname") for e in events]


async def test_an_ignored_users_messages_are_left_out_but_not_their_state(
    url: str, pair: tuple[AsyncClient, AsyncClient]
) -> None:
    alice, bob = pair
    room_id = await public_room(url, bob, alice)
    first = expect(await bob.room_send(room_id, "m.room.message", text("before")), RoomSendResponse)
    since = (await get(url, bob, f"{V3}/sync"))["next_batch"]
    ignoring: dict[str, Any] = {"ignored_users": {"@alice:localhost": {}}}
    assert (await api("PUT", url + IGNORE, ignoring, bob.access_token))[0] == 200
    expect(await alice.room_send(room_id, "m.room.message", text("spam")), RoomSendResponse)
    await alice.set_displayname("Alice A")  # a state event: still sent
    nod = {"m.relates_to": {"rel_type": "m.annotation", "event_id": first.event_id, "key": "+"}}
    expect(await alice.room_send(room_id, "m.reaction", nod), RoomSendResponse)
    expect(await bob.room_send(room_id, "m.room.message", text("mine")), RoomSendResponse)

    def timeline(body: Any) -> list[str]:
        return said(body["rooms"]["join"][room_id]["timeline"]["events"])

    incremental = await get(url, bob, f"{V3}/sync", since=since)
    assert timeline(incremental) == ["Alice A", "mine"]
    assert "spam" not in timeline(await get(url, bob, f"{V3}/sync"))
    page = await get(url, bob, f"{V3}/rooms/{room_id}/messages", dir="b", limit="3")
    assert said(page["chunk"]) == ["mine", "Alice A", "before"]
    relations = f"/_matrix/client/v1/rooms/{room_id}/relations/{first.event_id}"
    assert (await get(url, bob, relations))["chunk"] == []
    assert len((await get(url, alice, relations))["chunk"]) == 1

    assert (await api("PUT", url + IGNORE, {"ignored_users": {}}, bob.access_token))[0] == 200
    expect(await alice.room_send(room_id, "m.room.message", text("hello")), RoomSendResponse)
    later = await get(url, bob, f"{V3}/sync", since=incremental["next_batch"])
    assert timeline(later) == ["hello"]
