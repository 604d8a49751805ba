"""Short calls the fine-print tests share."""

from __future__ import annotations

from typing import Any

from nio import AsyncClient

from tests.e2e.helpers import api


async def get(url: str, client: AsyncClient, path: str, **params: str) -> Any:
    """GET ``path`` (from /_matrix on) as ``client``; the body, once it answered 200."""
    status, body = await api("GET", f"{url}{path}", token=client.access_token, params=params)
    assert status == 200, body
    return body
