"""To-device messages: opaque payloads (olm-encrypted room keys, verification) for devices.

Each (sender device, txnId, target user) is one fact on the target's
``todevice`` subject, with a log message id derived from those four values, so
a retry within the log's dedup window is not stored again and one past it is
skipped by the view. The view files it under every addressed device; /sync
hands a device the messages whose users-stream position lies in its window
(since, now]. When a later since token proves a device received them, an
acknowledgement fact lets every site's view drop them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from outlast.accounts.service import Requester
from outlast.context import SiteContext
from outlast.core.e2ee import check_to_device, to_device_msg_id
from outlast.core.errors import MatrixError
from outlast.core.ids import parse_user_id
from outlast.e2ee import queries as q
from outlast.log.client import Ack
from outlast.log.facts import ToDeviceReceived, ToDeviceSent
from outlast.view import queries

log = logging.getLogger(__name__)

MAX_TYPE = 255


class ToDevice:
    def __init__(self, ctx: SiteContext) -> None:
        self.ctx = ctx
        self._acking: dict[tuple[str, str], asyncio.Task[None]] = {}

    async def send(
        self, who: Requester, event_type: str, txn_id: str, body: dict[str, Any]
    ) -> None:
        if not 0 < len(event_type) <= MAX_TYPE or not 0 < len(txn_id) <= MAX_TYPE:
            raise MatrixError(400, "M_INVALID_PARAM", "event type and txnId must be 1-255 chars")
        messages = check_to_device(body.get("messages"))
        acks: list[Ack] = []
        for target, devices in messages.items():
            if parse_user_id(target)[1] != self.ctx.server_name or not devices:
                continue  # no federation: remote users are silently skipped
            if not queries.user_exists(self.ctx.conn, target):
                continue
            if q.to_device_sent(self.ctx.conn, who.user_id, who.device_id, txn_id, target):
                continue  # a retry of a txnId this view already applied
            fact = ToDeviceSent(who.user_id, who.device_id, txn_id, event_type, target, devices)
            acks.append(
                await self.ctx.log.append(
                    self.ctx.names.user_subject(target, "todevice"),
                    fact,
                    msg_id=to_device_msg_id(who.user_id, who.device_id, txn_id, target),
                )
            )
        if acks:
            await self.ctx.applied(max(acks, key=lambda a: a.seq))

    def pending(
        self, user_id: str, device_id: str, since: int | None, now: int
    ) -> list[dict[str, Any]]:
        """Messages for the device in (since, now]; all still held on an initial sync."""
        conn = self.ctx.conn
        if since is not None and since > 0 and q.inbox_has_upto(conn, user_id, device_id, since):
            self._acknowledge(user_id, device_id, min(since, now))
        return q.inbox(conn, user_id, device_id, since or 0, now)

    def _acknowledge(self, user_id: str, device_id: str, upto: int) -> None:
        """Record in the background that the device has everything through ``upto``.

        Best effort: a lost acknowledgement only keeps delivered messages
        around until the next one; the sync window never delivers them twice.
        """
        key = (user_id, device_id)
        running = self._acking.get(key)
        if running is not None and not running.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # built outside the server's loop (a test): nothing to record
        fact = ToDeviceReceived(user_id, device_id, upto)

        async def append() -> None:
            try:
                await self.ctx.log.append(self.ctx.names.user_subject(user_id, "todevice"), fact)
            except Exception as exc:  # noqa: BLE001 - retried on the device's next sync
                log.info("to-device acknowledgement not recorded: %s", exc)
            finally:
                self._acking.pop(key, None)

        self._acking[key] = loop.create_task(append())

    async def stop(self) -> None:
        tasks = list(self._acking.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
