"""Following a stream (LogClient.follow) on a real nats-server: every followed stream
has a connection of its own, closed with it.

Why it matters: a flow-controlled consumer may have 32 MiB on its way, and a
replay on the client's one connection queued ahead of the answers to its
JetStream requests and of other streams' heartbeats (bench/RESULTS.md, "A
replay that starved its own connection"). The server's own list of
connections (its monitoring endpoint) is what this test reads.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from outlast.log.client import LogClient, LogMessage
from outlast.log.engine import NatsNode, NodeSpec
from tests.servers import free_port


@pytest.fixture
def monitored(tmp_path: Path) -> Iterator[NatsNode]:
    spec = NodeSpec(
        name="follow-test",
        store_dir=tmp_path / "js",
        client_port=free_port(),
        monitor_port=free_port(),
        sync_always=False,
    )
    node = NatsNode(spec, tmp_path / "nats.conf")
    node.start()
    try:
        yield node
    finally:
        node.stop()


def connection_names(node: NatsNode) -> list[str] | None:
    """The names of the server's client connections (None while it does not answer)."""
    url = f"http://127.0.0.1:{node.spec.monitor_port}/connz"
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            connz = json.load(reply)
    except OSError:
        return None
    return sorted(str(c.get("name", "")) for c in connz.get("connections") or [])


async def until_connections(node: NatsNode, expected: list[str]) -> None:
    """The server lists a closed connection until it has noticed; wait for it, bounded."""
    async with asyncio.timeout(20):
        while (found := await asyncio.to_thread(connection_names, node)) != expected:
            await asyncio.sleep(0.05)
    assert found == expected


async def test_each_followed_stream_has_its_own_connection_closed_with_it(
    monitored: NatsNode,
) -> None:
    await until_connections(monitored, [])
    client = LogClient([monitored.url], name="viewer")
    await client.connect()
    try:
        js = client.js
        for stream in ("FA", "FB"):
            await js.add_stream(name=stream, subjects=[f"{stream.lower()}.>"])
        for i in range(1, 6):
            await js.publish("fa.x", json.dumps({"n": i}).encode())
        seen: list[LogMessage] = []

        async def on_message(message: LogMessage) -> None:
            seen.append(message)

        first = await client.follow("FA", "fa.>", 3, on_message)
        await client.follow("FB", "fb.>", 1, on_message)
        async with asyncio.timeout(20):
            while len(seen) < 3:
                await asyncio.sleep(0.02)
        assert [(m.stream, m.seq, m.data["n"]) for m in seen] == [
            ("FA", 3, 3),
            ("FA", 4, 4),
            ("FA", 5, 5),
        ]
        await until_connections(monitored, ["viewer", "viewer follow FA", "viewer follow FB"])

        await first.unsubscribe()
        await until_connections(monitored, ["viewer", "viewer follow FB"])
        await js.publish("fb.x", json.dumps({"n": 1}).encode())
        async with asyncio.timeout(20):
            while len(seen) < 4:
                await asyncio.sleep(0.02)
        assert (seen[-1].stream, seen[-1].seq) == ("FB", 1)
    finally:
        await client.close()
    await until_connections(monitored, [])
