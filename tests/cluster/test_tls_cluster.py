"""`outlast cluster up --tls`: a three-site cluster whose routes are mutual TLS, whose
workers and tools reach their nodes over TLS verified against the cluster's own CA,
and whose front door speaks HTTPS."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tomllib
from pathlib import Path

import aiohttp
import pytest
from nio import JoinResponse, RoomCreateResponse, RoomPreset, RoomSendResponse

from outlast.log.client import LogClient
from outlast.log.tls import LogTlsRefused, client_context
from tests.cluster.harness import (
    close_all,
    nio_register,
    ok,
    start_cluster,
    timeline,
    wait_for,
)

pytestmark = pytest.mark.slow


async def test_a_tls_cluster_carries_a_message_from_one_site_to_another(tmp_path: Path) -> None:
    cluster = start_cluster(tmp_path / "cluster", tls=True)
    try:
        description = cluster.description
        ca = str(description["tls_ca"])
        assert ca and Path(ca).is_file()
        keys = sorted(p.name for p in (tmp_path / "cluster" / "tls").glob("*-key.pem"))
        assert keys == [
            "a-1-key.pem",
            "b-1-key.pem",
            "c-1-key.pem",
            "ca-key.pem",
            "frontdoor-key.pem",
        ]
        worker_toml = tmp_path / "cluster" / "a" / "worker-1-0.toml"
        assert tomllib.loads(worker_toml.read_text())["log"]["tls_ca"] == ca

        alice = await nio_register(cluster.site_url("a"), "alice")
        bob = await nio_register(cluster.site_url("c"), "bob")
        try:
            room = ok(
                await alice.room_create(preset=RoomPreset.public_chat), RoomCreateResponse
            ).room_id
            ok(await bob.join(room), JoinResponse)
            sent = ok(
                await alice.room_send(room, "m.room.message", {"msgtype": "m.text", "body": "x"}),
                RoomSendResponse,
            ).event_id

            async def at_c() -> bool:
                return sent in [e["event_id"] for e in await timeline(bob, room)]

            await wait_for(at_c, timeout=30)
        finally:
            await close_all(alice, bob)

        # The front door speaks HTTPS with a certificate from the same CA.
        front = str(description["front_door"])
        assert front.startswith("https://")
        context = client_context(ca)
        assert context is not None
        trusted = aiohttp.TCPConnector(ssl=context)
        async with (
            aiohttp.ClientSession(connector=trusted) as session,
            session.get(front + "/_outlast/health") as answer,
        ):
            assert answer.status == 200
        async with aiohttp.ClientSession() as session:  # the system's CAs: not trusted
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await session.get(front + "/_outlast/health")
            with pytest.raises(aiohttp.ClientError):  # plain HTTP on the TLS port
                await session.get(front.replace("https://", "http://") + "/_outlast/health")

        # A client without the cluster's CA is refused at once, not left hanging.
        site = description["sites"][0]
        stranger = LogClient([site["nats_url"]], name="stranger")
        with pytest.raises(LogTlsRefused):
            await asyncio.wait_for(stranger.connect(), 20)

        # The operator's tools find the CA in cluster.json: a backup over TLS.
        backup = subprocess.run(
            [
                sys.executable,
                "-m",
                "outlast",
                "backup",
                "create",
                "--to",
                str(tmp_path / "b"),
                "--cluster",
                str(tmp_path / "cluster" / "cluster.json"),
            ],
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert backup.returncode == 0, backup.stderr
    finally:
        cluster.down()
