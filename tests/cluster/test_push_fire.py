"""Push delivery across a fire: every notification reaches the gateway exactly once.

The gateway is down while messages arrive, so every site's workers hold some
of them, retrying. Then the site that was sending burns. Its messages are
handed to the survivors after the ack wait; nothing had reached the gateway
before the fire, so nothing is in doubt and every event must arrive once.

In the second case the burned site also leads the rooms streams and their push
consumers: the survivors
elect a new leader, which hands out again at once every message whose last
replicated progress is older than the ack wait — while the survivors still hold
some of them. Holders notice the new leader and stop (see ``WorkQueue.term``).
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from nio import JoinResponse, RoomCreateResponse, RoomInviteResponse

from outlast.drill.pushgw import PushGateway
from tests.cluster.harness import (
    V3,
    Cluster,
    close_all,
    consumer_leader,
    http,
    move_consumer_leader,
    move_leader,
    nio_register,
    ok,
    send_retrying,
    start_cluster,
    wait_for,
)

pytestmark = pytest.mark.slow

PUSH_TOML = """
[push]
ack_wait_seconds = 4.0
retry_initial_seconds = 0.1
retry_max_seconds = 0.5
request_timeout_seconds = 2.0
"""
SITE = re.compile(r"Outlast \((.+)\)")


@pytest.fixture
def push_cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = start_cluster(tmp_path / "cluster", site_toml=PUSH_TOML)
    try:
        yield c
    finally:
        c.down()


def site_of(agent: str) -> str:
    found = SITE.fullmatch(agent)
    return found.group(1) if found else ""


@pytest.mark.parametrize("leads_consumers", [False, True], ids=["follower", "consumer-leader"])
async def test_burning_the_sending_site_loses_and_doubles_no_notification(
    push_cluster: Cluster, leads_consumers: bool
) -> None:
    cluster = push_cluster
    door = cluster.front_door
    alice = await nio_register(door, "alice")
    bob = await nio_register(door, "bob")
    async with PushGateway() as gateway:
        try:
            room = ok(await bob.room_create(name="fire"), RoomCreateResponse).room_id
            ok(await bob.room_invite(room, alice.user_id), RoomInviteResponse)
            ok(await alice.join(room), JoinResponse)
            pusher = {
                "app_id": "org.example.app",
                "pushkey": "alice-phone",
                "kind": "http",
                "app_display_name": "Example",
                "device_display_name": "phone",
                "lang": "en",
                "data": {"url": gateway.url, "format": "event_id_only"},
            }
            status, _, body = await http(
                "POST", door + V3 + "/pushers/set", pusher, token=alice.access_token
            )
            assert status == 200, body

            gateway.go_down(503)
            before = [
                (await send_retrying(bob, room, f"before {i}", f"b{i}"))[0] for i in range(12)
            ]

            async def all_tried() -> bool:
                tried = {r.event_id for r in gateway.received}
                return set(before) <= tried

            await wait_for(all_tried, timeout=60)
            # The victim: the site that most recently tried to send.
            recent = Counter(site_of(r.user_agent) for r in gateway.received[-30:])
            victim = recent.most_common(1)[0][0]
            assert victim in cluster.names, recent
            held_by_victim = {
                r.event_id for r in gateway.received if site_of(r.user_agent) == victim
            }
            if leads_consumers:
                for stream in ("OUTLAST_ROOMS_0", "OUTLAST_ROOMS_1"):
                    await move_leader(cluster, stream, victim)
                    await move_consumer_leader(cluster, stream, "push_delivery", victim)
                    assert consumer_leader(cluster, victim, stream, "push_delivery") == victim
            await asyncio.get_running_loop().run_in_executor(None, cluster.burn, victim)
            gateway.come_back()
            after = [(await send_retrying(bob, room, f"after {i}", f"a{i}"))[0] for i in range(6)]

            async def all_delivered() -> bool:
                return set(before + after) <= set(gateway.event_ids())

            await wait_for(all_delivered, timeout=120)
            # Settle: a late repeat would show up within one more ack wait.
            await asyncio.sleep(6)
            assert gateway.duplicates() == {}
            assert sorted(gateway.event_ids()) == sorted(before + after)
            survivors = {n for n in cluster.names if n != victim}
            senders = {site_of(r.user_agent) for r in gateway.accepted()}
            assert senders <= survivors
            # What the burned site held was taken over by a survivor.
            assert held_by_victim and held_by_victim <= set(gateway.event_ids())
            print("victim", victim, "held", len(held_by_victim), "senders", sorted(senders))
        finally:
            await close_all(alice, bob)
