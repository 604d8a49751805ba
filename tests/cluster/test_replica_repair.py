"""The cluster's replica audit repairs a replica with holes by itself.

Holes made deterministically on a real three-site cluster: a planned restart
of one site makes its node snapshot its raft logs; more writes follow; then
the drill's own corrupt fault (kill -9 of the site, every stream's last block
damaged, power-on). The node drops the records from the damaged one on,
replays only the tail from its raft log, and matches the leader's last
sequence with messages missing in the middle. The supervisor's audit must find
them and get JetStream to re-copy the replica, with no operator action.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import nats
import pytest

from outlast.drill import faults
from outlast.log.names import Names
from outlast.log.replica_audit import audit, missing, never_deleting, node_leaders, node_states
from tests.cluster.harness import Cluster, move_leader

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

STREAM = Names().drills_stream
FIRST, MORE = 2000, 300


async def publish(url: str, count: int, tag: str) -> None:
    nc = await nats.connect(url, connect_timeout=5)
    try:
        js = nc.jetstream(timeout=10)
        subject = Names().drills_wildcard.replace(">", f"audit.{tag}")
        for i in range(count):
            await js.publish(subject, json.dumps({"i": i, "pad": "x" * 200}).encode())
    finally:
        await nc.close()


def states(cluster: Cluster) -> tuple[dict[str, Any], dict[str, str]]:
    per_node: dict[str, Any] = {}
    leaders: dict[str, str] = {}
    for site in cluster.description["sites"]:
        per_node[site["node"]] = node_states(site["monitor_url"])
        leaders.update(node_leaders(site["monitor_url"]))
    return per_node, leaders


def test_audit_resets_a_holed_replica(cluster: Cluster) -> None:
    victim = cluster.names[1]
    node = cluster.site(victim)["node"]
    others = [n for n in cluster.names if n != victim]
    url = cluster.site(others[0])["nats_url"]
    asyncio.run(move_leader(cluster, STREAM, others[0]))
    asyncio.run(publish(url, FIRST, "first"))
    cluster.control(f"/sites/{victim}/restart")  # planned: the node snapshots its raft logs
    asyncio.run(move_leader(cluster, STREAM, others[0]))
    asyncio.run(publish(url, MORE, "more"))
    time.sleep(2)  # the victim applies the last writes
    site = cluster.site(victim)
    inflicted = faults.inflict(cluster.description, site, "corrupt")
    assert any(d["stream"] == STREAM for d in inflicted["damaged"]), inflicted
    faults.recover(cluster.description, site, "corrupt")

    total = FIRST + MORE
    seen_holes: list[str] = []
    deadline = time.monotonic() + 240
    last: Any = None
    while time.monotonic() < deadline:
        try:
            per_node, leaders = states(cluster)
        except OSError:
            time.sleep(1)
            continue
        mine = per_node.get(node, {}).get(STREAM, {})
        if missing(mine) > 0:
            seen_holes.append(f"{mine}")
        record = cluster.description.get("replica_audit") or {}
        last = (mine, record.get("repairs"))
        whole = all(s.get(STREAM, {}).get("messages", 0) >= total for s in per_node.values())
        if whole and not audit(per_node, leaders, never_deleting(2)) and record.get("repairs"):
            break
        time.sleep(1)
    else:
        raise AssertionError(f"no repair within 240 s: {last}")
    print("holes seen on", node, seen_holes[:1], "repairs:", json.dumps(record["repairs"]))
    repaired = [h["stream"] for r in record["repairs"] for h in r["holes"] if r["node"] == node]
    assert STREAM in repaired, record
    assert all(r.get("how") for r in record["repairs"]), record
    assert per_node[node][STREAM]["messages"] >= total and missing(per_node[node][STREAM]) == 0
