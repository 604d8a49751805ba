"""Fixtures of the fine-print tests: matrix-nio clients on one in-process site."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from nio import AsyncClient

from outlast.site import Site
from tests.e2e.helpers import close_all, register


@pytest.fixture
def url(site: Site) -> str:
    return f"http://127.0.0.1:{site.port}"


@pytest.fixture
async def pair(url: str) -> AsyncIterator[tuple[AsyncClient, AsyncClient]]:
    """alice and bob, registered and logged in."""
    alice, bob = await register(url, "alice"), await register(url, "bob")
    try:
        yield alice, bob
    finally:
        await close_all(alice, bob)
