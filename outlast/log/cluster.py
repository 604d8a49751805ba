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
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import nats

from outlast.log.tls import TlsContext

Progress = Callable[[str], Awaitable[None]]


async def balance_leaders(
    app_url: str, streams: Sequence[str], nodes: Sequence[str], tls: TlsContext = None
) -> dict[str, str]:
    """Best effort: returns stream -> node it asked to lead. Never raises."""
    wanted: dict[str, str] = {}
    try:
        nc = await nats.connect(app_url, connect_timeout=5, max_reconnect_attempts=1, **_tls(tls))
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


async def remove_server_peer(
    sys_url: str, peer: str, timeout: float = 300, tls: TlsContext = None
) -> None:
    """Remove a dead node from the JetStream meta group (system account), so the group
    counts only live peers and a later loss of another site still leaves a majority.

    Without a meta leader (no quorum: another site cut off too) nobody answers; that
    is waited out, up to ``timeout``, not taken as a failure (drill rebuild-partitioned).
    """
    sys_nc = await nats.connect(sys_url, connect_timeout=5, **_tls(tls))
    try:
        deadline = time.monotonic() + timeout
        answer: Any = "no answer: no JetStream meta leader (no quorum)"
        while True:
            try:
                reply = await sys_nc.request(
                    "$JS.API.SERVER.REMOVE", json.dumps({"peer": peer}).encode(), timeout=5
                )
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
                pass
            else:
                answer = json.loads(reply.data)
                if answer.get("success") or "not" in json.dumps(answer.get("error", {})).lower():
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"could not remove peer {peer} in {timeout:.0f}s: {answer}")
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
    tls: TlsContext = None,
) -> None:
    """Every stream drops ``old_node`` and, by its placement (one replica per site tag),
    re-replicates onto ``new_node``; returns once every replica of every stream is current."""
    app_nc = await nats.connect(app_url, connect_timeout=5, **_tls(tls))
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
                    # Asked again next round if the leader did not answer in time.
                    with contextlib.suppress(nats.errors.TimeoutError):
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


def _tls(tls: TlsContext) -> dict[str, Any]:
    """nats-py's option for a TLS connection verified against the cluster CA, if any."""
    return {"tls": tls} if tls is not None else {}


def _least_loaded(leaders: dict[str, str], candidates: Sequence[str]) -> str:
    counts = {node: 0 for node in candidates}
    for leader in leaders.values():
        if leader in counts:
            counts[leader] += 1
    return min(candidates, key=lambda node: (counts[node], node))


async def move_leaders_off(
    app_url: str,
    streams: Sequence[str],
    node: str,
    others: Sequence[str],
    progress: Progress,
    timeout: float = 60,
    tls: TlsContext = None,
) -> int:
    """Hand every stream ``node`` leads to one of ``others`` (least loaded first), by
    JetStream's leader step-down with a preferred placement, before a planned stop.

    A graceful hand-over: the old leader has replicated everything it
    acknowledged, and the preferred node takes over at once instead of after an
    election timeout (4–9 s). Returns how many streams moved; waits until no
    stream is led from ``node`` (raises TimeoutError otherwise).
    """
    nc = await nats.connect(app_url, connect_timeout=5, max_reconnect_attempts=2, **_tls(tls))
    moved = 0
    try:
        js = nc.jetstream(timeout=5)
        deadline = time.monotonic() + timeout
        leaders: dict[str, str] = {}
        asked: dict[str, float] = {}
        while True:
            for stream in streams:
                try:
                    info = await js.stream_info(stream)
                except Exception:  # noqa: BLE001 - electing: ask again next round
                    leaders[stream] = ""
                    continue
                leaders[stream] = (info.cluster.leader or "") if info.cluster else ""
            on_node = [s for s, leader in leaders.items() if leader == node]
            unknown = [s for s, leader in leaders.items() if not leader]
            if not on_node and not unknown:
                return moved
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"streams still led from {node} after {timeout:.0f}s: {on_node or unknown}"
                )
            for stream in on_node:
                if time.monotonic() - asked.get(stream, 0.0) < 2.0:
                    continue  # a step-down asked for is under way
                target = _least_loaded(leaders, others)
                try:
                    reply = await nc.request(
                        f"$JS.API.STREAM.LEADER.STEPDOWN.{stream}",
                        json.dumps({"placement": {"preferred": target}}).encode(),
                        timeout=5,
                    )
                except Exception:  # noqa: BLE001 - asked again next round
                    continue
                asked[stream] = time.monotonic()
                if json.loads(reply.data).get("success"):
                    moved += 1
                    leaders[stream] = target
                    await progress(f"stream {stream}: leader {node} -> {target}")
            await asyncio.sleep(0.1)
    finally:
        await nc.close()


async def move_meta_leader_off(
    sys_url: str,
    node: str,
    others: Sequence[str],
    meta_leader: Callable[[], Awaitable[str]],
    timeout: float = 30,
    tls: TlsContext = None,
) -> bool:
    """Hand the JetStream meta leader (stream and consumer placement, peer changes)
    over to the last of ``others`` if ``node`` holds it (``meta_leader`` tells who
    does, e.g. from a monitoring endpoint). True if it moved.

    The last: in a rolling restart in site order that is the site restarted
    last, so the meta leader moves as rarely as it can. Every view whose
    consumer lived on a stopped node needs the meta leader to place a new one,
    and a meta leader that moved a moment ago (or sits on a node just
    restarted) answers those requests slowest."""
    nc = await nats.connect(sys_url, connect_timeout=5, max_reconnect_attempts=2, **_tls(tls))
    moved = False
    try:
        deadline = time.monotonic() + timeout
        asked = 0.0
        while True:
            leader = await meta_leader()
            if leader and leader != node:
                return moved
            if time.monotonic() > deadline:
                raise TimeoutError(f"the meta leader is still {leader or 'unknown'}")
            if leader == node and time.monotonic() - asked > 2.0:
                request = {"placement": {"preferred": others[-1]}}
                with contextlib.suppress(Exception):
                    reply = await nc.request(
                        "$JS.API.META.LEADER.STEPDOWN", json.dumps(request).encode(), timeout=5
                    )
                    moved = bool(json.loads(reply.data).get("success")) or moved
                asked = time.monotonic()
            await asyncio.sleep(0.1)
    finally:
        await nc.close()


async def wait_replicas_current(
    app_url: str,
    streams: Sequence[str],
    node: str,
    progress: Progress,
    timeout: float = 120,
    tls: TlsContext = None,
) -> None:
    """Wait until ``node`` holds a current replica of every stream (a restarted node
    has caught up with what was written while it was away)."""
    nc = await nats.connect(app_url, connect_timeout=5, max_reconnect_attempts=2, **_tls(tls))
    try:
        js = nc.jetstream(timeout=5)
        deadline = time.monotonic() + timeout
        pending = set(streams)
        while pending:
            for stream in sorted(pending):
                try:
                    info = await js.stream_info(stream)
                except Exception:  # noqa: BLE001 - electing: ask again
                    continue
                cluster = info.cluster
                if cluster is None or not cluster.leader:
                    continue
                if cluster.leader == node or any(
                    r.name == node and r.current and not r.offline for r in cluster.replicas or []
                ):
                    pending.discard(stream)
            if pending:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{node} not current after {timeout:.0f}s: {sorted(pending)}"
                    )
                await asyncio.sleep(0.2)
        await progress(f"{node} holds a current replica of all {len(streams)} streams")
    finally:
        await nc.close()


async def even_out_leaders(
    app_url: str,
    streams: Sequence[str],
    nodes: Sequence[str],
    progress: Progress,
    timeout: float = 60,
    tls: TlsContext = None,
) -> int:
    """Move as few stream leaders as it takes for no node to lead two more than another.

    After a rolling restart the site restarted last leads nothing. Unlike
    ``balance_leaders`` (a fixed round robin, moving whatever differs), this
    moves one stream at a time from the busiest node to the idlest, the first
    candidate in ``streams`` order first, and waits for each hand-over before
    the next: every hand-over briefly stalls the writers of that stream, so
    the caller lists the streams fewest requests wait on first. Returns how
    many moved.
    """
    nc = await nats.connect(app_url, connect_timeout=5, max_reconnect_attempts=2, **_tls(tls))
    moved = 0
    try:
        js = nc.jetstream(timeout=5)
        deadline = time.monotonic() + timeout
        for _ in range(len(streams)):
            leaders: dict[str, str] = {}
            for stream in streams:
                with contextlib.suppress(Exception):
                    info = await js.stream_info(stream)
                    leaders[stream] = (info.cluster.leader or "") if info.cluster else ""
            counts = {node: 0 for node in nodes}
            for leader in leaders.values():
                if leader in counts:
                    counts[leader] += 1
            busiest = max(nodes, key=lambda n: (counts[n], n))
            idlest = min(nodes, key=lambda n: (counts[n], n))
            if counts[busiest] - counts[idlest] <= 1:
                break
            stream = next(s for s in streams if leaders.get(s) == busiest)
            with contextlib.suppress(Exception):
                await nc.request(
                    f"$JS.API.STREAM.LEADER.STEPDOWN.{stream}",
                    json.dumps({"placement": {"preferred": idlest}}).encode(),
                    timeout=5,
                )
            while time.monotonic() < deadline:
                with contextlib.suppress(Exception):
                    info = await js.stream_info(stream)
                    if info.cluster and info.cluster.leader == idlest:
                        moved += 1
                        await progress(f"stream {stream}: leader {busiest} -> {idlest}")
                        break
                await asyncio.sleep(0.1)
            if time.monotonic() > deadline:
                break
    finally:
        await nc.close()
    return moved
