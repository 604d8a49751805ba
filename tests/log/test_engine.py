"""Tests for nats-server configuration and the embedded node (outlast.log.engine).

The last test starts a real nats-server on a free port under tmp_path.
"""

from __future__ import annotations

import socket
from pathlib import Path

import nats

from outlast.log.engine import NodeSpec, embedded_node, free_port, render_config


def clustered_spec(**overrides: object) -> NodeSpec:
    spec = NodeSpec(
        name="site-a-1",
        store_dir=DATA / "js",
        client_port=4222,
        cluster_port=6222,
        routes=["nats-route://10.0.0.2:6222", "nats-route://10.0.0.3:6222"],
        cluster_name="outlast-prod",
        site_tag="a",
    )
    for key, value in overrides.items():
        setattr(spec, key, value)
    return spec


DATA = Path("/srv/outlast")  # render_config only formats paths; nothing is created


def lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()]


# --- render_config ----------------------------------------------------------


def test_embedded_config_is_one_node_without_topology() -> None:
    node = embedded_node(DATA, port=4333)
    text = render_config(node.spec)
    assert 'server_name: "outlast-embedded"' in lines(text)
    assert 'listen: "127.0.0.1:4333"' in lines(text)
    assert 'store_dir: "/srv/outlast/nats/jetstream"' in lines(text)
    assert "sync_interval: always" in lines(text)
    for absent in ("unique_tag", "server_tags", "cluster", "routes", "http:"):
        assert absent not in text
    assert node.config_path == DATA / "nats" / "nats.conf"
    assert node.url == "nats://127.0.0.1:4333"


def test_sync_interval_is_omitted_when_not_always() -> None:
    assert "sync_interval" not in render_config(embedded_node(DATA, sync_always=False).spec)


def test_clustered_config_tags_the_site_and_spreads_replicas() -> None:
    text = render_config(clustered_spec())
    got = lines(text)
    assert 'server_tags: ["site:a"]' in got
    assert 'unique_tag: "site:"' in got
    cluster = got[got.index("cluster {") :]
    assert cluster[:6] == [
        "cluster {",
        'name: "outlast-prod"',
        'listen: "127.0.0.1:6222"',
        'routes: ["nats-route://10.0.0.2:6222", "nats-route://10.0.0.3:6222"]',
        "no_advertise: true",
        "}",
    ]
    # unique_tag belongs to the jetstream block, before it closes.
    js = got[got.index("jetstream {") : got.index("}") + 1]
    assert 'unique_tag: "site:"' in js


def test_monitor_port_adds_http_listener() -> None:
    assert 'http: "127.0.0.1:8222"' in lines(render_config(clustered_spec(monitor_port=8222)))


def test_site_tag_without_routes_has_no_cluster_block() -> None:
    text = render_config(clustered_spec(routes=[]))
    assert 'server_tags: ["site:a"]' in lines(text)
    assert "cluster {" not in text and "unique_tag" not in text


# --- a real embedded node ---------------------------------------------------


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def test_embedded_node_starts_serves_jetstream_and_stops(tmp_path: Path) -> None:
    port = free_port()
    node = embedded_node(tmp_path / "data", port=port)
    node.start()
    try:
        await node.wait_ready(timeout=20)
        assert node.process is not None and node.process.poll() is None
        assert port_open(port)
        nc = await nats.connect(node.url, connect_timeout=5)
        try:
            info = await nc.jetstream().account_info()
            assert info is not None
        finally:
            await nc.close()
        assert (tmp_path / "data" / "nats" / "nats.conf").exists()
        assert (tmp_path / "data" / "nats" / "jetstream").is_dir()
    finally:
        node.stop()
    assert node.process.poll() is not None
    assert not port_open(port)
    node.stop()  # stopping twice is harmless
