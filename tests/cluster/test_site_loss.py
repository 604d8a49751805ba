"""Losing a whole site under continuous sends: nothing acknowledged is lost or doubled."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from outlast.drill.load import Load
from outlast.drill.verdict import StoredEvent, judge, write_gap
from tests.cluster.harness import (
    Cluster,
    front_door_servers,
    leader_site,
    start_cluster,
    wait_until,
)

pytestmark = pytest.mark.slow


async def read_back(
    load: Load, cluster: Cluster, sites: list[str]
) -> dict[str, dict[str, list[StoredEvent]]]:
    reader = load.users[0]
    timelines: dict[str, dict[str, list[StoredEvent]]] = {}
    for name in sites:
        rooms = {}
        for room_id in load.rooms:
            events = await load.timeline(cluster.site_url(name), room_id, reader.token)
            rooms[room_id] = [
                StoredEvent(e["event_id"], e["content"].get("body", ""))
                for e in events
                if e["type"] == "m.room.message"
            ]
        timelines[name] = rooms
    return timelines


async def burn_under_load(
    cluster: Cluster, victim: str, seconds_before: float = 3.0, seconds_after: float = 12.0
) -> tuple[Load, float]:
    load = Load(cluster.front_door)
    await load.__aenter__()
    await load.setup(users=6, rooms=3)
    traffic = asyncio.create_task(load.run(rate=40, duration=seconds_before + seconds_after))
    await asyncio.sleep(seconds_before)
    fault_at = time.monotonic()
    await asyncio.get_running_loop().run_in_executor(None, cluster.burn, victim)
    await traffic
    return load, fault_at


async def test_leader_site_fire_loses_nothing(cluster: Cluster) -> None:
    victim = leader_site(cluster)
    load, fault_at = await burn_under_load(cluster, victim)
    try:
        survivors = [n for n in cluster.names if n != victim]
        timelines = await read_back(load, cluster, survivors)
        verdict = judge(load.sends(), timelines)
        gap = write_gap(fault_at, {u.name: u.ack_times for u in load.users})
        print("verdict", verdict.as_dict(), "write gap", gap)
        assert verdict.acknowledged > 100
        assert verdict.lost == [] and verdict.duplicated == [] and verdict.reordered == []
        # Every client wrote again after the fire, with no operator action.
        assert gap and gap["clients"] == len(load.users)
        assert gap["max"] < 60
    finally:
        await load.__aexit__()


async def test_rebuild_then_survive_a_second_fire(cluster: Cluster) -> None:
    first = leader_site(cluster)
    load, _ = await burn_under_load(cluster, first, seconds_after=8.0)
    try:
        result = await asyncio.get_running_loop().run_in_executor(None, cluster.rebuild, first)
        assert result.returncode == 0, result.stderr
        assert cluster.site(first)["node"] != f"{first}-1"  # a new identity, never the burned one
        # Its workers listen on new ports: the front door follows and sends it requests again.
        assert wait_until(lambda: front_door_servers(cluster).get(first) == "UP", 30), (
            front_door_servers(cluster)
        )
        # The rebuilt site serves the same timelines as the survivors.
        timelines = await read_back(load, cluster, cluster.names)
        assert judge(load.sends(), timelines).ok
        # Redundancy is back: burn another site and keep going.
        second = next(n for n in cluster.names if n != first)
        load2, fault_at = await burn_under_load(
            cluster, second, seconds_before=2.0, seconds_after=10.0
        )
        try:
            survivors = [n for n in cluster.names if n != second]
            verdict = judge(load2.sends(), await read_back(load2, cluster, survivors))
            assert verdict.acknowledged > 50 and verdict.ok, verdict.as_dict()
        finally:
            await load2.__aexit__()
    finally:
        await load.__aexit__()


@pytest.fixture
def snapshotting_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A three-site cluster whose workers store a view snapshot every few seconds."""
    c = start_cluster(tmp_path / "cluster", site_toml="[view]\nsnapshot_interval_seconds = 3\n")
    try:
        yield c
    finally:
        c.down()


async def test_a_rebuilt_site_is_seeded_from_a_snapshot(snapshotting_cluster: Cluster) -> None:
    cluster = snapshotting_cluster
    first = leader_site(cluster)
    load, _ = await burn_under_load(cluster, first, seconds_before=6.0, seconds_after=6.0)
    try:
        result = await asyncio.get_running_loop().run_in_executor(None, cluster.rebuild, first)
        assert result.returncode == 0, result.stderr
        # Seeded from a survivor's (or its own earlier) snapshot, then only the tail.
        assert '"seeded_from_snapshot": true' in result.stdout, result.stdout + result.stderr
        assert "replay only the log after it" in result.stderr
        # And it serves the same timelines as the survivors.
        timelines = await read_back(load, cluster, cluster.names)
        verdict = judge(load.sends(), timelines)
        assert verdict.acknowledged > 50 and verdict.ok, verdict.as_dict()
    finally:
        await load.__aexit__()
