"""Presence in incremental /sync: people who come to share a room see each other's
presence; ``set_presence`` on /sync sets the syncing user's."""

from __future__ import annotations

from typing import Any

from nio import AsyncClient, PresenceSetResponse

from tests.e2e.helpers import V3, api, expect
from tests.fineprint.helpers import get, join, public_room


def presence_of(body: Any) -> dict[str, tuple[str, str | None]]:
    return {
        e["sender"]: (e["content"]["presence"], e["content"].get("status_msg"))
        for e in body.get("presence", {}).get("events", [])
    }


async def test_a_join_brings_presence_both_ways(
    url: str, pair: tuple[AsyncClient, AsyncClient]
) -> None:
    alice, bob = pair
    room_id = await public_room(url, alice)
    expect(await alice.set_presence("online", "here"), PresenceSetResponse)
    alice_since = (await get(url, alice, f"{V3}/sync"))["next_batch"]
    first = await get(url, bob, f"{V3}/sync", set_presence="unavailable")
    assert "@alice:localhost" not in presence_of(first)  # no room shared yet
    await join(url, bob, room_id)

    bobs = await get(url, bob, f"{V3}/sync", since=first["next_batch"])
    assert presence_of(bobs)["@alice:localhost"] == ("online", "here")
    alices = await get(url, alice, f"{V3}/sync", since=alice_since)
    assert presence_of(alices)["@bob:localhost"] == ("unavailable", None)
    # Once told, not told again while nothing changes.
    again = await get(url, bob, f"{V3}/sync", since=bobs["next_batch"])
    assert "@alice:localhost" not in presence_of(again)


async def test_set_presence_on_sync_reaches_room_mates(
    url: str, pair: tuple[AsyncClient, AsyncClient]
) -> None:
    alice, bob = pair
    await public_room(url, alice, bob)
    since = (await get(url, alice, f"{V3}/sync"))["next_batch"]
    for state in ("online", "unavailable", "offline"):
        await get(url, bob, f"{V3}/sync", set_presence=state, timeout="0")
        body = await get(url, alice, f"{V3}/sync", since=since)
        assert presence_of(body)["@bob:localhost"] == (state, None)
        since = body["next_batch"]
        assert (await get(url, alice, f"{V3}/presence/@bob:localhost/status"))["presence"] == state
    # Syncing again in the same state writes nothing new.
    await get(url, bob, f"{V3}/sync", set_presence="offline")
    assert "@bob:localhost" not in presence_of(await get(url, alice, f"{V3}/sync", since=since))
    status, body = await api(
        "GET", f"{url}{V3}/sync", token=bob.access_token, params={"set_presence": "asleep"}
    )
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
