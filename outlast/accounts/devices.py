"""Devices: list, rename and delete a user's devices.

A device and its access token are created by login (core accounts); renames
and deletions are facts on the user's ``devices`` subject. A deletion removes
the device's tokens in the same fact, so once any site's view has applied it
the token is refused there (401 M_UNKNOWN_TOKEN), and the view drops the
device's keys and to-device inbox with it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from outlast.accounts import tables
from outlast.context import SiteContext
from outlast.core.errors import MatrixError, bad_json, not_found
from outlast.log.client import LogUnavailable
from outlast.log.facts import DeviceRenamed, DevicesDeleted, DeviceSeen, Fact

log = logging.getLogger(__name__)

MAX_DISPLAY_NAME = 256
MAX_DELETE = 1000


# A device's use is written at most this often per worker (a fact per request would
# double the users stream's traffic); /devices is as coarse as that.
SEEN_EVERY_MS = 5 * 60 * 1000
MAX_REMEMBERED = 100_000


def _public(row: Any) -> dict[str, Any]:
    """Every field present, null when unknown, as clients such as matrix-nio require.
    Before a device's first recorded use, its login time stands in for ``last_seen_ts``."""
    return {
        "device_id": row["device_id"],
        "display_name": row["display_name"],
        "last_seen_ip": row["ip"],
        "last_seen_ts": row["ts"] or row["created_ts"] or None,
    }


class Devices:
    def __init__(self, ctx: SiteContext) -> None:
        self.ctx = ctx
        # (user, device) -> (when this worker last wrote its use, from which address)
        self._seen: dict[tuple[str, str], tuple[int, str | None]] = {}
        self._writes: set[asyncio.Task[None]] = set()

    def seen(self, user_id: str, device_id: str, ip: str | None) -> None:
        """Note a device's use; a DeviceSeen fact is written in the background on its first
        use at this worker, when its address changes, and then at most every few minutes."""
        now = self.ctx.now_ms()
        last = self._seen.get((user_id, device_id))
        if last is not None and last[1] == ip and now - last[0] < SEEN_EVERY_MS:
            return
        if len(self._seen) >= MAX_REMEMBERED:
            self._seen.clear()
        self._seen[(user_id, device_id)] = (now, ip)
        task = asyncio.create_task(self._write_seen(DeviceSeen(user_id, device_id, ip, now)))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write_seen(self, fact: DeviceSeen) -> None:
        try:
            await self.ctx.log.append(self.ctx.names.user_subject(fact.user_id, "devices"), fact)
        except LogUnavailable as exc:
            # Best effort, and tried again only after the interval: during an outage
            # every request retrying this write would only add to the load.
            log.info("could not record the use of a device: %s", exc)

    async def stop(self) -> None:
        """Wait briefly for the uses being written, then drop the rest."""
        if self._writes:
            await asyncio.wait(set(self._writes), timeout=2)
        for task in set(self._writes):
            task.cancel()

    def all(self, user_id: str) -> list[dict[str, Any]]:
        return [_public(row) for row in tables.devices(self.ctx.conn, user_id)]

    async def get(self, user_id: str, device_id: str) -> dict[str, Any]:
        row = tables.device(self.ctx.conn, user_id, device_id)
        if row is None and await self.ctx.catch_up(self.ctx.names.users_stream):
            row = tables.device(self.ctx.conn, user_id, device_id)  # a login made at another site
        if row is None:
            raise not_found("no such device")
        return _public(row)

    async def rename(self, user_id: str, device_id: str, display_name: Any) -> None:
        await self.get(user_id, device_id)
        if display_name is None:
            return  # spec: display_name is optional; nothing to change
        if not isinstance(display_name, str) or len(display_name) > MAX_DISPLAY_NAME:
            raise bad_json(f"display_name must be a string of at most {MAX_DISPLAY_NAME} chars")
        await self._append(user_id, DeviceRenamed(user_id, device_id, display_name))

    async def delete(self, user_id: str, device_ids: list[str]) -> None:
        """Delete devices (unknown ids are ignored, as a repeated delete must succeed)."""
        wanted: list[str] = [*dict.fromkeys(device_ids)]
        if not all(tables.device(self.ctx.conn, user_id, d) for d in wanted):
            await self.ctx.catch_up(self.ctx.names.users_stream)
        known = [d for d in wanted if tables.device(self.ctx.conn, user_id, d)]
        if known:
            await self._append(user_id, DevicesDeleted(user_id, tuple(known)))

    async def _append(self, user_id: str, fact: Fact) -> None:
        ack = await self.ctx.log.append(self.ctx.names.user_subject(user_id, "devices"), fact)
        await self.ctx.applied(ack)


def check_device_ids(value: Any) -> list[str]:
    """POST /delete_devices: ``devices`` is a list of device id strings."""
    if (
        not isinstance(value, list)
        or len(value) > MAX_DELETE
        or not all(isinstance(d, str) and 0 < len(d) <= 255 for d in value)
    ):
        raise MatrixError(400, "M_BAD_JSON", "devices must be a list of device ids")
    return value
