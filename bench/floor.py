"""The floor: raw JetStream publish-with-ack from the same client library Outlast uses."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import nats
from nats.js import api

from bench.stats import CpuMeter, summarize_ms
from outlast.log.engine import NatsNode, NodeSpec, free_port


async def _start_nodes(replicas: int, root: Path) -> list[NatsNode]:
    nodes = []
    cluster_ports = [free_port() for _ in range(replicas)]
    for i in range(replicas):
        routes = [f"nats-route://127.0.0.1:{p}" for j, p in enumerate(cluster_ports) if j != i]
        spec = NodeSpec(
            name=f"floor-{i}",
            store_dir=root / f"n{i}" / "js",
            client_port=free_port(),
            cluster_port=cluster_ports[i] if replicas > 1 else 0,
            routes=routes if replicas > 1 else [],
            site_tag=f"s{i}" if replicas > 1 else "",
            sync_always=True,
        )
        node = NatsNode(spec, root / f"n{i}" / "nats.conf")
        node.start()
        nodes.append(node)
    for node in nodes:
        await node.wait_ready()
    return nodes


async def measure(
    replicas: int,
    sequential: int = 2000,
    burst: int = 20000,
    in_flight: int = 128,
    concurrent: int = 8,
) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix=f"outlast-floor-r{replicas}-"))
    nodes = await _start_nodes(replicas, root)
    try:
        nc = await nats.connect([n.url for n in nodes])
        js = nc.jetstream(timeout=10)
        deadline = time.monotonic() + 60
        while True:
            try:
                await js.add_stream(
                    api.StreamConfig(
                        name="FLOOR",
                        subjects=["floor.>"],
                        num_replicas=replicas,
                        storage=api.StorageType.FILE,
                    )
                )
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
        payload = b"x" * 300
        for _ in range(200):  # warm up
            await js.publish("floor.w", payload)
        latencies = []
        for i in range(sequential):
            t = time.perf_counter()
            await js.publish(f"floor.s.{i % 16}", payload)
            latencies.append(time.perf_counter() - t)
        # The same shape as the Matrix send phase: `concurrent` publishers, each
        # waiting for its ack before the next publish (like-for-like latency).
        concurrent_latencies: list[float] = []

        async def publisher(p: int) -> None:
            for i in range(sequential // concurrent):
                t = time.perf_counter()
                await js.publish(f"floor.c.{p}.{i % 16}", payload)
                concurrent_latencies.append(time.perf_counter() - t)

        await asyncio.gather(*(publisher(p) for p in range(concurrent)))
        sem = asyncio.Semaphore(in_flight)

        async def one(i: int) -> None:
            async with sem:
                await js.publish(f"floor.b.{i % 64}", payload)

        with CpuMeter() as meter:
            await asyncio.gather(*(one(i) for i in range(burst)))
        await nc.close()
        return {
            "replicas": replicas,
            "sync_interval": "always",
            "sequential": summarize_ms(latencies),
            "concurrent": {"publishers": concurrent, **summarize_ms(concurrent_latencies)},
            "throughput_msgs_per_s": round(burst / meter.wall, 1),
            "in_flight": in_flight,
            "client_cpu_percent": meter.client_cpu_percent,
        }
    finally:
        for node in nodes:
            node.stop()
        shutil.rmtree(root, ignore_errors=True)
