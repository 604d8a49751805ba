"""Restore a burned site from the survivors, using JetStream's own peer management.

Steps (each waits for its condition, bounded in time, and reports progress):
1. Any process of the site still running is killed and its disk wiped: a burned
   site's identity and data are never reused.
2. A fresh nats-server node with a new name (``<site>-<generation+1>``) and the
   site's tag joins the cluster through the site's links.
3. The dead node is removed from the JetStream meta group (system account), so
   the group counts only live peers and a later loss of another site still
   leaves a majority.
4. Every stream drops the dead peer; placement (one replica per site tag) puts
   the new replica on the new node, which catches up from the stream leader.
5. Wait until every stream has all replicas current, then start the site's
   workers with an empty view, which they rebuild from the log before
   reporting healthy.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nats

from outlast.cluster.plan import PortPicker
from outlast.log.names import Names

if TYPE_CHECKING:
    from outlast.cluster.supervisor import Progress, Supervisor


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


async def rebuild_site(supervisor: Supervisor, name: str, progress: Progress) -> dict[str, Any]:
    plan = supervisor.plan
    site = plan.site(name)
    sp = supervisor.sites[name]
    started = time.monotonic()
    old_node = site.node_name
    survivors = [s for s in plan.sites if s.name != name]

    # 1. Nothing of the burned site is reused.
    for proc in ([sp.node.process] if sp.node and sp.node.process else []) + sp.workers:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    shutil.rmtree(site.data_dir, ignore_errors=True)
    Path(site.data_dir).mkdir(parents=True)
    await progress(f"site {name}: old node {old_node} gone, disk wiped")

    # 2. A new node with a new identity.
    site.generation += 1
    free_port = PortPicker(plan.ports())
    site.client_port, site.cluster_port, site.monitor_port = free_port(), free_port(), free_port()
    site.http_ports = [free_port() for _ in site.http_ports]
    supervisor.links.retarget(name, site.cluster_port)
    sp.start_node()
    assert sp.node is not None
    await sp.node.wait_ready()
    supervisor.write_description()
    await progress(f"site {name}: new node {site.node_name} joined")

    # 3. Remove the dead peer from the meta group (system account).
    sys_nc = await nats.connect(plan.sys_url(survivors[0]), connect_timeout=5)
    try:
        deadline = time.monotonic() + 60
        while True:
            reply = await sys_nc.request(
                "$JS.API.SERVER.REMOVE", json.dumps({"peer": old_node}).encode(), timeout=5
            )
            answer = json.loads(reply.data)
            if answer.get("success") or "not" in json.dumps(answer.get("error", {})).lower():
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"could not remove peer {old_node}: {answer}")
            await asyncio.sleep(1)
    finally:
        await sys_nc.close()
    await progress(f"site {name}: dead peer {old_node} removed from the JetStream meta group")

    # 4. Every stream drops the dead peer and re-replicates onto the new node.
    app_nc = await nats.connect(plan.app_url(survivors[0]), connect_timeout=5)
    layout = Names(partitions=plan.partitions)
    streams = [s.name for s in [*layout.streams(), *layout.control_streams()]]
    try:
        js = app_nc.jetstream(timeout=5)
        deadline = time.monotonic() + 300
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
                if current and site.node_name in peers and len(peers) >= 3:
                    pending.discard(stream)
            if pending:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"replicas not current after 300s: {sorted(pending)}")
                await asyncio.sleep(0.5)
            await progress(
                f"site {name}: {len(streams) - len(pending)}/{len(streams)}"
                " streams fully replicated"
            )
    finally:
        await app_nc.close()

    # 5. Workers with an empty view; healthy means the view has caught up.
    sp.start_workers()
    supervisor.write_description()
    await supervisor.wait_healthy([name], progress, 300)
    await supervisor.balance(progress)
    supervisor.status[name] = "up"
    supervisor.write_description()
    elapsed = round(time.monotonic() - started, 1)
    await progress(f"site {name}: rebuilt and healthy in {elapsed}s")
    return {"site": name, "node": site.node_name, "replaced": old_node, "seconds": elapsed}
