"""Redacting events: an ``m.room.redaction`` sent through the idempotent send path.

Like a message send, the redaction's event id is derived from (sender,
device, room, type, txnId), so a retry returns the original event id. The
power check (``auth.check_redaction``) runs here against the state the
write is fenced on; the view applies the redaction to the stored target
(``outlast/rooms/tables.py``), checking the same rule again so that
a redaction arriving by another path cannot exceed the sender's power.
"""

from __future__ import annotations

from typing import Any

from outlast.accounts.service import Requester
from outlast.context import SiteContext
from outlast.core import auth, ids
from outlast.core.errors import bad_json, forbidden, not_found
from outlast.rooms.writer import RoomWriter, checked
from outlast.view import queries
from outlast.view.queries import StateMap

REDACTION = "m.room.redaction"


class Redactions:
    def __init__(self, ctx: SiteContext, writer: RoomWriter) -> None:
        self.ctx = ctx
        self.writer = writer

    async def redact(
        self, who: Requester, room_id: str, target_id: str, txn_id: str, body: dict[str, Any]
    ) -> str:
        if len(txn_id) > 255:
            raise bad_json("transaction id too long")
        reason = body.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise bad_json("reason must be a string")
        event_id = ids.txn_event_id(who.user_id, who.device_id, room_id, REDACTION, txn_id)
        if queries.event_row(self.ctx.conn, event_id) is not None:
            return event_id
        target = queries.event_row(self.ctx.conn, target_id)
        if target is None and await self.ctx.catch_up(self.writer.subjects(room_id).stream):
            target = queries.event_row(self.ctx.conn, target_id)
        if target is None or target["room_id"] != room_id:
            state = queries.current_state(self.ctx.conn, room_id)
            if auth.membership(state, who.user_id) != "join":
                raise forbidden("you are not joined to this room")
            raise not_found("event not found")
        target_sender = str(target["sender"])
        content: dict[str, Any] = {"redacts": target_id}
        if reason:
            content["reason"] = reason[:1024]

        def build(state: StateMap) -> list[dict[str, Any]]:
            if not state:
                raise forbidden("you are not in this room")
            event = self.writer.build_event(
                room_id, who.user_id, REDACTION, content, None, event_id
            )
            event["redacts"] = target_id  # room versions before 11 put it here; clients read both
            checked(state, event)
            auth.check_redaction(who.user_id, target_sender, state)
            return [event]

        await self.writer.send(
            room_id, build, msg_id=event_id, txn={"device_id": who.device_id, "txn_id": txn_id}
        )
        return event_id
