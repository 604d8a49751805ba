"""The quorum guard: a site cut off from a quorum is kept out of elections, so its
return forces no leader to step down.

Without it, nats-server's Raft (no pre-vote) lets the cut-off node campaign at a
higher term every 4-9 s; on the heal the majority's leaders see that term and step
down, and every group waits out a new election. The slow test cuts a site off for
longer than the longest election timeout, heals it, and checks on a majority node
that no Raft group's term moved across the heal: no election happened. (Run
without the guard, the idle cluster's JetStream meta group moved from term 1 to 4.)

A parked node's beacon answers PARK on its route port, so that two parked sites
that reach each other count each other and come back together: the slow fire
test burns one site, cuts the other two apart, heals them and expects both back
with no operator. (Without the beacon both stayed parked for good.)
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from nio import AsyncClient, RegisterResponse, RoomCreateResponse, RoomPreset

from outlast.cluster.guard import Beacon, cut_off, route_answers, route_greeting, routed_peers
from outlast.cluster.links import Relay
from tests.cluster.harness import (
    Cluster,
    all_pids,
    close_all,
    heal,
    health,
    isolate,
    nio_client,
    pid_alive,
    send_retrying,
    session_at,
    timeline,
    wait_for,
)

NOW = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)


def _route(peer: str, idle_s: float) -> dict[str, Any]:
    return {"remote_name": peer, "last_activity": (NOW - timedelta(seconds=idle_s)).isoformat()}


def test_routed_peers_counts_each_peer_once_and_skips_silent_routes() -> None:
    routez = {"routes": [_route("b", 0.2), _route("b", 0.5), _route("c", 5.0), _route("d", 1.0)]}
    assert routed_peers(routez, NOW) == {"b", "d"}
    assert routed_peers({"routes": None}, NOW) == set()
    assert routed_peers({"routes": [{"remote_id": "X", "last_activity": "?"}]}, NOW) == {"X"}


def test_cut_off_means_fewer_than_a_quorum_with_the_node_itself() -> None:
    assert cut_off(0, 3) and not cut_off(1, 3)
    assert cut_off(1, 5) and not cut_off(2, 5)


async def test_route_answers_only_where_a_node_speaks() -> None:
    with socket.socket() as silent:  # listens, never says INFO
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        assert not await route_answers("127.0.0.1", silent.getsockname()[1], timeout=0.5)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    assert not await route_answers("127.0.0.1", port, timeout=0.5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_beacon_answers_park_and_frees_its_port_when_stopped() -> None:
    port = _free_port()
    beacon = Beacon("127.0.0.1", port)
    beacon.start()
    try:
        assert beacon.ready(timeout=10), beacon.failure
        pid = beacon.pid
        assert pid is not None
        assert await route_greeting("127.0.0.1", port) == "PARK"
        assert await route_answers("127.0.0.1", port)  # a second connection too
        # As a `--netns` probe runs: a child process behind a prefix (here a plain exec).
        assert await route_greeting("127.0.0.1", port, prefix=["env"]) == "PARK"
    finally:
        beacon.stop()
    assert beacon.pid is None and not pid_alive(pid)
    assert await route_greeting("127.0.0.1", port, timeout=0.5) == ""
    # The node can listen there now (nats-server, like this, sets SO_REUSEADDR).
    socket.create_server(("127.0.0.1", port)).close()


async def test_a_beacon_on_a_port_in_use_says_why() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        beacon = Beacon("127.0.0.1", taken.getsockname()[1])
        beacon.start()
        assert not beacon.ready(timeout=10)
        assert beacon.pid is None
        assert "in use" in beacon.failure, beacon.failure


async def test_a_relay_passes_park_on_and_drops_a_probe_to_a_closed_port() -> None:
    """What a peer's probe sees through the WAN relay: the beacon's PARK; nothing
    where nothing listens (the relay is refused and drops the connection); nothing
    through a cut relay, beacon or not."""
    target = _free_port()
    relay = Relay("b", "c", _free_port(), target)
    await relay.start()
    beacon = Beacon("127.0.0.1", target)
    try:
        assert await route_greeting("127.0.0.1", relay.listen_port) == ""
        beacon.start()
        assert beacon.ready(timeout=10), beacon.failure
        assert await route_greeting("127.0.0.1", relay.listen_port) == "PARK"
        relay.set_cut(True)
        assert await route_greeting("127.0.0.1", relay.listen_port, timeout=0.5) == ""
    finally:
        beacon.stop()
        await relay.stop()


_ORPHAN = """
import sys, time
from outlast.cluster.guard import Beacon
beacon = Beacon("127.0.0.1", int(sys.argv[1]))
beacon.start()
assert beacon.ready(timeout=10)
print(beacon.pid, flush=True)
time.sleep(60)
"""


async def test_a_beacon_dies_with_the_process_that_started_it() -> None:
    """A supervisor killed outright (SIGKILL) leaves no beacon behind."""
    parent = subprocess.Popen(
        [sys.executable, "-c", _ORPHAN, str(_free_port())],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert parent.stdout is not None
        line = await asyncio.wait_for(
            asyncio.get_running_loop().run_in_executor(None, parent.stdout.readline), 30
        )
        beacon_pid = int(line)
        assert pid_alive(beacon_pid)
    finally:
        parent.kill()
        parent.wait(timeout=10)
        if parent.stdout is not None:
            parent.stdout.close()

    async def gone() -> bool:
        return not pid_alive(beacon_pid)

    try:
        await wait_for(gone, timeout=10)
    finally:
        if pid_alive(beacon_pid):
            os.kill(beacon_pid, 9)


def _status(cluster: Cluster, site: str) -> str:
    """The supervisor's word on a site: up, parked (node stopped by the guard), ..."""
    return next(str(s["status"]) for s in cluster.status()["sites"] if s["name"] == site)


def _raftz(cluster: Cluster, site: str) -> dict[str, dict[str, Any]]:
    """Every Raft group a site's node holds: group name -> its raftz entry."""
    url = cluster.site(site)["monitor_url"] + "/raftz"
    with urllib.request.urlopen(url, timeout=5) as resp:
        data = json.loads(resp.read())
    return {group: info for groups in data.values() for group, info in groups.items()}


@pytest.mark.slow
async def test_heal_after_a_long_cut_elects_no_leader(cluster: Cluster) -> None:
    victim, witness = cluster.names[0], cluster.names[1]
    victim_node = cluster.site(victim)["node"]
    # Routes exist first, or the guard would take a cut as a node still starting.
    await asyncio.sleep(2)
    isolate(cluster, victim)
    cut_at = time.monotonic()

    async def parked() -> bool:
        return _status(cluster, victim) == "parked"

    await wait_for(parked, timeout=20, interval=0.2)

    async def majority_led() -> dict[str, dict[str, Any]] | None:
        groups = _raftz(cluster, witness)
        if groups and all(g.get("leader") and g["leader"] != victim_node for g in groups.values()):
            return groups
        return None

    # Every group led on the majority side (the victim's groups re-elected there).
    await wait_for(majority_led, timeout=60, interval=0.5)
    # Longer than the longest election timeout (9 s): an unguarded node has campaigned.
    await asyncio.sleep(max(0.0, 12 - (time.monotonic() - cut_at)))
    before, _ = await wait_for(majority_led, timeout=30, interval=0.5)
    heal(cluster, victim)

    async def back() -> bool:
        up = _status(cluster, victim) == "up"
        return up and await health(cluster.site_url(victim)) == 200

    await wait_for(back, timeout=90, interval=0.5)
    await asyncio.sleep(3)  # a step-down forced by the heal would show by now
    after = _raftz(cluster, witness)
    moved = {
        group: (info["term"], after[group]["term"])
        for group, info in before.items()
        if group in after and after[group]["term"] != info["term"]
    }
    assert moved == {}, f"groups that held an election across the heal: {moved}"
    assert all(after[g].get("leader") == before[g]["leader"] for g in before if g in after)


async def _registered_with_a_room(url: str, budget: float = 60.0) -> tuple[AsyncClient, str]:
    """Register and create a room at ``url``, retried like a client while the log's
    leaders settle after the nodes came back (a 503 until then)."""
    started, attempt = time.monotonic(), 0
    client: AsyncClient | None = None
    while True:
        attempt += 1
        answer: Any
        if client is None:
            fresh = nio_client(url, f"alice{attempt}")
            answer = await fresh.register(f"alice{attempt}", "pw-alice")
            if isinstance(answer, RegisterResponse):
                client = fresh
            else:
                await fresh.close()
        if client is not None:
            answer = await client.room_create(preset=RoomPreset.public_chat)
            if isinstance(answer, RoomCreateResponse):
                return client, answer.room_id
        if time.monotonic() - started > budget:
            if client is not None:
                await client.close()
            raise AssertionError(f"no room made at {url} in {budget}s: {answer!r}")
        await asyncio.sleep(1.0)


async def fire_cut_apart_heal(cluster: Cluster) -> float:
    """Burn the first site, cut the other two apart until both are parked, heal them:
    both must restart by themselves, and a write at one be read at the other. Returns
    the seconds from the heal until both sites were up and healthy."""
    burned, b, c = cluster.names
    await asyncio.sleep(2)  # routes first: only a node once seen with a quorum is parked
    cluster.burn(burned)

    async def both(status: str) -> bool:
        return _status(cluster, b) == status and _status(cluster, c) == status

    async def both_healthy() -> bool:
        codes = [await health(cluster.site_url(s)) for s in (b, c)]
        return codes == [200, 200]

    # B and C still make a quorum of 2 of 3: neither is parked for the fire alone.
    await wait_for(both_healthy, timeout=90, interval=0.5)
    assert _status(cluster, b) == "up" and _status(cluster, c) == "up"
    isolate(cluster, b)  # B's every link cut, so B and C no longer reach each other
    await wait_for(lambda: both("parked"), timeout=30, interval=0.2)
    assert len(_beacon_pids(cluster, b) + _beacon_pids(cluster, c)) == 2
    heal(cluster, b)

    async def back() -> bool:
        return await both("up") and await both_healthy()

    _, took = await wait_for(back, timeout=120, interval=0.5)
    assert not _beacon_pids(cluster, b) and not _beacon_pids(cluster, c)
    log = (cluster.dir / "supervisor.log").read_text(errors="replace")
    restarts = re.findall(r"site (\w+): a quorum of peers answers again \(([^)]*)\)", log)
    assert sorted(site for site, _ in restarts) == sorted([b, c]), restarts
    # The first to restart found the other still parked: its beacon made the quorum.
    first, answers = restarts[0]
    assert f"{c if first == b else b}: PARK" in answers, restarts

    alice, room = await _registered_with_a_room(cluster.site_url(b))
    at_c = session_at(alice, cluster.site_url(c))
    try:
        event_id, _, _ = await send_retrying(alice, room, "after the heal", "t1")

        async def read_at_c() -> bool:
            return event_id in [e["event_id"] for e in await timeline(at_c, room)]

        await wait_for(read_at_c, timeout=30, interval=0.5)
    finally:
        await close_all(alice, at_c)
    return took


@pytest.mark.slow
async def test_two_parked_sites_come_back_together_after_a_fire(cluster: Cluster) -> None:
    """A burned, B and C cut apart: both parked. On the heal each finds the other's
    beacon (PARK), counts a quorum of 2 of 3 with it, and restarts; a write then
    goes through with no operator action."""
    took = await fire_cut_apart_heal(cluster)
    print(f"both sites back {took:.1f}s after the heal (load {os.getloadavg()[0]:.1f})")


def _beacon_pids(cluster: Cluster, site: str) -> list[int]:
    """The site's listed processes that are a guard beacon (its command line says PARK)."""
    found = []
    for pid in cluster.site(site)["pids"]:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"PARK" in cmdline and pid_alive(pid):
            found.append(int(pid))
    return found


@pytest.mark.slow
async def test_cluster_down_leaves_no_beacon(cluster: Cluster) -> None:
    """Parked sites' beacons are site processes: `cluster down` stops them with the rest."""
    burned, b, c = cluster.names
    await asyncio.sleep(2)
    cluster.burn(burned)

    async def quorum_again() -> bool:
        return [await health(cluster.site_url(s)) for s in (b, c)] == [200, 200]

    await wait_for(quorum_again, timeout=90, interval=0.5)
    isolate(cluster, b)

    async def beacons() -> list[int]:
        parked = _status(cluster, b) == "parked" and _status(cluster, c) == "parked"
        found = _beacon_pids(cluster, b) + _beacon_pids(cluster, c)
        return found if parked and len(found) == 2 else []

    pids, _ = await wait_for(beacons, timeout=30, interval=0.2)
    planned = cluster.description["plan"]["sites"]
    port = next(int(s["cluster_port"]) for s in planned if s["name"] == c)
    everything = all_pids(cluster.description)
    cluster.down()
    assert not [p for p in pids if pid_alive(p)], "a beacon outlived `cluster down`"
    assert not [p for p in everything if pid_alive(p)]
    socket.create_server(("127.0.0.1", port)).close()  # its port is free again
