"""Devices: list, rename and delete a user's devices.

A device and its access token are created by login (core accounts); renames
and deletions are facts on the user's ``devices`` subject. A deletion removes
the device's tokens in the same fact, so once any site's view has applied it
the token is refused there (401 M_UNKNOWN_TOKEN), and the view drops the
device's keys and to-device inbox with it.
"""

from __future__ import annotations

from typing import Any

from outlast.accounts import tables
from outlast.context import SiteContext
from outlast.core.errors import MatrixError, bad_json, not_found
from outlast.log.facts import DeviceRenamed, DevicesDeleted, Fact

MAX_DISPLAY_NAME = 256
MAX_DELETE = 1000


def _public(row: Any) -> dict[str, Any]:
    """Every field present, null when unknown, as clients such as matrix-nio require.

    Activity is not tracked (it would be a write per request); the login time
    stands in for ``last_seen_ts`` and the address is never recorded.
    """
    return {
        "device_id": row["device_id"],
        "display_name": row["display_name"],
        "last_seen_ip": None,
        "last_seen_ts": row["created_ts"] or None,
    }


class Devices:
    def __init__(self, ctx: SiteContext) -> None:
        self.ctx = ctx

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
