"""Presence: a user's online / unavailable / offline state and status message.

A change is a durable fact on ``user_subject(user, "presence")`` in the users
stream; the view keeps the latest per user. /sync sends ``m.presence`` events
for the user and everyone sharing a joined room with them that changed after
the token's users-stream position (all known ones on an initial sync). GET is
allowed for yourself and for users you share a room with.

With ``[presence] enabled = false`` the feature is off: PUT is accepted and
ignored (nothing is written), GET answers ``offline`` for any existing user,
and /sync carries no presence events. Presence is only what clients set: the
server does not infer it from activity or time out idle users.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from outlast.accounts.service import Requester
from outlast.context import SiteContext
from outlast.core import ids
from outlast.core.errors import MatrixError, bad_json, forbidden, not_found
from outlast.log.facts import PresenceSet
from outlast.presence import tables as store
from outlast.sync.window import NothingPerRoom, SyncWindow
from outlast.view import queries

if TYPE_CHECKING:
    import sqlite3

MAX_STATUS_MSG = 1024


class Presence(NothingPerRoom):
    def __init__(self, ctx: SiteContext) -> None:
        self.ctx = ctx

    @property
    def enabled(self) -> bool:
        return self.ctx.config.presence.enabled

    async def set_status(self, who: Requester, user_id: str, body: dict[str, Any]) -> None:
        """PUT /presence/{userId}/status"""
        if user_id != who.user_id:
            raise forbidden("you can only set your own presence")
        state = body.get("presence")
        if not isinstance(state, str):
            raise MatrixError(
                400,
                "M_MISSING_PARAM" if state is None else "M_BAD_JSON",
                "presence must be one of online, offline, unavailable",
            )
        if state not in store.PRESENCE_STATES:
            raise MatrixError(400, "M_INVALID_PARAM", f"unknown presence state {state[:32]!r}")
        status = body.get("status_msg")
        if status is not None and not isinstance(status, str):
            raise bad_json("status_msg must be a string")
        if status is not None and len(status) > MAX_STATUS_MSG:
            raise bad_json(f"status_msg is longer than {MAX_STATUS_MSG} characters")
        if not self.enabled:
            return
        fact = PresenceSet(who.user_id, state, status, self.ctx.now_ms())
        ack = await self.ctx.log.append(self.ctx.names.user_subject(who.user_id, "presence"), fact)
        await self.ctx.applied(ack)

    def status(self, who: Requester, user_id: str) -> dict[str, Any]:
        """GET /presence/{userId}/status"""
        if not ids.is_user_id(user_id):
            raise MatrixError(400, "M_INVALID_PARAM", "not a user id")
        conn = self.ctx.conn
        if queries.user(conn, user_id) is None:
            raise not_found("no such user")
        if user_id != who.user_id and user_id not in queries.room_mates(conn, who.user_id):
            raise forbidden("you do not share a room with this user")
        row = store.presence_of(conn, user_id) if self.enabled else None
        if row is None:
            return {"presence": "offline"}
        return content(row, self.ctx.now_ms())

    def top_extras(self, window: SyncWindow) -> dict[str, Any]:
        if not self.enabled:
            return {}
        users = self.ctx.names.users_stream
        if not window.moved(users):
            return {}  # the users stream has not moved: no presence changed
        after, upto = window.after(users) or 0, window.upto(users)
        rows = store.presence_between(self.ctx.conn, window.user_id, after, upto)
        if not rows:
            return {}
        now_ms = self.ctx.now_ms()
        events = [
            {"type": "m.presence", "sender": row["user_id"], "content": content(row, now_ms)}
            for row in rows
        ]
        return {"presence": events}


def content(row: sqlite3.Row, now_ms: int) -> dict[str, Any]:
    """A presence row as the spec's presence content (status_msg only when set)."""
    body: dict[str, Any] = {
        "presence": row["presence"],
        "last_active_ago": max(0, now_ms - int(row["active_ts"])),
        "currently_active": row["presence"] == "online",
    }
    if row["status_msg"] is not None:
        body["status_msg"] = row["status_msg"]
    return body
