"""Shared helpers for the end-to-end tests: bounded matrix-nio clients and raw HTTP."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
from nio import (
    AsyncClient,
    AsyncClientConfig,
    ErrorResponse,
    MessageDirection,
    RegisterResponse,
    Response,
    RoomMessagesResponse,
    SyncResponse,
)

from tests.servers import OutlastProcess

T = TypeVar("T", bound=Response)
V3 = "/_matrix/client/v3"

# No endless retries: a test sees the server's real answer (429s, timeouts) at once.
CONFIG = AsyncClientConfig(max_limit_exceeded=0, max_timeouts=0, request_timeout=30)


def new_client(url: str, user: str = "", device_id: str | None = None) -> AsyncClient:
    return AsyncClient(url, user, device_id=device_id, config=CONFIG)


def expect(resp: Response, cls: type[T]) -> T:
    """Assert a nio response is the success type, showing the server's error if not."""
    assert isinstance(resp, cls), f"expected {cls.__name__}, got {resp!r}"
    return resp


def expect_error(resp: Response, status: int, errcode: str) -> Response:
    """Assert a nio response carries this HTTP status and errcode."""
    assert resp.transport_response is not None, resp
    if isinstance(resp, ErrorResponse):
        got = resp.status_code
    else:
        # Some nio responses (e.g. a state event's) put an error body in ``content``.
        got = (getattr(resp, "content", None) or {}).get("errcode")
    assert (resp.transport_response.status, got) == (status, errcode), resp
    return resp


def forbidden(resp: Response) -> Response:
    return expect_error(resp, 403, "M_FORBIDDEN")


async def register(url: str, name: str, password: str | None = None) -> AsyncClient:
    """A fresh nio client registered (and so logged in) as ``@name:localhost``."""
    client = new_client(url, name)
    expect(await client.register(name, password or f"pw-{name}"), RegisterResponse)
    return client


async def close_all(*clients: AsyncClient) -> None:
    for client in clients:
        await client.close()


async def api(
    method: str,
    url: str,
    body: Any = None,
    token: str | None = None,
    params: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """Raw HTTP for endpoints nio lacks (password change, deactivate, ...)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    timeout = aiohttp.ClientTimeout(total=30)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.request(method, url, data=data, headers=headers, params=params) as resp,
    ):
        raw = await resp.read()
        try:
            return resp.status, json.loads(raw) if raw else None
        except ValueError:
            return resp.status, raw


async def raw_user(server: OutlastProcess, name: str) -> dict[str, str]:
    """Register ``name`` (password ``pw-<name>``) through the raw API."""
    status, body = await api(
        "POST",
        server.url + V3 + "/register",
        {"username": name, "password": f"pw-{name}", "auth": {"type": "m.login.dummy"}},
    )
    assert status == 200, body
    return {
        "name": name,
        "user_id": body["user_id"],
        "token": body["access_token"],
        "device_id": body["device_id"],
    }


async def call(
    server: OutlastProcess,
    method: str,
    path: str,
    who: dict[str, str],
    body: Any = None,
    params: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """A client-server API call (``path`` below /_matrix/client/v3) as ``who``."""
    return await api(method, server.url + V3 + path, body, token=who["token"], params=params)


async def watch_device_lists(
    server: OutlastProcess, alice: dict[str, str], bob: dict[str, str]
) -> tuple[str, str, asyncio.Task[tuple[int, Any]]]:
    """Alice and Bob share a new room; Alice long-polls /sync from there.

    Returns the room id, the sync token the poll started from, and the poll."""
    status, room = await call(server, "POST", "/createRoom", alice, {"invite": [bob["user_id"]]})
    assert status == 200
    status, _ = await call(server, "POST", f"/rooms/{room['room_id']}/join", bob, {})
    assert status == 200
    _, first = await call(server, "GET", "/sync", alice)
    since = str(first["next_batch"])
    poll = asyncio.create_task(
        call(server, "GET", "/sync", alice, params={"since": since, "timeout": "20000"})
    )
    await asyncio.sleep(0.3)
    return str(room["room_id"]), since, poll


async def sync(client: AsyncClient, **kwargs: Any) -> SyncResponse:
    return expect(await client.sync(**kwargs), SyncResponse)


async def all_messages(client: AsyncClient, room_id: str, limit: int = 50) -> list[dict[str, Any]]:
    """Every visible event of a room, oldest first, by paging /messages backwards."""
    events: list[dict[str, Any]] = []
    start: str | None = None
    for _ in range(1000):
        page = expect(
            await client.room_messages(
                room_id, start, direction=MessageDirection.back, limit=limit
            ),
            RoomMessagesResponse,
        )
        events.extend(e.source for e in page.chunk)
        if not page.end or not page.chunk:
            break
        start = page.end
    events.reverse()
    return events


def ids(events: list[dict[str, Any]]) -> list[str]:
    return [e["event_id"] for e in events]


async def eventually(
    probe: Callable[[], Awaitable[Any]], timeout: float = 20.0, interval: float = 0.05
) -> Any:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value {last!r})")


def text(body: str) -> dict[str, str]:
    return {"msgtype": "m.text", "body": body}
