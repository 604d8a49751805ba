"""Sliding sync (MSC4186) across a three-site cluster: a long-poll at one site wakes on
a message sent at another, and a ``pos`` from one site is continued at the others."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import pytest
from nio import JoinResponse, RoomCreateResponse, RoomPreset, RoomSendResponse

from tests.cluster.harness import Cluster, close_all, http, nio_register, ok, wait_for
from tests.e2e.test_other_clients import needs_node, run_js

pytestmark = pytest.mark.slow

SLIDING = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
BODY = {
    "lists": {
        "all": {
            "ranges": [[0, 9]],
            "timeline_limit": 3,
            "required_state": [["m.room.name", ""], ["m.room.member", "$LAZY"]],
        }
    }
}


async def slide(
    url: str, token: str, pos: str | None = None, timeout_ms: int = 0
) -> dict[str, Any]:
    query = f"?timeout={timeout_ms}" + (f"&pos={quote(pos)}" if pos else "")
    status, body, _ = await http("POST", url + SLIDING + query, BODY, token, timeout=40)
    assert status == 200, body
    assert isinstance(body, dict)
    return body


def bodies(entry: dict[str, Any]) -> list[str]:
    return [e["content"]["body"] for e in entry.get("timeline", [])]


async def test_long_poll_wakes_on_another_sites_write_and_pos_moves_between_sites(
    cluster: Cluster,
) -> None:
    site_a, site_b, site_c = (cluster.site_url(n) for n in ("a", "b", "c"))
    alice = await nio_register(site_b, "alice")
    bob = await nio_register(site_a, "bob")
    try:
        created = await alice.room_create(preset=RoomPreset.public_chat, name="three sites")
        room = ok(created, RoomCreateResponse).room_id
        ok(await bob.join(room), JoinResponse)  # at site a, from the log
        token = bob.access_token

        async def listed() -> dict[str, Any] | None:
            resp = await slide(site_a, token)
            return resp if room in resp["rooms"] else None

        first, _ = await wait_for(listed, timeout=20)
        assert first["rooms"][room]["initial"] is True
        assert first["rooms"][room]["name"] == "three sites"

        # Bob's long-poll is parked at site a; Alice writes at site b.
        poll = asyncio.create_task(slide(site_a, token, first["pos"], timeout_ms=25_000))
        await asyncio.sleep(1.0)
        assert not poll.done()
        sent = ok(
            await alice.room_send(room, "m.room.message", {"msgtype": "m.text", "body": "from b"}),
            RoomSendResponse,
        ).event_id
        woken = await asyncio.wait_for(poll, 30)
        entry = woken["rooms"][room]
        assert "initial" not in entry
        assert [e["event_id"] for e in entry["timeline"]] == [sent]

        # The pos site a handed out is continued at site b and at site c: the stored
        # connection state is found there (the room is not sent again as initial),
        # and only what is new since that pos comes.
        ok(
            await alice.room_send(room, "m.room.message", {"msgtype": "m.text", "body": "next"}),
            RoomSendResponse,
        )
        for other in (site_b, site_c):
            resp = await slide(other, token, woken["pos"], timeout_ms=20_000)
            again = resp["rooms"][room]
            assert "initial" not in again, other
            assert bodies(again) == ["next"], other
            assert resp["lists"]["all"]["count"] == 1
        # And the pos from site c works back at site a.
        status, body, _ = await http(
            "POST", f"{site_a}{SLIDING}?pos={quote(resp['pos'])}", BODY, token
        )
        assert status == 200, body
        assert body["rooms"] == {}
    finally:
        await close_all(alice, bob)


@needs_node
def test_js_sdk_sliding_sync_across_sites(cluster: Cluster) -> None:
    """Element X's protocol spoken by a real client library across sites: Alice's
    matrix-js-sdk SlidingSync talks to site a, Bob's to site b; Bob sees Alice's
    invite in his room list, joins, opens the room and they talk live both ways."""
    outcome = run_js("sliding.mjs", cluster.site_url("a"), cluster.site_url("b"))
    assert outcome["invited_name"] == outcome["joined_name"] == "sliding chat"
    assert outcome["bob_bodies"] == ["hello from alice", "are you there?", "hello from bob"]
    assert "hello from bob" in outcome["alice_bodies"]
    assert outcome["failures"] == []
