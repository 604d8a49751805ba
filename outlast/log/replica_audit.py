"""Find stream replicas with holes, and ask JetStream to replace one.

Outlast's streams never delete a message, so a replica that holds fewer
messages than its range (``last_seq - first_seq + 1``) lost some. nats-server
can leave such a replica in place: after a node's message block was damaged,
the node drops the bad records at restart, replays its raft log (which only
covers the tail), and then compares just its last sequence with the leader's
snapshot; the same last sequence counts as caught up, the hole in the middle
stays (drill ``corrupt``, bench/results/drills/corrupt-netns-holes-1.json).

``audit`` decides, from every node's own stream states, which replicas have
holes and which of them may be taken out. It is bounded: never the leader,
only when the leader holds every message, only when the replicas left without
it are still a quorum of whole ones, at most one per stream. ``remove_peer``
asks JetStream to take the replica out (``$JS.API.STREAM.PEER.REMOVE``) so
its placement puts a fresh one in; nats-server 2.15 refuses that ("peer remap
failed") when no other node satisfies the placement, as with one node per
site: the answer is returned as is, for the caller to report. Whoever runs the
node can then ``reset_local_replica``: stop it, delete that stream's store on
its disk (not its raft state), start it. The replica then starts from
sequence 0, below the leader's snapshot, so JetStream's own catch-up copies
every message from the leader; nothing of ours replicates anything.
"""

from __future__ import annotations

import json
import logging
import shutil
import urllib.request
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import nats.errors
from nats.aio.client import Client

from outlast.log.engine import NatsNode
from outlast.log.names import Names
from outlast.log.tls import TlsContext

log = logging.getLogger(__name__)

StreamStates = Mapping[str, Mapping[str, Any]]  # stream name -> state (messages, first_seq...)


@dataclass(frozen=True)
class Hole:
    """One replica that misses messages its range implies."""

    stream: str
    node: str
    missing: int
    removable: bool
    why: str  # why it may or may not be removed

    def line(self) -> str:
        verdict = "replace" if self.removable else "keep"
        return (
            f"{self.stream} on {self.node}: {self.missing} messages missing ({verdict}: {self.why})"
        )


def missing(state: Mapping[str, Any]) -> int:
    """Messages a replica lacks from its own range (0 for an empty stream)."""
    messages = int(state.get("messages") or 0)
    first, last = int(state.get("first_seq") or 0), int(state.get("last_seq") or 0)
    if last == 0 or last < first:
        return 0
    return max(0, last - first + 1 - messages)


def _whole_like(state: Mapping[str, Any] | None, leader: Mapping[str, Any]) -> bool:
    """As complete as the leader: no holes and at least its last sequence."""
    return (
        state is not None
        and missing(state) == 0
        and int(state.get("last_seq") or 0) >= int(leader.get("last_seq") or 0)
    )


def audit(
    per_node: Mapping[str, StreamStates],
    leaders: Mapping[str, str],
    streams: Collection[str] | None = None,
) -> list[Hole]:
    """Every replica with holes, each marked removable or not (and why).

    Only ``streams`` (default: all) are audited: those that never delete a
    message (not the health stream, which keeps one per subject, nor KV
    buckets). A replica counts as holed when it misses more of its range than
    the most complete replica (a restored stream's purged placeholders are gaps
    on every replica alike); it may be replaced only when the leader misses none.
    """
    found: list[Hole] = []
    for stream, leader in sorted(leaders.items()):
        if streams is not None and stream not in streams:
            continue
        holders = {node: states[stream] for node, states in per_node.items() if stream in states}
        lead = holders.get(leader)
        floor = min((missing(state) for state in holders.values()), default=0)
        holed = sorted(node for node, state in holders.items() if missing(state) > floor)
        chosen = False
        for node in holed:
            gap = missing(holders[node]) - floor
            if node == leader:
                found.append(Hole(stream, node, gap, False, "it is the leader"))
                continue
            if lead is None or missing(lead) > 0:
                found.append(Hole(stream, node, gap, False, "the leader is not whole"))
                continue
            whole = sum(1 for n, s in holders.items() if n != node and _whole_like(s, lead))
            if whole < len(holders) // 2 + 1:
                found.append(Hole(stream, node, gap, False, "the rest would be no whole quorum"))
                continue
            if chosen:
                found.append(Hole(stream, node, gap, False, "one replacement per stream at a time"))
                continue
            chosen = True
            found.append(
                Hole(stream, node, gap, True, f"leader {leader} and {whole - 1} more whole")
            )
    return found


def never_deleting(partitions: int) -> set[str]:
    """The streams that never lose a message by design (not health: one per subject)."""
    layout = Names(partitions=partitions)
    return {s.name for s in layout.streams()} | {layout.drills_stream}


def node_states(monitor_url: str, timeout: float = 5.0) -> dict[str, dict[str, Any]]:
    """One node's own state of every stream it holds a replica of (its /jsz)."""
    url = monitor_url + "/jsz?streams=true&accounts=true"
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # loopback / site network
        jsz = json.loads(resp.read())
    out: dict[str, dict[str, Any]] = {}
    for account in jsz.get("account_details", []):
        for stream in account.get("stream_detail", []):
            out[stream["name"]] = dict(stream.get("state") or {})
    return out


def node_leaders(monitor_url: str, timeout: float = 5.0) -> dict[str, str]:
    """Stream -> leader, as this node's /jsz names it."""
    url = monitor_url + "/jsz?streams=true&accounts=true"
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        jsz = json.loads(resp.read())
    out: dict[str, str] = {}
    for account in jsz.get("account_details", []):
        for stream in account.get("stream_detail", []):
            leader = (stream.get("cluster") or {}).get("leader")
            if leader:
                out[stream["name"]] = str(leader)
    return out


async def remove_peer(nc: Client, hole: Hole, timeout: float = 10.0) -> dict[str, Any]:
    """Ask JetStream to take ``hole.node`` out of the stream's group; its answer."""
    if not hole.removable:
        raise ValueError(f"not removable: {hole.line()}")
    try:
        reply = await nc.request(
            f"$JS.API.STREAM.PEER.REMOVE.{hole.stream}",
            json.dumps({"peer": hole.node}).encode(),
            timeout=timeout,
        )
    except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
        return {"error": {"description": f"no answer: {type(exc).__name__}"}}
    answer: dict[str, Any] = json.loads(reply.data)
    return answer


async def replace_at(
    nats_url: str, hole: Hole, timeout: float = 10.0, tls: TlsContext = None
) -> dict[str, Any]:
    """``remove_peer`` over a connection of its own (for tools that hold only a URL)."""
    extra: dict[str, Any] = {"tls": tls} if tls is not None else {}
    try:
        nc = await nats.connect(nats_url, connect_timeout=5, max_reconnect_attempts=1, **extra)
    except Exception as exc:  # noqa: BLE001 - reported, not raised: the audit is advisory
        return {"error": {"description": f"cannot connect: {type(exc).__name__}"}}
    try:
        return await remove_peer(nc, hole, timeout)
    finally:
        await nc.close()


def delete_local_replica(store_dir: Path, stream: str, node: str = "") -> list[str]:
    """Delete a stopped node's store of ``stream`` (not its raft state); the deleted paths.

    Only for a hole the audit marked removable (the leader and a quorum of the
    others are whole): at its next start the node's replica is empty and
    JetStream's catch-up copies every message from the leader.
    """
    deleted = []
    for path in sorted(store_dir.glob(f"**/streams/{stream}")):
        if "$SYS" in path.parts or not path.is_dir():
            continue
        shutil.rmtree(path)
        deleted.append(str(path))
    log.warning(
        "replica audit: deleted %s's replica of %s with holes (%s); JetStream re-copies "
        "it from the leader when the node starts",
        node or store_dir,
        stream,
        deleted,
    )
    return deleted


def reset_local_replica(node: NatsNode, stream: str) -> list[str]:
    """Stop ``node`` gracefully, delete its store of ``stream``, start it again."""
    node.stop()
    deleted = delete_local_replica(node.spec.store_dir, stream, node.spec.name)
    node.start()
    return deleted
