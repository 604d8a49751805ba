"""A real push gateway for tests and ``outlast drill fire --push``: the Push Gateway API.

No packaged gateway is installable here (Sygnal is not published as a
package), so this one implements ``POST /_matrix/push/v1/notify`` with aiohttp
on 127.0.0.1 and a free port, checks each body against the spec, and records
every request, however it was answered. On demand it fails (an HTTP status),
hangs (no answer, so the homeserver's timeout fires; optionally after having
"delivered", which is how a real gateway produces a duplicate on retry) or
answers ``rejected`` for chosen pushkeys. Unknown paths get 404 and other
methods 405, with ``M_UNRECOGNIZED`` as the spec says.

    async with PushGateway() as gateway:
        ... register a pusher with data.url = gateway.url ...
        await gateway.wait_for(lambda g: len(g.accepted()) >= 1, timeout=10)

``python -m outlast.drill.pushgw --record FILE`` runs one until SIGTERM, printing its
URL and appending every request as a JSON line (for the drill's processes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

NOTIFY_PATH = "/_matrix/push/v1/notify"


@dataclass(frozen=True)
class Received:
    """One request as the gateway saw it, and how it answered (``None``: never answered)."""

    body: Any
    status: int | None
    delivered: bool  # counted as reaching the phone (answered 200, or hung after delivering)
    at: float
    problems: tuple[str, ...] = ()
    user_agent: str = ""  # Outlast names its site there: which site sent it

    @property
    def notification(self) -> dict[str, Any]:
        note = self.body.get("notification") if isinstance(self.body, dict) else None
        return note if isinstance(note, dict) else {}

    @property
    def event_id(self) -> str | None:
        value = self.notification.get("event_id")
        return value if isinstance(value, str) else None

    @property
    def pushkeys(self) -> list[str]:
        devices = self.notification.get("devices")
        return [d["pushkey"] for d in devices or [] if isinstance(d, dict) and "pushkey" in d]


def problems(body: Any) -> list[str]:
    """Where a /notify body breaks the Push Gateway API's schema (empty: it conforms)."""
    note = body.get("notification") if isinstance(body, dict) else None
    if not isinstance(note, dict):
        return ["notification must be an object"]
    found: list[str] = []
    devices = note.get("devices")
    if not isinstance(devices, list) or not devices:
        found.append("devices must be a non-empty list")
    for device in devices if isinstance(devices, list) else []:
        if not isinstance(device, dict) or not all(
            isinstance(device.get(k), str) for k in ("app_id", "pushkey")
        ):
            found.append("each device needs string app_id and pushkey")
        elif "url" in (device.get("data") or {}):
            found.append("device data must not carry the pusher's url")
    for key in ("event_id", "room_id", "type", "sender", "room_name", "room_alias"):
        if key in note and not isinstance(note[key], str):
            found.append(f"{key} must be a string")
    if "event_id" in note and not isinstance(note.get("room_id"), str):
        found.append("room_id is required with event_id")
    if note.get("prio", "high") not in ("high", "low"):
        found.append("prio must be high or low")
    counts = note.get("counts", {})
    if not isinstance(counts, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in counts.values()
    ):
        found.append("counts must map names to integers")
    return found


def _unrecognized(status: int, error: str) -> web.Response:
    return web.json_response({"errcode": "M_UNRECOGNIZED", "error": error}, status=status)


@dataclass
class _Plan:
    """What to do with the next requests: each entry is consumed by one request."""

    queue: list[tuple[str, int]] = field(default_factory=list)  # ("fail", status) / ("hang", 0|1)
    down_status: int | None = None


class PushGateway:
    """The gateway: start/stop (or ``async with``), faults on demand, and what it received."""

    def __init__(self, on_request: Callable[[Received], None] | None = None) -> None:
        self.received: list[Received] = []
        self.rejected_keys: set[str] = set()
        self._plan = _Plan()
        self._on_request = on_request
        self._changed = asyncio.Condition()
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- lifecycle -----------------------------------------------------------

    async def start(self) -> PushGateway:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._route)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        self._release.set()  # hung requests end now, so cleanup does not wait for them
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> PushGateway:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """What a pusher's ``data.url`` should be."""
        return f"http://127.0.0.1:{self.port}{NOTIFY_PATH}"

    # --- faults on demand ------------------------------------------------------

    def fail_next(self, count: int = 1, status: int = 503) -> None:
        self._plan.queue.extend([("fail", status)] * count)

    def hang_next(self, count: int = 1, delivered: bool = False) -> None:
        """Never answer the next requests; with ``delivered`` they still reach the phone."""
        self._plan.queue.extend([("hang", int(delivered))] * count)

    def go_down(self, status: int = 503) -> None:
        """Answer every request with ``status`` until ``come_back``."""
        self._plan.down_status = status

    def come_back(self) -> None:
        self._plan.down_status = None

    def reject(self, *pushkeys: str) -> None:
        """Answer ``rejected`` for these pushkeys from now on (as an expired token would)."""
        self.rejected_keys.update(pushkeys)

    # --- what was received -----------------------------------------------------

    def accepted(self, pushkey: str | None = None) -> list[Received]:
        """Requests that reached the phone, optionally for one pushkey."""
        return [
            r for r in self.received if r.delivered and (pushkey is None or pushkey in r.pushkeys)
        ]

    def event_ids(self, pushkey: str | None = None) -> list[str]:
        """Event ids of delivered event notifications, in arrival order, repeats included."""
        return [r.event_id for r in self.accepted(pushkey) if r.event_id is not None]

    def duplicates(self) -> dict[tuple[str, str], int]:
        """(event id, pushkey) pairs delivered more than once, with how often."""
        seen = Counter((r.event_id, k) for r in self.accepted() if r.event_id for k in r.pushkeys)
        return {(e, k): n for (e, k), n in seen.items() if e is not None and n > 1}

    def badges(self, pushkey: str) -> list[int]:
        """The ``counts.unread`` of each delivered badge-only notification for a pushkey."""
        return [
            int(r.notification.get("counts", {}).get("unread", 0))
            for r in self.accepted(pushkey)
            if r.event_id is None
        ]

    async def wait_for(self, predicate: Callable[[PushGateway], bool], timeout: float) -> None:
        """Until ``predicate(self)`` holds; TimeoutError after ``timeout`` seconds."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: predicate(self))

    # --- serving ---------------------------------------------------------------

    async def _route(self, request: web.Request) -> web.StreamResponse:
        if request.path != NOTIFY_PATH:
            return _unrecognized(404, "unknown endpoint")
        if request.method != "POST":
            return _unrecognized(405, "unsupported method")
        return await self._notify(request)

    async def _notify(self, request: web.Request) -> web.StreamResponse:
        try:
            body: Any = json.loads(await request.read())
        except ValueError:
            body = None
        found = problems(body)
        agent = request.headers.get("User-Agent", "")
        action = ("fail", self._plan.down_status) if self._plan.down_status else None
        if action is None and self._plan.queue and not found:
            action = self._plan.queue.pop(0)
        if found:
            await self._record(Received(body, 400, False, time.time(), tuple(found), agent))
            return web.json_response(
                {"errcode": "M_BAD_JSON", "error": "; ".join(found)}, status=400
            )
        if action is not None and action[0] == "fail":
            await self._record(Received(body, action[1], False, time.time(), (), agent))
            return web.json_response({"errcode": "M_UNKNOWN", "error": "failing"}, status=action[1])
        if action is not None:  # hang
            await self._record(Received(body, None, bool(action[1]), time.time(), (), agent))
            await self._release.wait()
            return _unrecognized(503, "the gateway is stopping")
        record = Received(body, 200, True, time.time(), (), agent)
        await self._record(record)
        return web.json_response(
            {"rejected": [k for k in record.pushkeys if k in self.rejected_keys]}
        )

    async def _record(self, received: Received) -> None:
        async with self._changed:
            self.received.append(received)
            if self._on_request is not None:
                self._on_request(received)
            self._changed.notify_all()


async def _serve(record: Path) -> None:
    def append(received: Received) -> None:
        line = {"body": received.body, "status": received.status, "delivered": received.delivered}
        with record.open("a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with PushGateway(on_request=append) as gateway:
        print(gateway.url, flush=True)
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description="a recording test push gateway on 127.0.0.1")
    parser.add_argument("--record", type=Path, required=True, help="append requests here")
    asyncio.run(_serve(parser.parse_args().record))


if __name__ == "__main__":
    main()
