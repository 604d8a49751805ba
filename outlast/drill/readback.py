"""Right after the fault, every client reads its own write back at a survivor.

A user's next write after a site fails may be answered by any survivor, and
the client's next request by another one. The first write each client gets
acknowledged after the fault is at once read back (``GET /event``) through
every surviving site other than the one that acknowledged it, with the
client's own token, exactly as the client would. A 404 is a stale read —
what docs/consistency.md promises never happens; a 503 is a site saying it
cannot show it is current, and is retried like a client would, for a while.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from outlast.drill.verdict import Send

# How long a read answered 503 (or not at all) is retried before it counts as unavailable.
READ_RETRY_SECONDS = 15.0

# Load.request: (method, path, body, token, base URL) -> (status, data, answering site)
Request = Callable[..., Any]


@dataclass
class OwnWrites:
    """Reads each client's first write after ``since`` back at the survivors, as it happens."""

    request: Request
    survivors: dict[str, str]  # site name -> base URL
    since: float
    clock: Callable[[], float] = time.monotonic
    retry_seconds: float = READ_RETRY_SECONDS
    checked: int = 0
    fresh: int = 0
    stale: list[str] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)
    read_ms: list[float] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def on_ack(self, user: str, token: str, send: Send, site: str) -> None:
        """Called by the load as each send is acknowledged (``site`` answered it)."""
        if user in self._seen or send.acked_at is None or send.acked_at < self.since:
            return
        self._seen.add(user)
        for name, url in self.survivors.items():
            if name != site:
                self._tasks.append(asyncio.create_task(self._read(user, token, send, name, url)))

    async def _read(self, user: str, token: str, send: Send, name: str, url: str) -> None:
        path = f"/_matrix/client/v3/rooms/{quote(send.room_id)}/event/{quote(str(send.event_id))}"
        started = self.clock()
        what = f"{user}'s {send.body!r} at {name}"
        while True:
            try:
                status, data, _ = await self.request("GET", path, None, token, url)
            except Exception:  # noqa: BLE001 - no answer (refused, reset, timeout): retry
                status, data = 0, None
            if status == 200 and isinstance(data, dict) and data.get("event_id") == send.event_id:
                self.fresh += 1
                self.read_ms.append(round((self.clock() - started) * 1000, 1))
                break
            if status and status < 500 and status != 429:
                self.stale.append(f"{what}: {status} {str(data)[:100]}")
                break
            if self.clock() - started > self.retry_seconds:
                self.unavailable.append(f"{what}: last answer {status}")
                break
            await asyncio.sleep(0.1)
        self.checked += 1

    async def report(self) -> dict[str, Any]:
        """Wait for the reads still running, then the figures for the drill's report."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=self.retry_seconds + 10)
        ordered = sorted(self.read_ms)
        return {
            "clients": len(self._seen),
            "reads": self.checked,
            "fresh": self.fresh,
            "stale": len(self.stale),
            "unavailable": len(self.unavailable),
            "read_ms_p50": ordered[len(ordered) // 2] if ordered else None,
            "read_ms_max": ordered[-1] if ordered else None,
            "examples": {"stale": self.stale[:5], "unavailable": self.unavailable[:5]},
        }
