"""The cluster's replica audit: find replicas with holes and have JetStream re-copy them.

Runs once per cluster, in the supervisor that owns every site's node (not in
each worker, so not N times per site). Every ``interval`` it reads each node's
own stream states (its monitoring endpoint) and audits them
(outlast/log/replica_audit.py). For the first replica it may replace (never
a leader's, only with a whole leader and a whole quorum without it, one at a
time), it first asks JetStream to move it (``STREAM.PEER.REMOVE``: placement
picks another node of that site). With one node per site nats-server refuses
("peer remap failed"); then the site is restarted the planned way (drained,
leaders handed over), and while its node is stopped that stream's store is
deleted, so at start JetStream catches the empty replica up from the leader.
Everything it finds and does is logged and kept in ``record`` (cluster.json's
``replica_audit``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import Any

from outlast.cluster.maintenance import MaintenanceHost, restart_site
from outlast.log import replica_audit

Progress = Callable[[str], Awaitable[None]]
INTERVAL = 10.0


class ReplicaAudit:
    """The audit's loop and its record (what it found, what it did)."""

    def __init__(self, host: MaintenanceHost, busy: set[str], interval: float = INTERVAL):
        self.host = host
        self.busy = busy  # sites another action holds: no audit while any is busy
        self.interval = interval
        self.record: dict[str, Any] = {"runs": 0, "holes": [], "repairs": []}

    async def run(self, stopping: asyncio.Event, progress: Progress) -> None:
        while not stopping.is_set():
            try:
                await self.once(progress)
            except Exception as exc:  # noqa: BLE001 - an audit round may fail; the next retries
                self.record["last_error"] = f"{type(exc).__name__}: {exc}"
                await progress(f"replica audit: round failed: {exc}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.interval)

    async def once(self, progress: Progress) -> list[replica_audit.Hole]:
        """One round: audit every node; replace at most one replica. The holes found."""
        plan = self.host.plan
        if self.busy or any(s != "up" for s in self.host.status.values()):
            return []  # a site is restarting, down or isolated: states are in flux
        loop = asyncio.get_running_loop()
        per_node: dict[str, Any] = {}
        leaders: dict[str, str] = {}
        for site in plan.sites:
            per_node[site.node_name] = await loop.run_in_executor(
                None, replica_audit.node_states, site.monitor_url
            )
            leaders.update(
                await loop.run_in_executor(None, replica_audit.node_leaders, site.monitor_url)
            )
        holes = replica_audit.audit(
            per_node, leaders, replica_audit.never_deleting(plan.partitions)
        )
        self.record["runs"] += 1
        self.record["last_run"] = time.time()
        self.record["holes"] = [dataclasses.asdict(h) for h in holes]
        for hole in holes:
            await progress(f"replica audit: REPLICA WITH HOLES: {hole.line()}")
        first = next((h for h in holes if h.removable), None)
        if first is not None:  # every removable replica of that node, in one restart
            await self.repair([h for h in holes if h.removable and h.node == first.node], progress)
        return holes

    async def repair(self, holes: list[replica_audit.Hole], progress: Progress) -> None:
        """Replace the holed replicas of one node (one per stream): JetStream's peer
        removal when it can place them elsewhere, else a planned restart of the site
        with their stores deleted."""
        plan = self.host.plan
        node = holes[0].node
        site = next(s for s in plan.sites if s.node_name == node)
        entry: dict[str, Any] = {
            "at": time.time(),
            "node": node,
            "site": site.name,
            "holes": [dataclasses.asdict(h) for h in holes],
        }
        self.record["repairs"].append(entry)
        left = []
        for hole in holes:
            answer = await replica_audit.replace_at(
                plan.app_url(site), hole, tls=plan.tls_context()
            )
            entry.setdefault("peer_remove", {})[hole.stream] = answer
            if answer.get("success"):
                await progress(f"replica audit: {hole.stream}: JetStream replaces {node}")
            else:
                left.append(hole.stream)
        if not left:
            entry["how"] = "peer removed; JetStream placed new replicas"
            return
        await progress(
            f"replica audit: JetStream cannot move {', '.join(left)} off {node} "
            f"(no other node fits the placement); restarting site {site.name} with "
            "those replicas reset"
        )
        store = plan.node_spec(site).store_dir
        deleted: list[str] = []

        def reset() -> None:
            for stream in left:
                deleted.extend(replica_audit.delete_local_replica(store, stream, node))

        self.busy.add(site.name)
        try:
            await restart_site(self.host, site.name, progress, while_stopped=reset)
        finally:
            self.busy.discard(site.name)
        entry["how"] = "site restarted with the replicas' stores deleted; caught up from leader"
        entry["deleted"] = deleted
        entry["done_at"] = time.time()
        await progress(f"replica audit: {', '.join(left)} on {node}: reset and caught up")
