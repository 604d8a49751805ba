"""The HTTP application's error mapping (outlast.http.app), on an in-process site."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from outlast.site import Site
from tests.testrig import running_site, services_of

V3 = "/_matrix/client/v3"


async def call(
    site: Site, method: str, path: str, body: Any = None, token: str | None = None
) -> tuple[int, Any, dict[str, str]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = f"http://127.0.0.1:{site.port}{path}"
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
        session.request(method, url, json=body, headers=headers) as resp,
    ):
        return resp.status, await resp.json(content_type=None), dict(resp.headers)


@pytest.fixture
async def site_without_barrier(shared_nats: str, tmp_path: Path) -> AsyncIterator[Site]:
    """With the read barrier on, a request would be refused before any service meets
    the outage; this test is about what happens when a service meets it."""
    extra = "\n[consistency]\nread_barrier = false\n"
    async with running_site(tmp_path / "site", shared_nats, extra_toml=extra) as running:
        yield running


async def test_a_log_outage_is_one_503_for_every_endpoint(site_without_barrier: Site) -> None:
    """Services let LogUnavailable through; the middleware alone turns it into
    503 M_UNAVAILABLE with Retry-After, whichever service met it."""
    site = site_without_barrier
    services = services_of(site)
    alice = await services.accounts.register(
        "alice", "secret password", device_id=None, display_name=None, inhibit_login=False
    )
    token = str(alice["access_token"])
    room_id = (await services.creator.create(str(alice["user_id"]), {}))["room_id"]
    assert site.log is not None
    await site.log.close()  # every call into the log now raises LogUnavailable
    attempts = [
        (
            "POST",
            V3 + "/register",
            {"username": "bob", "password": "pw", "auth": {"type": "m.login.dummy"}},
            None,
        ),
        ("PUT", f"{V3}/rooms/{room_id}/send/m.room.message/t1", {"body": "hi"}, token),
        ("PUT", f"{V3}/rooms/{room_id}/state/m.room.topic", {"topic": "x"}, token),
        ("PUT", f"{V3}/user/{alice['user_id']}/account_data/x.y", {"a": 1}, token),
        ("POST", "/_matrix/media/v3/upload", {"not": "an image"}, token),
        ("POST", V3 + "/logout", {}, token),
    ]
    for method, path, body, auth in attempts:
        status, reply, headers = await call(site, method, path, body, auth)
        assert status == 503, (path, status, reply)
        assert reply["errcode"] == "M_UNAVAILABLE" and reply["retry_after_ms"] == 2000, reply
        assert reply["error"].startswith("cannot commit right now"), reply
        assert headers["Retry-After"] == "2"
