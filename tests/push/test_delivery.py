"""HTTP pushers: notifications reach a real push gateway (outlast/drill/pushgw.py) once each."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from nio import AsyncClient, JoinResponse, RoomCreateResponse, RoomInviteResponse

from outlast.drill.pushgw import PushGateway
from outlast.site import Site
from tests.e2e.helpers import V3, api, close_all, eventually, expect, register
from tests.push.test_counts import plain, send
from tests.testrig import running_site

FAST_RETRIES = """
[push]
retry_initial_seconds = 0.05
retry_max_seconds = 0.2
request_timeout_seconds = 1.0
ack_wait_seconds = 4.0
"""

Room = tuple[AsyncClient, AsyncClient, str]


@pytest.fixture
async def fast_site(shared_nats: str, tmp_path: Path) -> AsyncIterator[Site]:
    async with running_site(tmp_path / "site", shared_nats, extra_toml=FAST_RETRIES) as site:
        yield site


@pytest.fixture
async def gateway() -> AsyncIterator[PushGateway]:
    async with PushGateway() as gw:
        yield gw


@pytest.fixture
async def room(fast_site: Site) -> AsyncIterator[Room]:
    """Alice and Bob in a group room with Carol (three members: .m.rule.message)."""
    url = f"http://127.0.0.1:{fast_site.port}"
    alice, bob, carol = [await register(url, n) for n in ("alice", "bob", "carol")]
    try:
        room_id = expect(await alice.room_create(name="Lunch"), RoomCreateResponse).room_id
        for member in (bob, carol):
            expect(await alice.room_invite(room_id, member.user_id), RoomInviteResponse)
            expect(await member.join(room_id), JoinResponse)
        yield alice, bob, room_id
    finally:
        await close_all(alice, bob, carol)


async def set_pusher(client: AsyncClient, pushkey: str, data: dict[str, Any]) -> None:
    body = {
        "app_id": "org.example.app",
        "pushkey": pushkey,
        "kind": "http",
        "app_display_name": "Example",
        "device_display_name": "phone",
        "lang": "en",
        "data": data,
    }
    url = f"{client.homeserver}{V3}/pushers/set"
    status, answer = await api("POST", url, body, client.access_token)
    assert status == 200, answer


async def test_a_mention_reaches_the_gateway_once_with_the_spec_body(
    room: Room, gateway: PushGateway
) -> None:
    alice, bob, room_id = room
    await set_pusher(alice, "alice-phone", {"url": gateway.url, "org.example.key": 7})
    await send(alice, room_id, plain("my own message never pushes to me"))
    mention = await send(bob, room_id, plain("hi", **{"m.mentions": {"user_ids": [alice.user_id]}}))
    chatter = await send(bob, room_id, plain("plain chatter"))
    await gateway.wait_for(lambda g: len(g.accepted("alice-phone")) >= 2, timeout=10)

    first, second = (r.notification for r in gateway.accepted("alice-phone"))
    assert [r.problems for r in gateway.received] == [(), ()]
    assert gateway.received[0].user_agent == "Outlast (local)"  # the sending site's name
    assert first["event_id"] == mention and second["event_id"] == chatter
    assert first["room_id"] == room_id and first["type"] == "m.room.message"
    assert first["sender"] == bob.user_id and first["content"]["body"] == "hi"
    assert first["room_name"] == "Lunch" and first["sender_display_name"] == "bob"
    assert first["prio"] == "high" and second["prio"] == "low"
    assert first["counts"]["unread"] in (1, 2) and second["counts"]["unread"] == 2
    device = first["devices"][0]
    assert device["app_id"] == "org.example.app" and device["pushkey"] == "alice-phone"
    assert isinstance(device["pushkey_ts"], int) and device["pushkey_ts"] > 1_600_000_000
    assert device["data"] == {"org.example.key": 7}  # everything but url
    assert device["tweaks"]["highlight"] is True
    # The pusher listing does not show Outlast's own bookkeeping.
    status, listed = await api("GET", f"{alice.homeserver}{V3}/pushers", None, alice.access_token)
    assert status == 200 and set(listed["pushers"][0]) >= {"app_id", "pushkey", "data"}
    assert not [k for k in listed["pushers"][0] if k.startswith("io.outlast")]


async def test_event_id_only_and_muted_rooms(room: Room, gateway: PushGateway) -> None:
    alice, bob, room_id = room
    await set_pusher(alice, "slim", {"url": gateway.url, "format": "event_id_only"})
    rule = f"{alice.homeserver}{V3}/pushrules/global/room/{room_id}"
    status, _ = await api("PUT", rule, {"actions": []}, alice.access_token)
    assert status == 200
    await send(bob, room_id, plain("muted: never pushed"))
    mention = await send(bob, room_id, plain("x", **{"m.mentions": {"user_ids": [alice.user_id]}}))
    await gateway.wait_for(lambda g: len(g.accepted()) >= 1, timeout=10)
    assert gateway.event_ids() == [mention]
    note = gateway.accepted()[0].notification
    assert set(note) == {"event_id", "room_id", "counts", "prio", "devices"}
    assert note["devices"][0]["data"] == {"format": "event_id_only"}


async def test_retries_while_the_gateway_fails_then_delivers_once(
    room: Room, gateway: PushGateway
) -> None:
    alice, bob, room_id = room
    await set_pusher(alice, "flaky", {"url": gateway.url})
    gateway.fail_next(3, status=502)
    gateway.hang_next(1)  # then a timeout, also retried
    event_id = await send(bob, room_id, plain("persistent"))
    await gateway.wait_for(lambda g: len(g.accepted()) >= 1, timeout=15)
    assert gateway.event_ids() == [event_id]
    assert len(gateway.received) == 5  # 3 failures, 1 timeout, 1 delivery
    # Acknowledged on the log: JetStream does not hand it out again after the ack wait.
    await asyncio.sleep(5.5)
    assert gateway.event_ids() == [event_id] and len(gateway.received) == 5


async def test_a_rejected_pushkey_removes_the_pusher(room: Room, gateway: PushGateway) -> None:
    alice, bob, room_id = room
    await set_pusher(alice, "expired", {"url": gateway.url})
    await set_pusher(alice, "fine", {"url": gateway.url})
    gateway.reject("expired")
    await send(bob, room_id, plain("are you there"))
    url = f"{alice.homeserver}{V3}/pushers"

    async def remaining() -> bool:
        status, listed = await api("GET", url, None, alice.access_token)
        return status == 200 and [p["pushkey"] for p in listed["pushers"]] == ["fine"]

    await eventually(remaining)
    later = await send(bob, room_id, plain("again"))
    await gateway.wait_for(lambda g: later in g.event_ids("fine"), timeout=10)
    assert later not in gateway.event_ids("expired")


async def test_a_read_receipt_sends_the_new_badge(room: Room, gateway: PushGateway) -> None:
    alice, bob, room_id = room
    await set_pusher(alice, "badge", {"url": gateway.url})
    await send(bob, room_id, plain("one"))
    last = await send(bob, room_id, plain("two"))
    await gateway.wait_for(lambda g: len(g.event_ids("badge")) == 2, timeout=10)
    url = f"{alice.homeserver}{V3}/rooms/{room_id}/receipt/m.read/{last}"
    status, _ = await api("POST", url, {}, alice.access_token)
    assert status == 200
    await gateway.wait_for(lambda g: g.badges("badge") == [0], timeout=10)
    badge = [r.notification for r in gateway.accepted("badge") if r.event_id is None][0]
    assert badge["prio"] == "low" and "room_id" not in badge
    # Bob's receipts do not push to Alice.
    status, _ = await api(
        "POST", f"{bob.homeserver}{V3}/rooms/{room_id}/receipt/m.read/{last}", {}, bob.access_token
    )
    assert status == 200
    await send(bob, room_id, plain("three"))
    await gateway.wait_for(lambda g: len(g.event_ids("badge")) == 3, timeout=10)
    assert gateway.badges("badge") == [0]
