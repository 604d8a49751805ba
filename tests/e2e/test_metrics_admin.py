"""Metrics, server administrators and the dashboard's API against a real `outlast serve`.

- GET /_outlast/metrics: Prometheus text whose counts move with real traffic
  (requests by route template, /sync waiters, log appends and their errors);
- `outlast admin grant|revoke USER` (a fact on the log) opens and closes
  GET /_outlast/admin/status for that user, with the server running or not;
- `[admin] users` in the configuration, and `[metrics] enabled = false`;
- the dashboard page is served under the strict Content-Security-Policy.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from nio import AsyncClient, RoomCreateResponse, RoomSendResponse, SyncResponse

from tests.e2e.helpers import api, close_all, eventually, expect, register, text
from tests.servers import OutlastProcess, start_outlast

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
CLI_TIMEOUT = 60


@pytest.fixture
def quick_server(tmp_path: Path) -> Iterator[OutlastProcess]:
    """A server whose writes give up after 1 s when the log does not answer."""
    proc = start_outlast(tmp_path / "site", log_extra="publish_timeout_seconds = 1.0")
    try:
        yield proc
    finally:
        proc.stop()


async def get_text(url: str) -> tuple[int, str, dict[str, str]]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session,
        session.get(url) as resp,
    ):
        return resp.status, await resp.text(), dict(resp.headers)


async def metrics(server: OutlastProcess) -> str:
    status, body, headers = await get_text(server.url + "/_outlast/metrics")
    assert status == 200, body
    assert headers["Content-Type"].startswith("text/plain"), headers
    return body


def sample(body: str, name: str, **labels: str) -> float:
    """The value of one sample (0 when the labelled series does not exist yet)."""
    for line in body.splitlines():
        if line.startswith("#"):
            continue
        match = re.match(r"^([a-zA-Z_:][\w:]*)(\{(.*)\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(3) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(4))
    return 0.0


def outlast_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "outlast", *args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
    )


def grant(
    server: OutlastProcess, user: str, action: str = "grant"
) -> subprocess.CompletedProcess[str]:
    return outlast_cli(
        "admin",
        action,
        user,
        "--config",
        str(server.config_path),
        "--data-dir",
        str(server.data_dir),
    )


def nats_child(server: OutlastProcess) -> int:
    """The pid of the server's embedded nats-server child."""
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    for pid in children.read_text().split():
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        if b"nats-server" in cmdline:
            return int(pid)
    raise AssertionError("no nats-server child found")


async def status_of(server: OutlastProcess, token: str | None) -> tuple[int, Any]:
    return await api("GET", server.url + "/_outlast/admin/status", token=token)


# --- metrics ---------------------------------------------------------------------------


async def test_metrics_count_requests_waiters_and_publishes(quick_server: OutlastProcess) -> None:
    server = quick_server
    first = await metrics(server)
    for name in (
        "outlast_http_requests_total",
        "outlast_http_request_duration_seconds_bucket",
        "outlast_sync_waiters",
        "outlast_projector_lag_messages",
        "outlast_jetstream_publishes_total",
        "outlast_jetstream_publish_errors_total",
    ):
        assert name in first, f"{name} missing from:\n{first}"
    assert 'outlast_projector_lag_messages{stream="OUTLAST_USERS"} 0.0' in first
    register_route = {"method": "POST", "route": "/_matrix/client/v3/register"}
    assert sample(first, "outlast_http_requests_total", **register_route, status="200") == 0

    alice = await register(server.url, "alice")
    bob = await register(server.url, "bob")
    try:
        room = expect(await alice.room_create(invite=[bob.user_id]), RoomCreateResponse).room_id
        await bob.join(room)
        after = await metrics(server)
        assert sample(after, "outlast_http_requests_total", **register_route, status="200") == 2
        assert sample(after, "outlast_http_request_duration_seconds_count", **register_route) == 2
        publishes = sample(after, "outlast_jetstream_publishes_total")
        assert publishes > sample(first, "outlast_jetstream_publishes_total")

        # Route templates, not raw paths: a room id never becomes a label value.
        for i in range(3):
            expect(
                await alice.room_send(room, "m.room.message", text(f"hi {i}"), tx_id=f"t{i}"),
                RoomSendResponse,
            )
        sent = await metrics(server)
        send_route = "/_matrix/client/v3/rooms/{room_id}/send/{event_type}/{txn_id}"
        assert (
            sample(
                sent, "outlast_http_requests_total", method="PUT", route=send_route, status="200"
            )
            == 3
        )
        assert room not in sent
        assert sample(sent, "outlast_jetstream_publishes_total") >= publishes + 3

        # A parked /sync long-poll shows as a waiter, and leaves when woken.
        expect(await bob.sync(timeout=0), SyncResponse)
        poll = asyncio.create_task(bob.sync(timeout=15_000, since=bob.next_batch))
        try:
            await eventually(lambda: _waiters_at_least(server, 1), timeout=10, interval=0.1)
            expect(
                await alice.room_send(room, "m.room.message", text("wake"), tx_id="w"),
                RoomSendResponse,
            )
            expect(await asyncio.wait_for(poll, 20), SyncResponse)
        finally:
            poll.cancel()
        await eventually(lambda: _waiters_at_most(server, 0), timeout=10, interval=0.1)

        # The read barrier asked the log for its position (authentication, reads).
        assert sample(sent, "outlast_read_barrier_questions_total") > 0
        # With the nats child frozen: a write the log cannot acknowledge is a publish
        # error (a registration: no token to check first), and a request with a token
        # is refused by the read barrier (the log cannot show the token is still valid).
        before = await metrics(server)
        nats_pid = nats_child(server)
        os.kill(nats_pid, signal.SIGSTOP)
        try:
            status, body = await api(
                "POST",
                f"{server.url}/_matrix/client/v3/register",
                {"username": "frozen", "password": "pw", "auth": {"type": "m.login.dummy"}},
            )
            assert status == 503, body
            status, body = await api(
                "PUT",
                f"{server.url}/_matrix/client/v3/rooms/{room}/send/m.room.message/frozen",
                text("while frozen"),
                token=alice.access_token,
            )
            assert status == 503, body
        finally:
            os.kill(nats_pid, signal.SIGCONT)
        after = await metrics(server)
        for name, labels in (
            ("outlast_jetstream_publish_errors_total", {"kind": "unavailable"}),
            ("outlast_read_barrier_refused_total", {}),
        ):
            assert sample(after, name, **labels) >= sample(before, name, **labels) + 1, name
        unmatched = await get_text(server.url + "/no/such/path")
        assert unmatched[0] == 404
        assert (
            sample(
                await metrics(server),
                "outlast_http_requests_total",
                method="GET",
                route="unmatched",
                status="404",
            )
            == 1
        )
    finally:
        await close_all(alice, bob)


async def _waiters_at_least(server: OutlastProcess, n: int) -> bool:
    return sample(await metrics(server), "outlast_sync_waiters") >= n


async def _waiters_at_most(server: OutlastProcess, n: int) -> bool:
    return sample(await metrics(server), "outlast_sync_waiters") <= n


# --- administrators ----------------------------------------------------------------------


async def test_admin_grant_and_revoke_through_the_cli(server: OutlastProcess) -> None:
    alice = await register(server.url, "alice")
    bob = await register(server.url, "bob")
    clients: list[AsyncClient] = [alice, bob]
    try:
        assert (await status_of(server, None))[0] == 401
        status, body = await status_of(server, alice.access_token)
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
        status, who = await api(
            "GET", server.url + "/_outlast/admin/whoami", token=alice.access_token
        )
        assert (status, who["user_id"], who["admin"]) == (200, "@alice:localhost", False)

        done = grant(server, "@alice:localhost")
        assert done.returncode == 0, done.stderr
        assert "@alice:localhost is now a server administrator" in done.stdout

        async def alice_allowed() -> Any:
            status, body = await status_of(server, alice.access_token)
            return body if status == 200 else None

        body = await eventually(alice_allowed, timeout=10, interval=0.1)
        assert (await status_of(server, bob.access_token))[0] == 403
        status, who = await api(
            "GET", server.url + "/_outlast/admin/whoami", token=alice.access_token
        )
        assert who["admin"] is True

        # The status a dashboard draws: this (only) site healthy from its own
        # self-report on the log, every stream led by its node, no drills yet.
        assert body["served_by"] == "local"
        [site] = body["sites"]
        assert (site["name"], site["state"], site["ready"]) == ("local", "healthy", True)
        assert site["report_age_seconds"] is not None and site["report_age_seconds"] < 5
        assert site["url"] == server.url
        names = {s["name"] for s in body["streams"]}
        assert {
            "OUTLAST_USERS",
            "OUTLAST_DIRECTORY",
            "OUTLAST_ROOMS_0",
            "OUTLAST_ROOMS_1",
            "OUTLAST_HEALTH",
            "OUTLAST_DRILLS",
        } <= names
        assert all(s["leader"] for s in body["streams"] if not s.get("missing"))
        assert body["drills"] == []
        assert body["metrics"][0]["url"] == "/_outlast/metrics"

        missing = grant(server, "@nobody:localhost")
        assert missing.returncode == 1 and "no account @nobody:localhost" in missing.stderr

        done = grant(server, "alice", "revoke")  # a localpart: the server name is added
        assert done.returncode == 0, done.stderr

        async def alice_refused() -> bool:
            return (await status_of(server, alice.access_token))[0] == 403

        await eventually(alice_refused, timeout=10, interval=0.1)

        # With the server stopped, the command starts the embedded log itself.
        await close_all(*clients)
        clients = []
        server.stop()
        done = grant(server, "bob")
        assert done.returncode == 0, done.stderr
        server.restart()
        bob = AsyncClient(server.url, "@bob:localhost")
        clients = [bob]
        await bob.login("pw-bob")
        status, _ = await status_of(server, bob.access_token)
        assert status == 200
    finally:
        await close_all(*clients)


async def test_configured_admins_page_csp_and_metrics_switch(tmp_path: Path) -> None:
    extra = '\n[admin]\nusers = ["@carol:localhost"]\n\n[metrics]\nenabled = false\n'
    server = start_outlast(tmp_path / "site", log_extra=extra)
    carol = dave = None
    try:
        carol = await register(server.url, "carol")
        dave = await register(server.url, "dave")
        assert (await status_of(server, carol.access_token))[0] == 200
        assert (await status_of(server, dave.access_token))[0] == 403

        status, body = await api("GET", server.url + "/_outlast/metrics")
        assert status == 404, body

        status, page, headers = await get_text(server.url + "/_outlast/dashboard")
        assert status == 200 and headers["Content-Type"].startswith("text/html")
        assert headers["Content-Security-Policy"].startswith(CSP)
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert '<script src="/_outlast/dashboard/dashboard.js"' in page
        assert "<script>" not in page and "style=" not in page  # nothing inline
        for asset, kind in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
            status, _, headers = await get_text(f"{server.url}/_outlast/dashboard/{asset}")
            assert status == 200 and headers["Content-Type"].startswith(kind)
        assert (await get_text(server.url + "/_outlast/dashboard/../config.py"))[0] == 404
        assert (await get_text(server.url + "/_outlast/dashboard/secret.txt"))[0] == 404
    finally:
        await close_all(*[c for c in (carol, dave) if c is not None])
        server.stop()
