"""Presence: a user's online / unavailable / offline state and status message.

A change is a durable fact on ``user_subject(user, "presence")`` in the users
stream; the view keeps the latest per user. /sync sends ``m.presence`` events
for the user and everyone sharing a joined room with them that changed after
the token's users-stream position (all known ones on an initial sync). GET is
allowed for yourself and for users you share a room with.

With ``[presence] enabled = false`` the feature is off: PUT is accepted and
ignored (nothing is written), GET answers ``offline`` for any existing user,
and /sync carries no presence events. Presence is only what clients set (PUT, or
``/sync?set_presence=``): the server does not infer it from activity or time out
idle users, so a /sync without ``set_presence`` changes nothing (the spec would mark
the user online; Outlast leaves that to the client). On an incremental sync those who
came to share a room in the window get each other's current presence too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from outlast.accounts.service import Requester
from outlast.context import SiteContext
from outlast.core import ids
from outlast.core import sync as sync_core
from outlast.core.errors import MatrixError, bad_json, forbidden, not_found
from outlast.core.presence import newly_met
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

    async def on_sync(self, who: Requester, set_presence: str | None) -> None:
        """GET /sync?set_presence=…: the syncing user's presence becomes that state (the
        status message is kept). Written only when it differs, so polling costs nothing.
        Without the parameter nothing changes: presence is only what clients set."""
        if set_presence is None:
            return
        if set_presence not in store.PRESENCE_STATES:
            raise MatrixError(
                400, "M_INVALID_PARAM", "set_presence must be online, offline or unavailable"
            )
        if not self.enabled:
            return
        row = store.presence_of(self.ctx.conn, who.user_id)
        if row is None and set_presence == "offline":
            return  # never set reads as offline already
        if row is not None and row["presence"] == set_presence:
            return
        status = row["status_msg"] if row is not None else None
        await self.set_status(who, who.user_id, {"presence": set_presence, "status_msg": status})

    def top_extras(self, window: SyncWindow) -> dict[str, Any]:
        if not self.enabled:
            return {}
        users = self.ctx.names.users_stream
        upto = window.upto(users)
        rows = self._met(window, upto)
        if window.moved(users):
            after = window.after(users) or 0
            changed = store.presence_between(self.ctx.conn, window.user_id, after, upto)
            known = {str(r["user_id"]) for r in changed}
            rows = [r for r in rows if str(r["user_id"]) not in known] + changed
        if not rows:
            return {}
        now_ms = self.ctx.now_ms()
        events = [
            {"type": "m.presence", "sender": row["user_id"], "content": content(row, now_ms)}
            for row in rows
        ]
        return {"presence": events}

    def _met(self, window: SyncWindow, upto: int) -> list[sqlite3.Row]:
        """On an incremental sync, the current presence of those the user came to share
        a room with in the window (core/presence.py says why)."""
        if window.since is None:
            return []  # an initial sync sends every room-mate's presence anyway
        windows = sync_core.moved_windows(
            window.streams, window.since.positions, window.now.positions
        )
        room_windows = [w for w in windows if w.stream != self.ctx.names.users_stream]
        # Every join is a room event: only rooms with events in the window can hold one.
        joins = store.joins_beside(self.ctx.conn, window.user_id, room_windows, window.evented)
        met = newly_met(window.user_id, joins)
        people = set(met.joiners)
        if met.rooms:
            people |= store.joined_in(self.ctx.conn, met.rooms)
        people.discard(window.user_id)
        return store.presence_of_users(self.ctx.conn, people, upto) if people else []


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
