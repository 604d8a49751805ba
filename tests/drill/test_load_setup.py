"""The drill's load setup survives a registration whose answer was lost."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from outlast.drill.load import Load
from tests.servers import http_json, start_outlast


def register(url: str, name: str, password: str) -> None:
    status, body = http_json(
        "POST",
        url + "/_matrix/client/v3/register",
        {"username": name, "password": password, "auth": {"type": "m.login.dummy"}},
    )
    assert status == 200, body


def test_a_name_already_registered_by_the_drill_is_logged_into(tmp_path: Path) -> None:
    server = start_outlast(tmp_path / "site")
    try:
        # As if the first attempt had registered pfxu0 and its answer had been lost.
        register(server.url, "pfxu0", "drill-password")

        async def setup() -> list[tuple[str, str]]:
            async with Load(server.url) as load:
                await load.setup(2, 1, prefix="pfx")
                return [(u.user_id, u.token) for u in load.users]

        users = asyncio.run(setup())
        assert [user_id for user_id, _ in users] == ["@pfxu0:localhost", "@pfxu1:localhost"]
        for user_id, token in users:
            status, body = http_json(
                "GET", server.url + "/_matrix/client/v3/account/whoami", token=token
            )
            assert (status, body["user_id"]) == (200, user_id)

        # Someone else's account of that name (another password) is not taken over.
        register(server.url, "otheru0", "not-the-drills")

        async def setup_other() -> None:
            async with Load(server.url) as load:
                await load.setup(1, 1, prefix="other")

        with pytest.raises(RuntimeError, match="login"):
            asyncio.run(setup_other())
    finally:
        server.stop()
