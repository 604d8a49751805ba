"""Active-active: every site serves every user, and what one site commits the others show.

Each test runs on a fresh three-site loopback cluster and drives it with
matrix-nio clients pointed at individual sites (raw HTTP only for error and
health checks).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from typing import Any

import pytest
from nio import (
    JoinResponse,
    LoginResponse,
    LogoutResponse,
    RoomCreateResponse,
    RoomPreset,
    RoomPutStateResponse,
    RoomSendResponse,
    SyncResponse,
    WhoamiResponse,
)

from tests.cluster.harness import (
    V3,
    Cluster,
    close_all,
    event_ids,
    http,
    nio_client,
    nio_register,
    ok,
    session_at,
    timeline,
    wait_for,
)

pytestmark = pytest.mark.slow

SYNC_TIMEOUT_MS = 30_000


def text(body: str) -> dict[str, str]:
    return {"msgtype": "m.text", "body": body}


async def sync_waiters(url: str) -> int:
    status, body, _ = await http("GET", url + "/_outlast/health", timeout=5)
    return int(body.get("sync_waiters", 0)) if status == 200 and isinstance(body, dict) else 0


async def test_message_sent_at_one_site_wakes_a_long_poll_at_another(cluster: Cluster) -> None:
    site_a, site_b = cluster.site_url("a"), cluster.site_url("b")
    alice = await nio_register(site_a, "alice")
    bob = await nio_register(site_b, "bob")
    try:
        created = await alice.room_create(preset=RoomPreset.public_chat)
        room = ok(created, RoomCreateResponse).room_id
        ok(await bob.join(room), JoinResponse)  # b learns of a's room from the log
        first = ok(await bob.sync(timeout=0), SyncResponse)
        assert room in first.rooms.join
        since = first.next_batch

        latencies = []
        for round_no in range(5):
            poll = asyncio.create_task(bob.sync(timeout=SYNC_TIMEOUT_MS, since=since))
            try:
                # Send only once b's worker has really parked the long-poll (health
                # reports are cached for 0.3 s: let the previous round's count expire).
                await asyncio.sleep(0.35)
                await wait_for(lambda: sync_waiters(site_b), timeout=10, interval=0.02)
                sent_at = time.monotonic()
                event_id = ok(
                    await alice.room_send(room, "m.room.message", text(f"hi {round_no}")),
                    RoomSendResponse,
                ).event_id
                acked_at = time.monotonic()
                got: list[str] = []
                while event_id not in got:
                    woke = ok(
                        await asyncio.wait_for(poll, SYNC_TIMEOUT_MS / 1000 + 10), SyncResponse
                    )
                    returned_at = time.monotonic()
                    since = woke.next_batch
                    joined = woke.rooms.join.get(room)
                    got += [e.event_id for e in joined.timeline.events] if joined else []
                    if event_id not in got:  # woke on something else: park again
                        assert returned_at - sent_at < 5, "the message did not arrive"
                        poll = asyncio.create_task(bob.sync(timeout=SYNC_TIMEOUT_MS, since=since))
            finally:
                poll.cancel()
            latency = returned_at - sent_at
            print(
                f"cross-site delivery round {round_no}: send→sync return {latency * 1000:.1f} ms "
                f"(after the sender's ack {(returned_at - acked_at) * 1000:.1f} ms)"
            )
            # The long-poll returns because of the message, far before its 30 s timeout.
            assert latency < 5, f"sync returned {latency:.2f}s after the send"
            latencies.append(latency)
        print(
            f"cross-site delivery a→b: median {statistics.median(latencies) * 1000:.1f} ms, "
            f"max {max(latencies) * 1000:.1f} ms"
        )
    finally:
        await close_all(alice, bob)


async def _token_state(url: str, token: str) -> tuple[int | None, Any]:
    status, body, _ = await http("GET", url + V3 + "/account/whoami", token=token, timeout=5)
    return status, body


async def test_register_login_logout_at_any_site(cluster: Cluster) -> None:
    urls = {name: cluster.site_url(name) for name in cluster.names}
    registered = await nio_register(urls["a"], "carol", "carol-password")
    at_c = nio_client(urls["c"], "@carol:localhost")
    at_b = None
    try:
        # Registered at a, logs in at c: c learns of the account from the log.
        login = ok(await at_c.login("carol-password", device_name="phone"), LoginResponse)
        assert login.user_id == "@carol:localhost"
        # The token minted at c works at b, and at every other site.
        at_b = session_at(at_c, urls["b"])
        assert ok(await at_b.whoami(), WhoamiResponse).user_id == "@carol:localhost"
        for name, url in urls.items():
            assert await _token_state(url, login.access_token) == (
                200,
                {"user_id": "@carol:localhost", "device_id": login.device_id, "is_guest": False},
            ), name

        # Logout at b: within one second no site accepts the token any more.
        ok(await at_b.logout(), LogoutResponse)
        logged_out_at = time.monotonic()

        async def revoked(name: str) -> float:
            while True:
                status, body = await _token_state(urls[name], login.access_token)
                if status == 401:
                    assert body["errcode"] == "M_UNKNOWN_TOKEN", body
                    return time.monotonic() - logged_out_at
                assert status == 200, (name, status, body)
                if time.monotonic() - logged_out_at > 1.0:
                    raise AssertionError(f"token still accepted at {name} 1 s after logout at b")
                await asyncio.sleep(0.01)

        took = dict(zip("ac", await asyncio.gather(revoked("a"), revoked("c")), strict=True))
        print(
            "revocation propagation after logout at b: "
            + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in took.items())
        )
        status, body = await _token_state(urls["b"], login.access_token)
        assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN")
        # The registration session (another device) is untouched everywhere.
        for url in urls.values():
            assert (await _token_state(url, registered.access_token))[0] == 200
    finally:
        await close_all(registered, at_c, *([at_b] if at_b else []))


async def _put_send(url: str, token: str, room: str, txn_id: str, body: str) -> str:
    status, answer, _ = await http(
        "PUT", url + V3 + f"/rooms/{room}/send/m.room.message/{txn_id}", text(body), token=token
    )
    assert status == 200, (url, status, answer)
    return str(answer["event_id"])


async def _send_same_txn(url: str, token: str, room: str, txn_id: str, body: str) -> str:
    """A client's retry of one txnId: a 503 (e.g. concurrent in-flight duplicate) is retried."""
    deadline = time.monotonic() + 30
    while True:
        status, answer, _ = await http(
            "PUT", url + V3 + f"/rooms/{room}/send/m.room.message/{txn_id}", text(body), token=token
        )
        if status == 200:
            return str(answer["event_id"])
        assert status in (None, 503) and time.monotonic() < deadline, (url, status, answer)
        await asyncio.sleep(0.1)


async def test_retry_of_one_txn_id_at_every_site_stores_one_event(cluster: Cluster) -> None:
    urls = {name: cluster.site_url(name) for name in cluster.names}
    alice = await nio_register(urls["a"], "alice")
    readers = [session_at(alice, url) for url in urls.values()]
    try:
        created = await alice.room_create(preset=RoomPreset.public_chat)
        room = ok(created, RoomCreateResponse).room_id
        token = alice.access_token

        # Sent at a; the client's retries of the same txnId go to b, then the front door.
        first = ok(
            await alice.room_send(room, "m.room.message", text("exactly once"), tx_id="txn-X"),
            RoomSendResponse,
        ).event_id
        again_b = await _put_send(urls["b"], token, room, "txn-X", "exactly once")
        again_door = await _put_send(cluster.front_door, token, room, "txn-X", "exactly once")
        again_c = await _put_send(urls["c"], token, room, "txn-X", "exactly once")
        assert first == again_b == again_door == again_c

        # The same txnId racing at all three sites at once still yields one event.
        raced = await asyncio.gather(
            *(_send_same_txn(url, token, room, "txn-Y", "raced once") for url in urls.values())
        )
        assert len(set(raced)) == 1, raced

        for reader in readers:

            async def shows_both(reader: Any = reader) -> list[dict[str, Any]]:
                events = await timeline(reader, room)
                have = set(event_ids(events))
                return events if first in have and raced[0] in have else []

            events, _ = await wait_for(shows_both, timeout=10)
            counts = Counter(event_ids(events))
            bodies = Counter(
                e["content"].get("body") for e in events if e["type"] == "m.room.message"
            )
            assert counts[first] == 1 and counts[raced[0]] == 1, (reader.homeserver, counts)
            assert bodies == {"exactly once": 1, "raced once": 1}, (reader.homeserver, bodies)
    finally:
        await close_all(alice, *readers)


async def test_every_site_accepts_writes_and_views_converge(cluster: Cluster) -> None:
    urls = {name: cluster.site_url(name) for name in cluster.names}
    alice = await nio_register(urls["a"], "alice", "alice-password")
    bob = await nio_register(urls["b"], "bob")
    alice_c = nio_client(urls["c"], "@alice:localhost")
    try:
        # Room created at a, joined from b, its state changed from c.
        room = ok(
            await alice.room_create(preset=RoomPreset.public_chat, name="three sites"),
            RoomCreateResponse,
        ).room_id
        ok(await bob.join(room), JoinResponse)
        ok(await alice_c.login("alice-password"), LoginResponse)
        topic = ok(
            await alice_c.room_put_state(room, "m.room.topic", {"topic": "set at c"}),
            RoomPutStateResponse,
        ).event_id
        acked = [topic]
        writers = {"a": alice, "b": bob, "c": alice_c}
        for round_no in range(3):
            for name, client in writers.items():
                acked.append(
                    ok(
                        await client.room_send(room, "m.room.message", text(f"{name}{round_no}")),
                        RoomSendResponse,
                    ).event_id
                )
        # Concurrent writes from all three sites at once.
        acked += [
            r.event_id
            for r in await asyncio.gather(
                *(
                    client.room_send(room, "m.room.message", text(f"{name} concurrent"))
                    for name, client in writers.items()
                )
            )
            if isinstance(r, RoomSendResponse)
        ]
        assert len(acked) == 1 + 9 + 3

        readers = {name: session_at(alice, url) for name, url in urls.items()}
        try:
            views = {}
            for name, reader in readers.items():

                async def complete(reader: Any = reader) -> list[str]:
                    ids = event_ids(await timeline(reader, room))
                    return ids if set(acked) <= set(ids) else []

                views[name], _ = await wait_for(complete, timeout=10)
            assert views["a"] == views["b"] == views["c"], views
            assert len(views["a"]) == len(set(views["a"]))
            for name, reader in readers.items():
                status, content, _ = await http(
                    "GET",
                    urls[name] + V3 + f"/rooms/{room}/state/m.room.topic",
                    token=reader.access_token,
                )
                assert (status, content) == (200, {"topic": "set at c"}), name
            print(f"converged: {len(views['a'])} events in the same order at a, b and c")
        finally:
            await close_all(*readers.values())
    finally:
        await close_all(alice, bob, alice_c)
