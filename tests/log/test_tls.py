"""TLS on the log: mutual TLS between nodes (routes) and verified TLS from workers.

Real nats-server nodes with certificates made here, at test time, by a private
CA (outlast.cluster.certs); nothing secret is in the repository.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from outlast.cluster.certs import CertFiles, issue, make_ca
from outlast.log.client import LogClient
from outlast.log.engine import NatsNode, NodeSpec, render_config
from outlast.log.facts.control import HealthProbe
from outlast.log.names import StreamSpec
from outlast.log.tls import LogTlsRefused, client_context
from tests.servers import free_port

pytestmark = pytest.mark.slow

SITES = ("a", "b", "c")


def _spec(
    name: str, tmp: Path, files: CertFiles, ports: dict[str, tuple[int, int, int]]
) -> NodeSpec:
    client, cluster, monitor = ports[name]
    return NodeSpec(
        name=f"{name}-1",
        store_dir=tmp / name / "js",
        client_port=client,
        cluster_port=cluster,
        monitor_port=monitor,
        routes=[f"nats-route://127.0.0.1:{ports[o][1]}" for o in SITES if o != name],
        site_tag=name,
        tls_ca=files.ca,
        tls_cert=files.cert,
        tls_key=files.key,
    )


@pytest.fixture
def tls_cluster(tmp_path: Path) -> Iterator[tuple[list[NatsNode], CertFiles]]:
    ca = make_ca(tmp_path / "ca")
    ports = {name: (free_port(), free_port(), free_port()) for name in SITES}
    nodes = [
        NatsNode(
            _spec(n, tmp_path, issue(ca, tmp_path / "certs", n), ports), tmp_path / n / "nats.conf"
        )
        for n in SITES
    ]
    try:
        for node in nodes:
            node.start()
        yield nodes, ca
    finally:
        for node in nodes:
            node.stop()


def _monitor(node: NatsNode, page: str) -> dict[str, Any]:
    url = f"http://127.0.0.1:{node.spec.monitor_port}/{page}"
    with urllib.request.urlopen(url, timeout=5) as answer:
        found: dict[str, Any] = json.loads(answer.read())
    return found


def _routes(node: NatsNode) -> list[dict[str, Any]]:
    routes: list[dict[str, Any]] = _monitor(node, "routez").get("routes") or []
    return routes


def test_config_asks_for_tls_on_clients_and_mutual_tls_on_routes(tmp_path: Path) -> None:
    files = CertFiles(ca="/c/ca.pem", cert="/c/n.pem", key="/c/n-key.pem")
    text = render_config(_spec("a", tmp_path, files, {n: (1, 2, 3) for n in SITES}))
    client_part, cluster_part = text.split("cluster {")
    assert 'ca_file: "/c/ca.pem"' in client_part and "verify: false" in client_part
    assert 'cert_file: "/c/n.pem"' in cluster_part and "verify: true" in cluster_part


async def test_message_sent_at_one_site_is_read_at_another_over_tls_routes(
    tls_cluster: tuple[list[NatsNode], CertFiles],
) -> None:
    nodes, ca = tls_cluster
    for node in nodes:
        await node.wait_ready()
    tls = client_context(ca.ca)
    at_a = LogClient([nodes[0].url], name="site-a", tls=tls)
    at_c = LogClient([nodes[2].url], name="site-c", tls=tls)
    await asyncio.wait_for(at_a.connect(), 20)
    await asyncio.wait_for(at_c.connect(), 20)
    try:
        spec = StreamSpec("TLS_TEST", ("tls.>",))
        deadline = time.monotonic() + 60
        while True:  # the meta leader is elected once every route is up
            try:
                await at_a.ensure_streams([spec], replicas=3, duplicate_window=60)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
        ack = await at_a.append("tls.one", HealthProbe(report={"from": "a"}))
        read = None
        for _ in range(100):
            read = await at_c.next_message("TLS_TEST", ack.seq, "tls.one")
            if read is not None:
                break
            await asyncio.sleep(0.1)
        assert read is not None and b'"from":"a"' in read.data.replace(b" ", b"")
        # Every node routes to both others, and its route port demands verified TLS.
        for node in nodes:
            routes = _routes(node)
            assert len({r.get("remote_name") for r in routes}) == 2, routes
            cluster = _monitor(node, "varz").get("cluster") or {}
            assert cluster.get("tls_required") and cluster.get("tls_verify"), cluster
    finally:
        await at_a.close()
        await at_c.close()


async def test_worker_with_the_wrong_ca_is_refused_at_once(
    tls_cluster: tuple[list[NatsNode], CertFiles], tmp_path: Path
) -> None:
    nodes, _ = tls_cluster
    await nodes[0].wait_ready()
    other = make_ca(tmp_path / "other-ca", name="Someone else's CA")
    log = LogClient([nodes[0].url], name="wrong-ca", tls=client_context(other.ca))
    started = time.monotonic()
    with pytest.raises(LogTlsRefused, match="tls_ca"):
        await asyncio.wait_for(log.connect(), 20)
    assert time.monotonic() - started < 10


async def test_plaintext_is_refused_on_the_client_and_route_ports(
    tls_cluster: tuple[list[NatsNode], CertFiles],
) -> None:
    nodes, _ = tls_cluster
    node = nodes[0]
    await node.wait_ready()
    # A client without the cluster CA cannot complete the handshake nats-py attempts.
    plain = LogClient([node.url], name="no-ca")
    with pytest.raises(LogTlsRefused):
        await asyncio.wait_for(plain.connect(), 20)
    # Plaintext on the client port, or a route opened in plaintext, is dropped.
    for port in (node.spec.cluster_port, node.spec.client_port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            info = await asyncio.wait_for(reader.readline(), 5)
            # The client port announces TLS; the route port expects the handshake
            # first and says nothing in plaintext.
            assert b'"tls_required":true' in info.replace(b" ", b"") or (
                port == node.spec.cluster_port and info == b""
            )
            writer.write(b'CONNECT {"verbose":false,"name":"intruder"}\r\nPING\r\n')
            await writer.drain()
            rest = await asyncio.wait_for(reader.read(), 10)  # returns once the node closes
            assert b"PONG" not in rest
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
