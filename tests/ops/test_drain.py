"""A worker told to drain leaves every load balancer but keeps serving until stopped."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.servers import eventually, http_json, start_outlast


def test_sigusr1_turns_health_to_draining_while_requests_still_succeed(tmp_path: Path) -> None:
    server = start_outlast(tmp_path / "site")
    try:
        status, body = http_json("GET", server.url + "/_outlast/health")
        assert (status, body["ready"], body["draining"]) == (200, True, False)

        server.process.send_signal(signal.SIGUSR1)

        def draining() -> bool:
            status, body = http_json("GET", server.url + "/_outlast/health")
            return status == 503 and body["draining"] is True and body["ready"] is False

        eventually(draining, timeout=10, what="health to report draining")
        # Not stopped: a request sent to it directly (one already in flight when the
        # front door let go of it) is still answered.
        status, body = http_json(
            "POST",
            server.url + "/_matrix/client/v3/register",
            {"username": "drainee", "password": "pw-drainee", "auth": {"type": "m.login.dummy"}},
        )
        assert status == 200, body
        assert body["user_id"] == "@drainee:localhost"
        # Draining is never undone by itself: the health stays 503.
        assert http_json("GET", server.url + "/_outlast/health")[0] == 503
        assert server.process.poll() is None
    finally:
        server.stop()
    assert server.process.returncode == 0
