"""Planned maintenance of one site without a pause for the others.

A crash makes every stream the lost site led wait for a Raft election
(4–9 s). A planned stop need not: ``drain_site`` hands everything over first.

1. Out of the front door: the site's servers go to HAProxy's ``drain`` state
   (no new requests; those in flight finish, bounded), then its workers report
   ``draining`` on their health check (any other load balancer lets go too).
2. Every stream the site's node leads, and the JetStream meta leader, step
   down in favour of a node of another site (a graceful hand-over, no election
   timeout); it waits until no stream is led from the site.
3. The workers stop, then the node stops in lame-duck mode.

``restart_site`` drains, starts the same node on the same disks, waits until
it holds a current replica of every stream and its workers report healthy
(view caught up), and puts the site back into the front door.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import aiohttp

from outlast.cluster.plan import ClusterPlan, SitePlan
from outlast.log.cluster import (
    even_out_leaders,
    move_leaders_off,
    move_meta_leader_off,
    wait_replicas_current,
)
from outlast.log.engine import NatsNode
from outlast.log.names import Names

Progress = Callable[[str], Awaitable[None]]

IN_FLIGHT_WAIT = 5.0  # seconds requests already sent to a draining site get to finish
FRONT_DOOR_WAIT = 30.0  # seconds for the front door to see a restarted site as up


class SiteHandle(Protocol):
    node: NatsNode | None

    def alive(self) -> bool: ...

    def drain_workers(self) -> None: ...

    def stop_workers(self) -> None: ...

    def stop_node_lame_duck(self, timeout: float = 30.0) -> None: ...

    def start_node(self) -> None: ...

    def start_workers(self) -> None: ...


class FrontDoorHandle(Protocol):
    def set_state(self, site: str, state: str) -> None: ...

    def servers_of(self, site: str) -> list[str]: ...

    def servers(self) -> dict[str, dict[str, str]]: ...


class MaintenanceHost(Protocol):
    """What maintenance needs of the cluster's supervisor (outlast/cluster/supervisor.py)."""

    plan: ClusterPlan
    status: dict[str, str]
    drained: set[str]

    @property
    def front_door(self) -> FrontDoorHandle: ...

    @property
    def sites(self) -> Mapping[str, SiteHandle]: ...

    def write_description(self) -> None: ...

    async def wait_healthy(self, names: list[str], progress: Progress, timeout: float) -> None: ...


def stream_names(plan: ClusterPlan) -> list[str]:
    layout = Names(partitions=plan.partitions)
    return [s.name for s in [*layout.streams(), *layout.control_streams()]]


def by_disruption(plan: ClusterPlan) -> list[str]:
    """Streams in the order their leaders are best moved: a hand-over briefly stalls
    whoever waits on that stream. Health probes and drill records stall no user;
    aliases few; a room partition the writers of its rooms; the users stream
    every request (each one authenticates against it)."""
    layout = Names(partitions=plan.partitions)
    rooms = [layout.rooms_stream(i) for i in range(plan.partitions)]
    first = [s.name for s in layout.control_streams()] + [layout.directory_stream]
    return first + rooms + [layout.users_stream]


async def even_out(host: MaintenanceHost, progress: Progress) -> int:
    """After a restart: give the sites an even share of stream leaders, moving few."""
    plan = host.plan
    nodes = [s.node_name for s in plan.sites]
    url = plan.app_url(plan.sites[0])
    moved = await even_out_leaders(
        url, by_disruption(plan), nodes, progress, tls=plan.tls_context()
    )
    await progress(f"stream leaders evened out over the sites ({moved} moved)")
    return moved


async def _healthy(url: str, session: aiohttp.ClientSession) -> bool:
    try:
        async with session.get(url + "/_outlast/health") as resp:
            return resp.status == 200
    except (TimeoutError, aiohttp.ClientError, OSError):
        return False


async def _meta_leader(monitor_url: str) -> str:
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as session,
            session.get(monitor_url + "/jsz") as resp,
        ):
            data = await resp.json(content_type=None)
    except (TimeoutError, aiohttp.ClientError, ValueError, OSError):
        return ""
    return str((data.get("meta_cluster") or {}).get("leader") or "")


async def _in_flight_done(host: MaintenanceHost, name: str, timeout: float) -> int:
    """Wait (bounded) until the front door has no request open at the site; how many
    were still open when the wait ended (long-polling syncs may be; they are
    answered at once when the workers stop)."""
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + timeout
    servers = set(host.front_door.servers_of(name))
    while True:
        rows = await loop.run_in_executor(None, host.front_door.servers)
        open_now = sum(int(rows[s].get("scur") or 0) for s in servers if s in rows)
        if open_now == 0 or time.monotonic() > deadline:
            return open_now
        await asyncio.sleep(0.05)


async def drain_site(host: MaintenanceHost, name: str, progress: Progress) -> dict[str, Any]:
    plan = host.plan
    site = plan.site(name)
    sp = host.sites[name]
    started = time.monotonic()
    if not sp.alive():
        raise RuntimeError(f"site {name} is not running")
    others = [s for s in plan.sites if s.name != name]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as session:
        healthy: list[SitePlan] = [s for s in others if await _healthy(s.url, session)]
    majority = len(plan.sites) // 2 + 1
    if len(healthy) < majority:
        raise RuntimeError(
            f"draining {name} would leave {len(healthy)} healthy site(s) of "
            f"{len(plan.sites)}: no majority to commit; restore the others first"
        )
    loop = asyncio.get_running_loop()

    # 1. Out of the front door; requests in flight finish.
    await loop.run_in_executor(None, host.front_door.set_state, name, "drain")
    await progress(f"site {name}: out of the front door (no new requests)")
    still_open = await _in_flight_done(host, name, IN_FLIGHT_WAIT)
    await progress(
        f"site {name}: requests in flight finished"
        if not still_open
        else f"site {name}: {still_open} request(s) still open after {IN_FLIGHT_WAIT}s (syncs)"
    )
    await loop.run_in_executor(None, sp.drain_workers)
    await progress(f"site {name}: workers report draining")

    # 2. Every leader elsewhere, by graceful hand-over.
    node = site.node_name
    targets = [s.node_name for s in healthy]
    via = healthy[0]
    moved = await move_leaders_off(
        plan.app_url(via), by_disruption(plan), node, targets, progress, tls=plan.tls_context()
    )
    meta_moved = await move_meta_leader_off(
        plan.sys_url(via),
        node,
        targets,
        lambda: _meta_leader(via.monitor_url),
        tls=plan.tls_context(),
    )
    await progress(
        f"site {name}: leads no stream ({moved} handed over"
        + (", and the meta leader)" if meta_moved else ")")
    )

    # 3. Stop: workers first (nothing in flight any more), then the node.
    await loop.run_in_executor(None, sp.stop_workers)
    await progress(f"site {name}: workers stopped")
    stopping = time.monotonic()
    await loop.run_in_executor(None, sp.stop_node_lame_duck)
    await progress(
        f"site {name}: node {node} stopped in lame-duck mode ({time.monotonic() - stopping:.1f}s)"
    )
    host.drained.add(name)
    host.status[name] = "drained"
    host.write_description()
    elapsed = round(time.monotonic() - started, 1)
    await progress(f"site {name}: drained in {elapsed}s")
    return {
        "site": name,
        "leaders_moved": moved,
        "meta_leader_moved": meta_moved,
        "requests_still_open": still_open,
        "seconds": elapsed,
    }


async def restart_site(
    host: MaintenanceHost,
    name: str,
    progress: Progress,
    while_stopped: Callable[[], Any] | None = None,
) -> dict[str, Any]:
    """Drain, restart on the same disks, wait until current and back in the front door.
    ``while_stopped`` runs between the node's stop and start (the replica audit resets
    a damaged stream store there)."""
    plan = host.plan
    site = plan.site(name)
    sp = host.sites[name]
    started = time.monotonic()
    drained = await drain_site(host, name, progress)
    host.status[name] = "restarting"
    if while_stopped is not None:
        while_stopped()

    sp.start_node()
    assert sp.node is not None
    await sp.node.wait_ready()
    host.drained.discard(name)
    host.write_description()
    await progress(f"site {name}: node {site.node_name} restarted on its disks")
    await wait_replicas_current(
        plan.app_url(site), stream_names(plan), site.node_name, progress, tls=plan.tls_context()
    )

    sp.start_workers()
    host.write_description()
    await host.wait_healthy([name], progress, 180)

    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, host.front_door.set_state, name, "ready")
    servers = host.front_door.servers_of(name)
    deadline = time.monotonic() + FRONT_DOOR_WAIT
    while True:
        rows = await loop.run_in_executor(None, host.front_door.servers)
        if all(rows.get(s, {}).get("status", "").startswith("UP") for s in servers):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"the front door does not see site {name} up: {rows}")
        await asyncio.sleep(0.1)
    host.status[name] = "up"
    host.write_description()
    elapsed = round(time.monotonic() - started, 1)
    await progress(f"site {name}: back in the front door, restarted in {elapsed}s")
    return {"site": name, "drain": drained, "seconds": elapsed}
