"""Planned maintenance through the CLI: `outlast site drain` and `outlast cluster roll`.

A drained site leaves the front door, leads nothing and is stopped in lame-duck
mode; a rolling restart of every site under load from matrix-nio clients
loses, duplicates and reorders nothing, and leaves every site healthy.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest
from nio import RoomCreateResponse

from tests.cluster.harness import (
    Cluster,
    close_all,
    front_door_servers,
    health,
    nio_register,
    ok,
    pid_alive,
    send_retrying,
    session_at,
    stream_leaders,
    timeline,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def outlast(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "outlast", *args], capture_output=True, text=True, timeout=timeout
    )


def lame_duck_stops(cluster: Cluster, name: str) -> int:
    """How often the site's node log says it entered lame-duck mode."""
    logs = Path(cluster.site(name)["data_dir"]).glob("nats-*/nats.log")
    return sum(path.read_text().count("Entering lame duck mode") for path in logs)


def test_drain_takes_a_site_out_of_the_front_door_and_leadership_before_it_stops(
    cluster: Cluster,
) -> None:
    cluster_file = str(cluster.dir / "cluster.json")
    old_pids = cluster.site("b")["pids"]
    drained = outlast("site", "drain", "b", "--cluster", cluster_file, timeout=300)
    assert drained.returncode == 0, drained.stderr
    # Progress on stderr, in the order the brief promises: front door, leaders, stop.
    err = drained.stderr
    steps = [
        "out of the front door",
        "workers report draining",
        "leads no stream",
        "workers stopped",
        "lame-duck mode",
    ]
    positions = [err.find(step) for step in steps]
    assert all(p >= 0 for p in positions) and positions == sorted(positions), err

    assert not any(pid_alive(pid) for pid in old_pids)
    assert lame_duck_stops(cluster, "b") == 1
    assert cluster.status()["sites"][1]["status"] == "drained"
    leaders = stream_leaders(cluster, via="a")
    assert leaders and all(site in ("a", "c") for site in leaders.values()), leaders
    servers = front_door_servers(cluster)
    assert not servers["b"].startswith("UP"), servers
    assert servers["a"] == "UP" and servers["c"] == "UP", servers

    # The other two sites carry on through the front door.
    async def write_and_read() -> None:
        alice = await nio_register(cluster.front_door, "drainwatcher")
        room = ok(await alice.room_create(name="still here"), RoomCreateResponse).room_id
        event_id, _, _ = await send_retrying(alice, room, "after the drain", "txn-after")
        at_c = session_at(alice, cluster.site_url("c"))
        assert event_id in [e["event_id"] for e in await timeline(at_c, room)]
        await close_all(alice, at_c)

    asyncio.run(write_and_read())

    # A drained site is powered on like any stopped one, and rejoins the front door.
    powered = outlast("site", "power-on", "b", "--cluster", cluster_file, timeout=300)
    assert powered.returncode == 0, powered.stderr
    assert wait_until(lambda: front_door_servers(cluster)["b"] == "UP", 30), front_door_servers(
        cluster
    )


def test_rolling_restart_under_load_loses_nothing_and_leaves_every_site_healthy(
    cluster: Cluster,
) -> None:
    cluster_file = str(cluster.dir / "cluster.json")
    old_pids = {name: cluster.site(name)["pids"] for name in cluster.names}

    async def scenario() -> subprocess.CompletedProcess[str]:
        writers = [await nio_register(cluster.front_door, f"roller{i}") for i in range(3)]
        invite = [w.user_id for w in writers[1:]]
        created = await writers[0].room_create(name="maintenance", invite=invite)
        room = ok(created, RoomCreateResponse).room_id
        for w in writers[1:]:
            await w.join(room)
        acked: dict[str, list[tuple[str, str]]] = {w.user_id: [] for w in writers}
        ack_times: dict[str, list[float]] = {w.user_id: [] for w in writers}
        stop = asyncio.Event()

        async def keep_sending(index: int) -> None:
            client = writers[index]
            seq = 0
            while not stop.is_set():
                body = f"w{index}-{seq}"
                event_id, _, _ = await send_retrying(client, room, body, f"t{index}-{seq}", 60)
                acked[client.user_id].append((event_id, body))
                ack_times[client.user_id].append(time.monotonic())
                seq += 1
                await asyncio.sleep(0.05)

        senders = [asyncio.create_task(keep_sending(i)) for i in range(len(writers))]
        await asyncio.sleep(1.0)
        rolling = time.monotonic()
        roll = await asyncio.to_thread(
            outlast, "cluster", "roll", "--cluster", cluster_file, timeout=500
        )
        rolled = time.monotonic()
        await asyncio.sleep(1.0)
        stop.set()
        await asyncio.gather(*senders)
        # Writes went on being acknowledged while the sites restarted one by one.
        for user, times in ack_times.items():
            assert any(rolling < t < rolled for t in times), f"{user} wrote nothing during the roll"

        # Every site holds every acknowledged message once, in each writer's order.
        sent = [pair for pairs in acked.values() for pair in pairs]
        assert len(sent) > 3 * len(writers), acked
        for name in cluster.names:
            reader = session_at(writers[0], cluster.site_url(name))
            events = [e for e in await timeline(reader, room) if e["type"] == "m.room.message"]
            await reader.close()
            ids = [e["event_id"] for e in events]
            bodies = [e["content"]["body"] for e in events]
            assert len(ids) == len(set(ids)), f"{name}: duplicated events"
            assert len(bodies) == len(set(bodies)), f"{name}: a message stored twice"
            assert {event_id for event_id, _ in sent} <= set(ids), f"{name}: lost messages"
            for pairs in acked.values():
                order = [ids.index(event_id) for event_id, _ in pairs]
                assert order == sorted(order), f"{name}: a writer's messages out of order"
        await close_all(*writers)
        return roll

    roll = asyncio.run(scenario())
    assert roll.returncode == 0, roll.stderr
    assert "every site restarted and healthy" in roll.stderr
    # Every site was really restarted, each in lame-duck mode, and is back.
    for name in cluster.names:
        assert not any(pid_alive(pid) for pid in old_pids[name]), name
        assert lame_duck_stops(cluster, name) == 1, name
        assert cluster.site(name)["status"] == "up"
        assert asyncio.run(health(cluster.site_url(name))) == 200
    assert set(front_door_servers(cluster).values()) == {"UP"}
