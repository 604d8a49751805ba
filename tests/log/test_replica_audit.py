"""The replica audit: which replicas have holes and which may be replaced.

The decision is pure and tested on states shaped like nats-server's /jsz; the
edge (per-node states, leaders, the peer-removal request) on a real three-node
cluster with one node per site tag, as Outlast runs it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest

from outlast.drill.faults import damage_block
from outlast.log.engine import NatsNode, NodeSpec, free_port
from outlast.log.replica_audit import (
    Hole,
    audit,
    missing,
    node_leaders,
    node_states,
    remove_peer,
    reset_local_replica,
)


def st(messages: int, first: int, last: int) -> dict[str, Any]:
    return {"messages": messages, "first_seq": first, "last_seq": last}


def test_missing_counts_holes_in_the_range() -> None:
    assert missing(st(933, 1, 933)) == 0
    assert missing(st(748, 1, 933)) == 185
    assert missing(st(0, 0, 0)) == 0
    assert missing(st(10, 91, 100)) == 0


def test_a_holed_follower_is_replaced_when_the_rest_are_whole() -> None:
    per_node = {
        "a": {"S": st(933, 1, 933)},
        "b": {"S": st(748, 1, 933)},
        "c": {"S": st(933, 1, 933)},
    }
    [hole] = audit(per_node, {"S": "a"})
    assert (hole.stream, hole.node, hole.missing, hole.removable) == ("S", "b", 185, True)


def test_never_the_leader_nor_without_a_whole_leader_or_quorum() -> None:
    leader_holed = {"a": {"S": st(700, 1, 933)}, "b": {"S": st(933, 1, 933)}}
    assert [(h.node, h.removable) for h in audit(leader_holed, {"S": "a"})] == [("a", False)]
    # Two of three holed: removing one leaves the leader as the only whole replica.
    two = {
        "a": {"S": st(933, 1, 933)},
        "b": {"S": st(748, 1, 933)},
        "c": {"S": st(800, 1, 933)},
    }
    assert [h.removable for h in audit(two, {"S": "a"})] == [False, False]
    # A follower still behind the leader is no whole replica either.
    behind = {
        "a": {"S": st(933, 1, 933)},
        "b": {"S": st(748, 1, 933)},
        "c": {"S": st(900, 1, 900)},
    }
    assert [h.removable for h in audit(behind, {"S": "a"})] == [False]


def test_at_most_one_replacement_per_stream() -> None:
    five = {n: {"S": st(100, 1, 100)} for n in "abc"}
    five["d"] = {"S": st(90, 1, 100)}
    five["e"] = {"S": st(95, 1, 100)}
    holes = audit(five, {"S": "a"})
    assert [(h.node, h.removable) for h in holes] == [("d", True), ("e", False)]
    assert "one replacement per stream" in holes[1].why


def test_gaps_on_every_replica_alike_are_no_holes_and_other_streams_are_skipped() -> None:
    # A restored stream's purged placeholders: the same gap everywhere.
    restored = {n: {"S": st(90, 1, 100), "H": st(3, 1, 50)} for n in "abc"}
    assert audit(restored, {"S": "a"}) == []
    # The health stream keeps one message per subject: not audited when left out.
    health = {"a": {"H": st(3, 1, 50)}, "b": {"H": st(2, 1, 50)}}
    assert audit(health, {"H": "a"}, streams={"S"}) == []
    assert [h.node for h in audit(health, {"H": "a"})] == ["b"]


@pytest.fixture
def three_sites(tmp_path: Path) -> Iterator[list[NatsNode]]:
    names = ["a", "b", "c"]
    cluster_ports = {n: free_port() for n in names}
    nodes = []
    for n in names:
        spec = NodeSpec(
            name=f"node-{n}",
            store_dir=tmp_path / n / "js",
            client_port=free_port(),
            cluster_port=cluster_ports[n],
            monitor_port=free_port(),
            site_tag=n,
            routes=[f"nats-route://127.0.0.1:{cluster_ports[o]}" for o in names if o != n],
            app_password="app",
            sys_password="sys",
        )
        nodes.append(NatsNode(spec, tmp_path / n / "nats.conf"))
    try:
        for node in nodes:
            node.start()
        yield nodes
    finally:
        for node in nodes:
            node.stop()


@pytest.mark.timeout(120)
async def add_stream(js: Any) -> None:
    """Stream S, three replicas, once the meta group has formed (bounded: 60 tries)."""
    for _ in range(60):
        try:
            await js.add_stream(name="S", subjects=["s.>"], num_replicas=3)
            return
        except Exception:  # noqa: BLE001 - the meta group is still forming
            await asyncio.sleep(1)
    raise AssertionError("stream S could not be made in 60 s")


def test_audit_on_a_real_cluster(three_sites: list[NatsNode]) -> None:
    """A whole cluster has no holes; the per-node reads name the stream's leader;
    and JetStream's answer to removing a whole follower is what the audit reports:
    with one node per site nats-server 2.15 finds no replacement and refuses."""

    async def run() -> None:
        for node in three_sites:
            await node.wait_ready()
        nc = await nats.connect(three_sites[0].url, user="app", password="app")
        try:
            js = nc.jetstream(timeout=10)
            await add_stream(js)
            for i in range(200):
                await js.publish(f"s.{i % 5}", b"x")
            monitors = {n.spec.name: f"http://127.0.0.1:{n.spec.monitor_port}" for n in three_sites}
            info = await js.stream_info("S")
            leader = info.cluster.leader if info.cluster else None
            assert leader
            per_node: dict[str, Any] = {}
            for _ in range(50):  # followers apply the last writes a moment later
                per_node = {name: node_states(url) for name, url in monitors.items()}
                if all(s["S"].get("last_seq") == 200 for s in per_node.values()):
                    break
                await asyncio.sleep(0.2)
            assert all(s["S"]["messages"] == 200 for s in per_node.values()), per_node
            assert node_leaders(monitors[leader]) == {"S": leader}
            assert audit(per_node, {"S": leader}) == []
            follower = next(name for name in monitors if name != leader)
            answer = await remove_peer(nc, Hole("S", follower, 0, True, "test"))
            print("peer remove:", json.dumps(answer))
            assert answer.get("error", {}).get("err_code") == 10075, answer
            info = await js.stream_info("S")
            assert info.cluster is not None
            peers = {info.cluster.leader, *(r.name for r in info.cluster.replicas or [])}
            assert follower in peers and len(peers) == 3
        finally:
            await nc.close()

    asyncio.run(run())


def _damage_last_block(store_dir: Path, stream: str) -> None:
    """The drill's corrupt damage (outlast/drill/faults.py): a flip mid-file, a cut tail."""
    blocks = sorted(
        store_dir.glob(f"**/streams/{stream}/msgs/*.blk"),
        key=lambda b: int(b.stem) if b.stem.isdigit() else -1,
    )
    assert blocks, f"no message block of {stream} under {store_dir}"
    damage_block(blocks[-1])


@pytest.mark.timeout(180)
def test_holes_are_found_and_the_reset_replica_is_whole_again(
    three_sites: list[NatsNode],
) -> None:
    """Deterministic holes: a graceful stop snapshots the follower's raft log, so after
    more writes, a kill -9 and a damaged block the raft replay restores only the tail
    and the stream's last sequence matches the leader's (nats-server compares only
    that). The audit finds the holes, JetStream refuses to move the replica (one node
    per site), and a reset of the node's local copy is caught up whole from the leader."""

    async def run() -> None:
        for node in three_sites:
            await node.wait_ready()
        servers = [n.url for n in three_sites]
        nc = await nats.connect(servers=servers, user="app", password="app")
        monitors = {n.spec.name: f"http://127.0.0.1:{n.spec.monitor_port}" for n in three_sites}

        def states() -> dict[str, Any]:
            return {name: node_states(url) for name, url in monitors.items()}

        try:
            js = nc.jetstream(timeout=10)
            await add_stream(js)
            for i in range(2000):
                await js.publish(f"s.{i % 5}", b"x" * 200)
            info = await js.stream_info("S")
            leader = info.cluster.leader if info.cluster else None
            assert leader
            victim = next(n for n in three_sites if n.spec.name != leader)
            victim.stop()  # graceful: its raft log is snapshotted and compacted
            victim.start()
            await victim.wait_ready()
            for i in range(300):
                await js.publish(f"s.{i % 5}", b"y" * 200)
            await wait_whole(states, 2300)
            assert victim.process is not None
            victim.process.kill()
            victim.process.wait(timeout=10)
            _damage_last_block(victim.spec.store_dir, "S")
            victim.start()
            await victim.wait_ready()

            holes: list[Hole] = []
            for _ in range(60):  # the restart settles: the tail comes back, the holes stay
                await asyncio.sleep(0.5)
                try:
                    now = states()
                    holes = audit(now, node_leaders(monitors[leader]))
                except OSError:
                    continue
                if holes and now[victim.spec.name]["S"]["last_seq"] == 2300:
                    break
            print("audit:", [h.line() for h in holes])
            assert [(h.stream, h.node, h.removable) for h in holes] == [
                ("S", victim.spec.name, True)
            ]
            answer = await remove_peer(nc, holes[0])
            print("peer remove:", json.dumps(answer))
            assert answer.get("error", {}).get("err_code") == 10075, answer

            deleted = reset_local_replica(victim, "S")
            assert deleted
            await victim.wait_ready()
            after = await wait_whole(states, 2300)
            assert audit(after, {"S": leader}) == []
            assert after[victim.spec.name]["S"]["messages"] == 2300
        finally:
            await nc.close()

    asyncio.run(run())


async def wait_whole(states: Any, count: int, timeout: float = 60.0) -> dict[str, Any]:
    """Every node holds ``count`` messages of S with no holes (or the last states seen)."""
    deadline = asyncio.get_running_loop().time() + timeout
    seen: dict[str, Any] = {}
    while asyncio.get_running_loop().time() < deadline:
        try:
            seen = states()
        except OSError:
            seen = {}
        if seen and all(s.get("S", {}).get("messages") == count for s in seen.values()):
            return seen
        await asyncio.sleep(0.5)
    raise AssertionError(f"replicas not whole after {timeout:.0f}s: {seen}")
