"""``outlast backup restore --cluster-dir NEWDIR --sites N``: a backup into a new local cluster.

The restore lays the cluster out exactly as ``outlast cluster up --dir
NEWDIR`` will (site directories, node names ``a-1``, ``b-1``, ...,
``site:`` tags), starts those nodes routed directly to each other, creates
every stream with three replicas (one per site) and republishes the backup
into it, then stops the nodes. ``cluster up`` later starts the same nodes on
the same disks (new ports and passwords do not matter: the data belongs to
the node names and the application account); it reads ``restored.json`` for
the partition count and server name.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from outlast.backup.manifest import Cut, Manifest
from outlast.backup.restore import RESTORED_CLUSTER, restore_into, say, summarize
from outlast.backup.target import BackupTarget
from outlast.cluster.plan import ClusterPlan
from outlast.log.client import LogClient, LogUnavailable
from outlast.log.engine import NatsNode
from outlast.log.names import DEFAULT_PREFIX

REPLICAS = 3


async def restore_cluster(
    target: BackupTarget, manifest: Manifest, cut: Cut, directory: Path, sites: int, origin: str
) -> int:
    deployment = manifest.deployment
    if sites < REPLICAS:
        say(f"a cluster needs at least {REPLICAS} sites")
        return 2
    if deployment.prefix != DEFAULT_PREFIX:
        say(
            f"the backup's streams use the prefix {deployment.prefix!r}; a local cluster "
            f"uses {DEFAULT_PREFIX!r}: restore it with --data-dir instead"
        )
        return 2
    started = time.monotonic()
    directory = directory.resolve()
    plan = ClusterPlan.new(directory, sites, deployment.partitions, 1)
    nodes = []
    for site in plan.sites:
        spec = plan.node_spec(site)
        # No relays yet: the nodes route straight to each other for the restore.
        spec.routes = [
            f"nats-route://127.0.0.1:{other.cluster_port}" for other in plan.sites if other != site
        ]
        nodes.append(NatsNode(spec, Path(site.data_dir) / f"nats-{site.generation}" / "nats.conf"))
    say(f"restoring into a {sites}-site cluster in {directory}")
    log = LogClient(
        [plan.app_url(s) for s in plan.sites],
        name="outlast-restore",
        publish_timeout=30.0,
        tls=plan.tls_context(),
    )
    try:
        for node in nodes:
            node.start()
        for node in nodes:
            await node.wait_ready()
        await log.connect()
        restored = await restore_into(log, target, manifest, cut, replicas=REPLICAS)
    except (ValueError, LogUnavailable, OSError, RuntimeError, TimeoutError) as exc:
        say(f"restore FAILED: {exc!r}")
        return 1
    finally:
        await log.close()
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(None, node.stop) for node in nodes))
    info = {
        "restored_from": origin,
        "server_name": deployment.server_name,
        "partitions": deployment.partitions,
        "sites": sites,
    }
    (directory / RESTORED_CLUSTER).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    summarize(restored, time.monotonic() - started, f"outlast cluster up --dir {directory}")
    print(directory / RESTORED_CLUSTER, flush=True)
    return 0
