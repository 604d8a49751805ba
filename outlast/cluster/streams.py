"""The admin step of `cluster up`: make every stream and bucket before any worker starts.

Workers connect with a credential that may not create or change streams
(see ``worker_denied`` in plan.py and docs/security.md), so the supervisor
creates them with the admin one, once every node is listening.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from outlast.cluster.plan import ClusterPlan
from outlast.config import LogConfig
from outlast.log.client import LogClient
from outlast.log.lease import KeyBucket
from outlast.log.objects import ObjectBucket

REPLICAS = 3

Progress = Callable[[str], Awaitable[None]]


async def create_streams(plan: ClusterPlan, progress: Progress, timeout: float = 120.0) -> None:
    """Create (or bring to the configured settings) the log streams and object buckets."""
    names = plan.names()
    client = LogClient(
        [plan.app_url(s) for s in plan.sites], name="outlast-admin", tls=plan.tls_context()
    )
    await client.connect()
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                await client.ensure_streams(
                    [*names.streams(), *names.control_streams()],
                    replicas=REPLICAS,
                    duplicate_window=float(LogConfig().duplicate_window_seconds),
                )
                break
            except Exception:  # JetStream may still be electing its meta leader
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
        await ObjectBucket(client, names.media_bucket).ensure(REPLICAS, timeout=timeout)
        await ObjectBucket(client, names.snapshot_bucket).ensure(
            REPLICAS, timeout=timeout, description="Outlast view snapshots"
        )
        # The backup schedule's lease and period claims (workers may not create it).
        await KeyBucket(client, names.backup_bucket).ensure(REPLICAS, timeout=timeout)
    finally:
        await client.close()
    await progress(f"streams and buckets ready ({len(names.streams()) + 2} log streams)")
