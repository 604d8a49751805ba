"""The quorum guard: a site cut off from a quorum is kept out of elections, so its
return forces no leader to step down.

Without it, nats-server's Raft (no pre-vote) lets the cut-off node campaign at a
higher term every 4-9 s; on the heal the majority's leaders see that term and step
down, and every group waits out a new election. The slow test cuts a site off for
longer than the longest election timeout, heals it, and checks on a majority node
that no Raft group's term moved across the heal: no election happened. (Run
without the guard, the idle cluster's JetStream meta group moved from term 1 to 4.)
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from outlast.cluster.guard import cut_off, route_answers, routed_peers
from tests.cluster.harness import Cluster, heal, health, isolate, wait_for

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
