"""Account data: per-user settings, global and per room, and room tags.

Every change is a fact on the user's ``account_data`` subject in the users
stream; /sync sends what changed since the token's users-stream position
(on an initial sync, everything) at the top level and in each joined room.
Types the server maintains itself (``m.fully_read``, ``m.push_rules``) are
refused here with 405 as the spec asks; their owners write them through
:meth:`AccountData.put_internal`.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from typing import Any

from outlast.account_data import tables as store
from outlast.account_data.tables import TAG_TYPE
from outlast.accounts.service import Requester
from outlast.context import SiteContext
from outlast.core import ids
from outlast.core.errors import MatrixError, bad_json, forbidden, not_found
from outlast.core.events import canonical_json, validate_type
from outlast.log.facts import GLOBAL, AccountDataSet, Fact, RoomTagged
from outlast.sync.window import JoinedRoom, RoomExtras, SyncWindow

SERVER_TYPES = ("m.fully_read", "m.push_rules")
MAX_CONTENT_BYTES = 65_536
MAX_TAG_BYTES = 255


def _room(room_id: str | None) -> str:
    if room_id is None:
        return GLOBAL
    if not ids.is_room_id(room_id):
        raise MatrixError(400, "M_INVALID_PARAM", "not a room id")
    return room_id


def _only_self(who: Requester, user_id: str) -> None:
    if who.user_id != user_id:
        raise forbidden("you can only access your own account data")


class AccountData:
    def __init__(self, ctx: SiteContext) -> None:
        self.ctx = ctx

    def get(self, who: Requester, user_id: str, room_id: str | None, kind: str) -> dict[str, Any]:
        _only_self(who, user_id)
        content = store.get(self.ctx.conn, user_id, _room(room_id), kind)
        if content is None:
            raise not_found("no account data of this type")
        return content

    async def put(
        self, who: Requester, user_id: str, room_id: str | None, kind: str, content: Any
    ) -> None:
        _only_self(who, user_id)
        scope = _room(room_id)
        validate_type(kind)
        if kind in SERVER_TYPES:
            raise MatrixError(405, "M_BAD_JSON", f"cannot set {kind} through this API")
        await self.put_internal(user_id, scope or None, kind, content)

    async def put_internal(
        self, user_id: str, room_id: str | None, kind: str, content: Any
    ) -> None:
        """Store account data of any type (for features that own server-maintained types)."""
        if not isinstance(content, dict):
            raise MatrixError(400, "M_NOT_JSON", "content must be a JSON object")
        if len(canonical_json(content)) > MAX_CONTENT_BYTES:
            raise MatrixError(413, "M_TOO_LARGE", "account data is larger than 64 KiB")
        fact = AccountDataSet(user_id, room_id or GLOBAL, kind, content)
        await self._append(user_id, fact)

    def tags(self, who: Requester, user_id: str, room_id: str) -> dict[str, Any]:
        _only_self(who, user_id)
        content = store.get(self.ctx.conn, user_id, _room(room_id), TAG_TYPE) or {}
        tags = content.get("tags")
        return {"tags": tags if isinstance(tags, dict) else {}}

    async def set_tag(
        self, who: Requester, user_id: str, room_id: str, tag: str, content: Any
    ) -> None:
        _only_self(who, user_id)
        _room(room_id)
        _check_tag(tag)
        if not isinstance(content, dict):
            raise MatrixError(400, "M_NOT_JSON", "tag content must be a JSON object")
        order = content.get("order")
        if order is not None and (isinstance(order, bool) or not isinstance(order, (int, float))):
            raise bad_json("order must be a number")
        if len(canonical_json(content)) > MAX_CONTENT_BYTES:
            raise MatrixError(413, "M_TOO_LARGE", "tag content is too large")
        fact = RoomTagged(user_id, room_id, tag, content)
        await self._append(user_id, fact)

    async def delete_tag(self, who: Requester, user_id: str, room_id: str, tag: str) -> None:
        _only_self(who, user_id)
        _room(room_id)
        _check_tag(tag)
        fact = RoomTagged(user_id, room_id, tag, None)
        await self._append(user_id, fact)

    async def _append(self, user_id: str, fact: Fact) -> None:
        ack = await self.ctx.log.append(self.ctx.names.user_subject(user_id, "account_data"), fact)
        await self.ctx.applied(ack)


def _check_tag(tag: str) -> None:
    if not tag or len(tag.encode("utf-8")) > MAX_TAG_BYTES:
        raise MatrixError(400, "M_INVALID_PARAM", "tag must be 1 to 255 bytes")


class AccountDataSync:
    """Adds changed account data to /sync: top level (global) and per joined room."""

    def __init__(self, ctx: SiteContext) -> None:
        self.ctx = ctx

    def _changed(self, window: SyncWindow, room_id: str) -> list[dict[str, Any]]:
        users = self.ctx.names.users_stream
        if not window.moved(users):
            return []  # the users stream has not moved: no account data changed
        after, upto = window.after(users), window.upto(users)
        return store.changed(self.ctx.conn, window.user_id, room_id, after, upto)

    def room_extras(self, window: SyncWindow, room: JoinedRoom) -> RoomExtras | None:
        events = self._changed(window, room.room_id)
        return RoomExtras(account_data=events) if events else None

    def touched(self, window: SyncWindow) -> AbstractSet[str] | None:
        users = self.ctx.names.users_stream
        after = window.after(users)
        if after is None:
            return None  # an initial sync: every room may have account data
        if not window.moved(users):
            return frozenset()
        return store.rooms_changed(self.ctx.conn, window.user_id, after, window.upto(users))

    def top_extras(self, window: SyncWindow) -> dict[str, Any]:
        events = self._changed(window, GLOBAL)
        return {"account_data": events} if events else {}
