"""Administering the log's cluster: where stream leaders sit, and replacing a dead peer.

Used by the cluster tooling (outlast/cluster): it talks to JetStream's own
API (the system account for peer removal), through nats-py, here.

Spreading stream leaders over the sites: a stream's leader orders and replicates
its writes. If one site leads every stream (JetStream tends to elect the first
node that was up), losing that site stalls every room for an election (4–9 s),
and that site's node does all the ordering work. Asking each stream to step
down in favour of a preferred node, round robin over the sites, means a site
loss stalls only the partitions that site led, while the others keep committing.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import nats

Progress = Callable[[str], Awaitable[None]]


async def balance_leaders(
    app_url: str, streams: Sequence[str], nodes: Sequence[str]
) -> dict[str, str]:
    """Best effort: returns stream -> node it asked to lead. Never raises."""
    wanted: dict[str, str] = {}
    try:
        nc = await nats.connect(app_url, connect_timeout=5, max_reconnect_attempts=1)
    except Exception:  # noqa: BLE001 - balancing is an optimisation
        return wanted
    try:
        js = nc.jetstream(timeout=5)
        for i, stream in enumerate(streams):
            node = nodes[i % len(nodes)]
            try:
                info = await js.stream_info(stream)
            except Exception:  # noqa: BLE001
                continue
            if info.cluster is None or info.cluster.leader == node:
                wanted[stream] = node
                continue
            try:
                await nc.request(
                    f"$JS.API.STREAM.LEADER.STEPDOWN.{stream}",
                    json.dumps({"placement": {"preferred": node}}).encode(),
                    timeout=5,
                )
                wanted[stream] = node
            except Exception:  # noqa: BLE001
                continue
    finally:
        await nc.close()
    return wanted


async def remove_server_peer(sys_url: str, peer: str, timeout: float = 60) -> None:
    """Remove a dead node from the JetStream meta group (system account), so the group
    counts only live peers and a later loss of another site still leaves a majority."""
    sys_nc = await nats.connect(sys_url, connect_timeout=5)
    try:
        deadline = time.monotonic() + timeout
        while True:
            reply = await sys_nc.request(
                "$JS.API.SERVER.REMOVE", json.dumps({"peer": peer}).encode(), timeout=5
            )
            answer = json.loads(reply.data)
            if answer.get("success") or "not" in json.dumps(answer.get("error", {})).lower():
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"could not remove peer {peer}: {answer}")
            await asyncio.sleep(1)
    finally:
        await sys_nc.close()


async def _replica_state(js: Any, stream: str) -> tuple[bool, list[str]]:
    info = await js.stream_info(stream)
    cluster = info.cluster
    names = [cluster.leader] if cluster and cluster.leader else []
    current = bool(cluster and cluster.leader)
    for replica in (cluster.replicas or []) if cluster else []:
        names.append(replica.name)
        if not replica.current or replica.offline:
            current = False
    return current, names


async def replicate_onto(
    app_url: str,
    streams: Sequence[str],
    old_node: str,
    new_node: str,
    progress: Progress,
    timeout: float = 300,
) -> None:
    """Every stream drops ``old_node`` and, by its placement (one replica per site tag),
    re-replicates onto ``new_node``; returns once every replica of every stream is current."""
    app_nc = await nats.connect(app_url, connect_timeout=5)
    try:
        js = app_nc.jetstream(timeout=5)
        deadline = time.monotonic() + timeout
        pending = set(streams)
        while pending:
            for stream in sorted(pending):
                try:
                    current, peers = await _replica_state(js, stream)
                except Exception:  # noqa: BLE001 - stream leader may be moving
                    continue
                if old_node in peers:
                    await app_nc.request(
                        f"$JS.API.STREAM.PEER.REMOVE.{stream}",
                        json.dumps({"peer": old_node}).encode(),
                        timeout=5,
                    )
                    continue
                if current and new_node in peers and len(peers) >= 3:
                    pending.discard(stream)
            if pending:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"replicas not current after {timeout:.0f}s: {sorted(pending)}"
                    )
                await asyncio.sleep(0.5)
            await progress(f"{len(streams) - len(pending)}/{len(streams)} streams fully replicated")
    finally:
        await app_nc.close()
