"""Two `outlast serve` processes sharing one standalone nats-server: one log, two views.

Each process has its own data directory and SQLite view; they agree because both
project the same log. Writes race across processes and must serialize per room.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from nio import (
    AsyncClient,
    JoinResponse,
    LoginResponse,
    RoomCreateResponse,
    RoomInviteResponse,
    RoomPutStateResponse,
    RoomSendResponse,
    RoomVisibility,
    SyncResponse,
)

from outlast.log.engine import NatsNode, NodeSpec, free_port
from tests.e2e.helpers import (
    all_messages,
    api,
    close_all,
    eventually,
    expect,
    ids,
    new_client,
    register,
    sync,
    text,
)
from tests.servers import OutlastProcess, start_outlast

pytestmark = pytest.mark.slow

V3 = "/_matrix/client/v3"
ALICE, BOB = "@alice:localhost", "@bob:localhost"


@dataclass
class Pair:
    a: OutlastProcess
    b: OutlastProcess


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    node = NatsNode(
        NodeSpec(name="shared", store_dir=tmp_path / "nats" / "js", client_port=free_port()),
        tmp_path / "nats" / "nats.conf",
    )
    node.start()
    procs: list[OutlastProcess] = []
    try:
        asyncio.run(node.wait_ready())
        extra = f'nats_urls = ["{node.url}"]'
        procs.append(start_outlast(tmp_path / "a", log_extra=extra))
        procs.append(start_outlast(tmp_path / "b", log_extra=extra))
        yield Pair(procs[0], procs[1])
    finally:
        for proc in procs:
            proc.stop()
        node.stop()


@pytest.fixture
async def people(pair: Pair) -> AsyncIterator[tuple[AsyncClient, AsyncClient, str]]:
    """alice on process A, bob on process B, both in alice's public room."""
    alice = await register(pair.a.url, "alice")
    bob = new_client(pair.b.url, "bob")
    try:
        # Registered on A; logs in on B (B learns the account from the log).
        await (await register(pair.a.url, "bob")).close()
        expect(await bob.login("pw-bob"), LoginResponse)
        room = expect(
            await alice.room_create(visibility=RoomVisibility.public), RoomCreateResponse
        ).room_id
        expect(await bob.join(room), JoinResponse)
        yield alice, bob, room
    finally:
        await close_all(alice, bob)


def at(client: AsyncClient, url: str) -> AsyncClient:
    """The same session (token and device) talking to another process."""
    other = new_client(url, client.user_id, client.device_id)
    other.access_token, other.user_id = client.access_token, client.user_id
    return other


async def caught_up(client: AsyncClient, room: str, event_id: str) -> bool:
    status, _ = await api(
        "GET", client.homeserver + V3 + f"/rooms/{room}/event/{event_id}", token=client.access_token
    )
    return status == 200


async def room_view(client: AsyncClient, room: str) -> dict[str, Any]:
    status, state = await api(
        "GET", client.homeserver + V3 + f"/rooms/{room}/state", token=client.access_token
    )
    assert status == 200, state
    return {
        "state": sorted((e["type"], e["state_key"], e["event_id"]) for e in state),
        "history": ids(await all_messages(client, room, limit=100)),
    }


async def test_users_on_different_processes_chat(
    pair: Pair, people: tuple[AsyncClient, AsyncClient, str]
) -> None:
    alice, bob, room = people
    first = await sync(bob, timeout=0)
    assert room in first.rooms.join
    poll = asyncio.create_task(bob.sync(timeout=20_000, since=first.next_batch))
    try:
        sent = expect(
            await alice.room_send(room, "m.room.message", text("hi from A")), RoomSendResponse
        ).event_id
        woke = expect(await asyncio.wait_for(poll, 30), SyncResponse)
    finally:
        poll.cancel()
    got = [e.event_id for e in woke.rooms.join[room].timeline.events]
    if sent not in got:  # the poll may have woken on an earlier event; one more sync
        nxt = await sync(bob, timeout=10_000, since=woke.next_batch)
        got += [e.event_id for e in nxt.rooms.join[room].timeline.events]
    assert sent in got

    reply = expect(
        await bob.room_send(room, "m.room.message", text("hi from B")), RoomSendResponse
    ).event_id
    await eventually(lambda: caught_up(alice, room, reply))
    # A private room created on B, with an invite for a user who lives on A.
    private = expect(await bob.room_create(name="b-side"), RoomCreateResponse).room_id
    expect(await bob.room_invite(private, ALICE), RoomInviteResponse)
    expect(await alice.join(private), JoinResponse)
    for room_id in (room, private):
        await eventually(functools.partial(_same_views, alice, bob, room_id))


async def _same_views(x: AsyncClient, y: AsyncClient, room: str) -> bool:
    return await room_view(x, room) == await room_view(y, room)


async def _put_topic(client: AsyncClient, room: str, topic: str) -> str | None:
    """PUT a topic, retrying like a client would on 503; the event id if acknowledged."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status, body = await api(
            "PUT",
            client.homeserver + V3 + f"/rooms/{room}/state/m.room.topic",
            {"topic": topic},
            token=client.access_token,
        )
        if status == 200:
            return str(body["event_id"])
        assert status == 503 and body["errcode"] == "M_UNAVAILABLE", (status, body)
        await asyncio.sleep(body.get("retry_after_ms", 100) / 1000 / 10)
    raise AssertionError(f"topic {topic} never committed")


async def test_concurrent_state_changes_converge(
    pair: Pair, people: tuple[AsyncClient, AsyncClient, str]
) -> None:
    alice, bob, room = people
    levels = await api(
        "GET",
        alice.homeserver + V3 + f"/rooms/{room}/state/m.room.power_levels",
        token=alice.access_token,
    )
    content = levels[1]
    content["users"][BOB] = 50
    expect(await alice.room_put_state(room, "m.room.power_levels", content), RoomPutStateResponse)
    await eventually(lambda: _bob_may_set_topic(bob, room))

    writes = [_put_topic(alice, room, f"A{i}") for i in range(20)]
    writes += [_put_topic(bob, room, f"B{i}") for i in range(20)]
    acked = await asyncio.wait_for(asyncio.gather(*writes), 35)
    assert len(set(acked)) == 40

    await eventually(lambda: _same_views(alice, bob, room), timeout=20)
    view = await room_view(alice, room)
    history = view["history"]
    assert set(acked) <= set(history)
    # The current topic is the topic event that came last in the shared order.
    last_topic = [i for i in history if i in set(acked)][-1]
    assert ("m.room.topic", "", last_topic) in view["state"]
    for client in (alice, bob):
        status, topic = await api(
            "GET",
            client.homeserver + V3 + f"/rooms/{room}/state/m.room.topic",
            token=client.access_token,
        )
        assert status == 200
        event = await api(
            "GET",
            client.homeserver + V3 + f"/rooms/{room}/event/{last_topic}",
            token=client.access_token,
        )
        assert topic == event[1]["content"]


async def _bob_may_set_topic(bob: AsyncClient, room: str) -> bool:
    status, body = await api(
        "GET",
        bob.homeserver + V3 + f"/rooms/{room}/state/m.room.power_levels",
        token=bob.access_token,
    )
    return status == 200 and body["users"].get(BOB) == 50


async def _chatter(client: AsyncClient, room: str, n: int, lane: int = 0) -> list[str]:
    """Send up to ``n`` messages back to back until refused; the acknowledged ids."""
    ok: list[str] = []
    for i in range(n):
        status, body = await api(
            "PUT",
            client.homeserver + V3 + f"/rooms/{room}/send/m.room.message/race-{lane}-{i}",
            text(f"race {lane} {i}"),
            token=client.access_token,
        )
        if status == 200:
            ok.append(body["event_id"])
        else:
            assert status in (403, 503), (status, body)
            if status == 403:
                break
    return ok


async def test_kick_races_messages_from_the_kicked_user(
    pair: Pair, people: tuple[AsyncClient, AsyncClient, str]
) -> None:
    alice, bob, room = people
    expect(await bob.room_send(room, "m.room.message", text("warm up")), RoomSendResponse)
    lanes = 4  # several sends in flight at once when the kick lands
    chatter = asyncio.gather(*[_chatter(bob, room, 200, lane) for lane in range(lanes)])
    # Let a few messages land, then kick bob from the other process mid-stream.
    await eventually(lambda: _has_message_from(alice, room, BOB, 3), timeout=20)
    status, body = await api(
        "POST",
        alice.homeserver + V3 + f"/rooms/{room}/kick",
        {"user_id": BOB},
        token=alice.access_token,
    )
    assert status == 200, body
    acked = [i for lane in await asyncio.wait_for(chatter, 30) for i in lane]
    assert len(acked) < 200 * lanes, "the kick never took effect for bob's sends"

    # Messages after the kick are refused on either process.
    other = at(bob, pair.a.url)
    try:
        for client in (bob, other):
            resp = await client.room_send(room, "m.room.message", text("let me back"))
            assert not isinstance(resp, RoomSendResponse)
    finally:
        await other.close()

    await eventually(lambda: _views_agree(pair, alice, room), timeout=20)
    for url in (pair.a.url, pair.b.url):
        reader = at(alice, url)
        try:
            events = await all_messages(reader, room, limit=100)
        finally:
            await reader.close()
        kick = [
            i
            for i, e in enumerate(events)
            if e["type"] == "m.room.member"
            and e["state_key"] == BOB
            and e["content"]["membership"] == "leave"
        ]
        assert len(kick) == 1
        after = [e for e in events[kick[0] :] if e["sender"] == BOB]
        assert after == [], after
        bob_msgs = [
            e["event_id"] for e in events if e["sender"] == BOB and e["type"] == "m.room.message"
        ]
        assert set(acked) <= set(bob_msgs)


async def _has_message_from(client: AsyncClient, room: str, sender: str, n: int) -> bool:
    events = await all_messages(client, room, limit=100)
    return sum(1 for e in events if e["sender"] == sender and e["type"] == "m.room.message") >= n


async def _views_agree(pair: Pair, client: AsyncClient, room: str) -> bool:
    on_a, on_b = at(client, pair.a.url), at(client, pair.b.url)
    try:
        return await room_view(on_a, room) == await room_view(on_b, room)
    finally:
        await close_all(on_a, on_b)


async def test_txn_retry_on_other_process_is_deduplicated(
    pair: Pair, people: tuple[AsyncClient, AsyncClient, str]
) -> None:
    alice, bob, room = people
    on_a = at(bob, pair.a.url)
    try:
        # The same access token works on both processes: they share the log.
        status, who = await api("GET", pair.a.url + V3 + "/account/whoami", token=bob.access_token)
        assert status == 200 and who["device_id"] == bob.device_id
        for n in range(5):
            txn = f"retry-{n}"
            first = expect(
                await bob.room_send(room, "m.room.message", text(txn), tx_id=txn), RoomSendResponse
            )
            # Retry immediately through the other process (its view may lag).
            second = expect(
                await on_a.room_send(room, "m.room.message", text(txn), tx_id=txn), RoomSendResponse
            )
            assert first.event_id == second.event_id
        # And the other way round: first on A, retry on B.
        first = expect(
            await on_a.room_send(room, "m.room.message", text("x"), tx_id="ab"), RoomSendResponse
        )
        second = expect(
            await bob.room_send(room, "m.room.message", text("x"), tx_id="ab"), RoomSendResponse
        )
        assert first.event_id == second.event_id
        await eventually(lambda: _views_agree(pair, alice, room), timeout=20)
        history = await all_messages(alice, room, limit=100)
        bodies = [e["content"].get("body") for e in history if e["type"] == "m.room.message"]
        assert bodies == [f"retry-{n}" for n in range(5)] + ["x"]
    finally:
        await on_a.close()


async def test_accounts_across_processes(pair: Pair) -> None:
    # Two processes race to register one name: exactly one wins.
    body = {"username": "racer", "password": "pw", "auth": {"type": "m.login.dummy"}}
    results = await asyncio.gather(
        *[
            api("POST", url + V3 + "/register", body)
            for url in (pair.a.url, pair.b.url)
            for _ in range(3)
        ]
    )
    assert sorted(status for status, _ in results) == [200] + [400] * 5, results
    assert all(b["errcode"] == "M_USER_IN_USE" for status, b in results if status == 400)
    token = next(b["access_token"] for status, b in results if status == 200)
    # The token works on both; a logout on one reaches the other promptly.
    for url in (pair.a.url, pair.b.url):
        status, who = await api("GET", url + V3 + "/account/whoami", token=token)
        assert status == 200 and who["user_id"] == "@racer:localhost"
    status, _ = await api("POST", pair.a.url + V3 + "/logout", {}, token=token)
    assert status == 200

    async def revoked_on_b() -> bool:
        status, body = await api("GET", pair.b.url + V3 + "/account/whoami", token=token)
        return status == 401 and body["errcode"] == "M_UNKNOWN_TOKEN"

    await eventually(revoked_on_b, timeout=5)
