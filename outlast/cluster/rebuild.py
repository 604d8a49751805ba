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
5. Wait until every stream has all replicas current, then seed each worker's
   view from the newest usable view snapshot a survivor stored in the log's
   object store (outlast/view/snapshot.py), and start the site's workers: they
   replay only the log after the snapshot's positions (the whole log when there
   is no usable snapshot) before reporting healthy.
   With ``--view postgresql`` the site gets a new PostgreSQL server and its
   database is seeded from a survivor's live view by one consistent dump
   (outlast/cluster/pg_seed.py); its workers then replay only the tail.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from outlast.cluster.disks import wipe_dir
from outlast.cluster.pg_seed import copy_view
from outlast.cluster.plan import VIEW_DATABASE, ClusterPlan, PortPicker, SitePlan
from outlast.config import load
from outlast.log.client import LogClient
from outlast.log.cluster import Progress, remove_server_peer, replicate_onto
from outlast.log.engine import NatsNode
from outlast.log.names import Names
from outlast.view.snapshot import seed_view


class SiteHandle(Protocol):
    """What a rebuild does to one site's processes."""

    node: NatsNode | None
    workers: list[subprocess.Popen[bytes]]

    def start_node(self) -> None: ...

    def start_workers(self) -> None: ...

    def start_postgres(self) -> None: ...

    def stop_postgres(self) -> None: ...

    def postgres_pid(self) -> int | None: ...


class LinkTarget(Protocol):
    def retarget(self, name: str, cluster_port: int) -> None: ...


class FrontDoorTarget(Protocol):
    def retarget(self, site: str, host: str, ports: list[int]) -> None: ...


class RebuildHost(Protocol):
    """What a rebuild needs of the cluster's supervisor (outlast/cluster/supervisor.py)."""

    plan: ClusterPlan
    status: dict[str, str]

    @property
    def links(self) -> LinkTarget: ...

    @property
    def front_door(self) -> FrontDoorTarget: ...

    @property
    def sites(self) -> Mapping[str, SiteHandle]: ...

    def write_description(self) -> None: ...

    async def wait_healthy(self, names: list[str], progress: Progress, timeout: float) -> None: ...

    async def balance(self, progress: Progress) -> None: ...


async def rebuild_site(supervisor: RebuildHost, name: str, progress: Progress) -> dict[str, Any]:
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
    postmaster = sp.postgres_pid()
    if postmaster is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(postmaster, signal.SIGKILL)
    sp.stop_postgres()
    wipe_dir(Path(site.data_dir))
    await progress(f"site {name}: old node {old_node} gone, disk wiped")

    # 2. A new node with a new identity.
    site.generation += 1
    free_port = PortPicker(plan.ports())
    site.client_port, site.cluster_port, site.monitor_port = free_port(), free_port(), free_port()
    site.http_ports = [free_port() for _ in site.http_ports]
    if site.postgres_port:
        site.postgres_port = free_port()
    supervisor.links.retarget(name, site.cluster_port)
    # The front door must follow, or it would keep checking the dead workers' ports and
    # never send the rebuilt site a request again.
    supervisor.front_door.retarget(name, site.host, site.http_ports)
    sp.start_node()
    assert sp.node is not None
    await sp.node.wait_ready()
    supervisor.write_description()
    await progress(f"site {name}: new node {site.node_name} joined")

    # 3. Remove the dead peer from the meta group (system account).
    await remove_server_peer(plan.sys_url(survivors[0]), old_node, tls=plan.tls_context())
    await progress(f"site {name}: dead peer {old_node} removed from the JetStream meta group")

    # 4. Every stream drops the dead peer and re-replicates onto the new node.
    layout = Names(partitions=plan.partitions)
    streams = [s.name for s in [*layout.streams(), *layout.control_streams()]]

    async def replicated(done: str) -> None:
        await progress(f"site {name}: {done}")

    await replicate_onto(
        plan.app_url(survivors[0]),
        streams,
        old_node,
        site.node_name,
        replicated,
        tls=plan.tls_context(),
    )

    # 5. Workers with a view seeded from a snapshot (or empty); healthy means the view
    # has caught up.
    if site.postgres_port:
        seeded = await seed_postgres_view(sp, site, survivors, progress)
    else:
        seeded = await seed_worker_views(plan, site, survivors, layout, progress)
    sp.start_workers()
    supervisor.write_description()
    await supervisor.wait_healthy([name], progress, 300)
    await supervisor.balance(progress)
    supervisor.status[name] = "up"
    supervisor.write_description()
    elapsed = round(time.monotonic() - started, 1)
    await progress(f"site {name}: rebuilt and healthy in {elapsed}s")
    return {
        "site": name,
        "node": site.node_name,
        "replaced": old_node,
        "seconds": elapsed,
        "seeded_from_snapshot": seeded,
    }


async def seed_postgres_view(
    sp: SiteHandle, site: SitePlan, survivors: list[SitePlan], progress: Progress
) -> bool:
    """A new PostgreSQL server for the site, its view copied from a survivor's by one
    consistent dump. False (the view is rebuilt from the whole log) when no copy worked."""
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sp.start_postgres)
    await progress(f"site {site.name}: new PostgreSQL server on port {site.postgres_port}")
    for survivor in survivors:
        try:
            seeded = await loop.run_in_executor(
                None, copy_view, survivor.postgres_dsn, site.postgres_dsn
            )
        except Exception as exc:  # noqa: BLE001 - try the next survivor, or the log
            await progress(f"site {site.name}: copying site {survivor.name}'s view failed: {exc}")
            # A partial copy must not be taken for a view: start again from empty.
            await loop.run_in_executor(None, _empty_view, sp)
            continue
        await progress(
            f"site {site.name}: view seeded from site {survivor.name}'s database at positions "
            f"{sum(seeded.positions.values())} (sum over streams); replaying only the tail"
        )
        return True
    await progress(f"site {site.name}: no survivor's view could be copied; replaying the log")
    return False


def _empty_view(sp: SiteHandle) -> None:
    pg = getattr(sp, "postgres", None)
    if pg is not None:
        pg.psql(f'DROP DATABASE IF EXISTS "{VIEW_DATABASE}" WITH (FORCE)')
        pg.create_database(VIEW_DATABASE)


async def seed_worker_views(
    plan: ClusterPlan,
    site: SitePlan,
    survivors: list[SitePlan],
    layout: Names,
    progress: Progress,
) -> bool:
    """Fetch the newest usable view snapshot once (through the survivors' nodes) and
    install a copy as each worker's view. False, having said why, when there is none."""
    seed = Path(site.data_dir) / "seed-view.sqlite"
    said: list[str] = []
    log_client = LogClient(
        [plan.app_url(s) for s in survivors],
        name=f"outlast-rebuild-{site.name}",
        tls=plan.tls_context(),
    )
    try:
        await log_client.connect()
        manifest = await seed_view(log_client, layout, seed, said.append)
    except Exception as exc:  # noqa: BLE001 - a missing snapshot never stops a rebuild
        said.append(f"view snapshots unreachable ({exc!r}); replaying the whole log")
        manifest = None
    finally:
        await log_client.close()
    for line in said:
        await progress(f"site {site.name}: {line}")
    if manifest is None:
        return False
    for index in range(len(site.http_ports)):
        config_path = Path(site.data_dir) / f"seed-worker-{index}.toml"
        config_path.write_text(plan.worker_config(site, index))
        view_path = load(config_path).view_path
        config_path.unlink()
        view_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(seed, view_path)
    seed.unlink()
    await progress(
        f"site {site.name}: {len(site.http_ports)} worker views seeded from the snapshot "
        f"site {manifest.site} made at {manifest.created_at}; they replay only the log after it"
    )
    return True
