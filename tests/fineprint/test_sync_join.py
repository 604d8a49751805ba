"""The first incremental /sync after a join: the room's latest events, ``limited`` (with a
``prev_batch``) whenever earlier history exists that the timeline does not show."""

from __future__ import annotations

import json
from typing import Any

from nio import AsyncClient

from tests.e2e.helpers import V3, text
from tests.fineprint.helpers import get, join, public_room


async def joined_room(url: str, bob: AsyncClient, since: str, room_id: str, **f: Any) -> Any:
    body = await get(url, bob, f"{V3}/sync", since=since, filter=json.dumps({"room": f}))
    return body["rooms"]["join"][room_id]


async def test_a_join_brings_the_latest_history_marked_limited(
    url: str, pair: tuple[AsyncClient, AsyncClient]
) -> None:
    alice, bob = pair
    room_id = await public_room(url, alice)
    for n in range(12):
        await alice.room_send(room_id, "m.room.message", text(f"m{n}"))
    since = (await get(url, bob, f"{V3}/sync"))["next_batch"]
    await join(url, bob, room_id)

    room = await joined_room(url, bob, since, room_id, timeline={"limit": 5})
    timeline = room["timeline"]
    assert timeline["limited"] is True and timeline["prev_batch"]
    assert len(timeline["events"]) == 5
    assert timeline["events"][-1]["state_key"] == "@bob:localhost"
    # The state is complete: the room's creation is in it, though not in the timeline.
    assert "m.room.create" in {e["type"] for e in room["state"]["events"]}
    earlier = await get(
        url,
        bob,
        f"{V3}/rooms/{room_id}/messages",
        dir="b",
        limit="3",
        **{"from": timeline["prev_batch"]},
    )
    assert [e["content"]["body"] for e in earlier["chunk"]] == ["m7", "m6", "m5"]


async def test_a_join_to_a_short_room_brings_all_of_it_unlimited(
    url: str, pair: tuple[AsyncClient, AsyncClient]
) -> None:
    alice, bob = pair
    room_id = await public_room(url, alice)
    since = (await get(url, bob, f"{V3}/sync"))["next_batch"]
    await join(url, bob, room_id)

    timeline = (await joined_room(url, bob, since, room_id, timeline={"limit": 50}))["timeline"]
    assert timeline["events"][0]["type"] == "m.room.create"  # the whole history fits
    assert timeline["limited"] is False


async def test_a_join_with_a_filtered_timeline_is_still_limited(
    url: str, pair: tuple[AsyncClient, AsyncClient]
) -> None:
    alice, bob = pair
    room_id = await public_room(url, alice)
    for n in range(3):
        await alice.room_send(room_id, "m.room.message", text(f"m{n}"))
    since = (await get(url, bob, f"{V3}/sync"))["next_batch"]
    await join(url, bob, room_id)

    only_members: dict[str, Any] = {"limit": 1, "types": ["m.room.member"]}
    timeline = (await joined_room(url, bob, since, room_id, timeline=only_members))["timeline"]
    assert [e["state_key"] for e in timeline["events"]] == ["@bob:localhost"]
    assert timeline["limited"] is True  # alice's join, before it, matches too
    only_members["limit"] = 2
    timeline = (await joined_room(url, bob, since, room_id, timeline=only_members))["timeline"]
    assert [e["state_key"] for e in timeline["events"]] == ["@alice:localhost", "@bob:localhost"]
    assert timeline["limited"] is False  # every member event of the room is shown
