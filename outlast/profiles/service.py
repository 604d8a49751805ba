"""Profiles: display name, avatar and custom fields, and their echo in member events.

A profile field is a fact on the user's ``profile`` subject (one fact per
field, so concurrent changes of different fields at different sites both
survive). After the fact is committed, the user's ``m.room.member`` event
is re-sent in every room they are joined to, each through the room writer
with its usual fence, so other members see the new name. If the worker dies
between the two steps the profile is saved and the rooms catch up at the
user's next profile change or join; the profile fact is the truth.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from outlast.accounts.service import Requester
from outlast.context import SiteContext
from outlast.core import ids
from outlast.core.errors import MatrixError, bad_json, forbidden, not_found
from outlast.core.events import canonical_json
from outlast.log.client import LogUnavailable
from outlast.log.facts import Fact, ProfileDeleted, ProfileSet
from outlast.profiles import tables
from outlast.profiles.tables import AVATAR_URL, DISPLAYNAME, MEMBER_FIELDS, member_fields
from outlast.rooms.writer import RoomWriter, checked
from outlast.view import queries
from outlast.view.queries import StateMap

log = logging.getLogger(__name__)

# avatar_url, displayname, or a namespaced custom field (the spec's key grammar).
_KEY = re.compile(r"avatar_url|displayname|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
MAX_DISPLAYNAME = 256
MAX_AVATAR_URL = 1024
MAX_PROFILE_BYTES = 65_536


class _Skip(Exception):
    """Nothing to send in this room: the user left it, or it already shows the profile."""


class Profiles:
    def __init__(self, ctx: SiteContext, writer: RoomWriter) -> None:
        self.ctx = ctx
        self.writer = writer

    def _key(self, key: str) -> str:
        if not _KEY.fullmatch(key) or len(key) > 255:
            raise MatrixError(400, "M_INVALID_PARAM", "invalid profile key")
        return key

    async def _known_user(self, user_id: str) -> None:
        if not ids.is_user_id(user_id):
            raise MatrixError(400, "M_INVALID_PARAM", "not a user id")
        if queries.user(self.ctx.conn, user_id) is None:
            await self.ctx.catch_up(self.ctx.names.users_stream)
        row = queries.user(self.ctx.conn, user_id)
        if row is None or row["deactivated"]:
            raise not_found("no such user")

    async def get(self, user_id: str) -> dict[str, Any]:
        await self._known_user(user_id)
        return tables.profile(self.ctx.conn, user_id)

    async def get_field(self, user_id: str, key: str) -> dict[str, Any]:
        self._key(key)
        stored = await self.get(user_id)
        if key in stored:
            return {key: stored[key]}
        if key in MEMBER_FIELDS:
            return {}  # an unset name or avatar is not an error for clients
        raise not_found("no such profile field")

    async def set_field(self, who: Requester, user_id: str, key: str, body: dict[str, Any]) -> None:
        if who.user_id != user_id:
            raise forbidden("you can only change your own profile")
        self._key(key)
        if key not in body:
            raise bad_json(f"the body must contain {key!r}")
        value = _checked_value(key, body[key])
        current = tables.profile(self.ctx.conn, user_id)
        if key in current and current[key] == value:
            return
        if len(canonical_json({**current, key: value})) > MAX_PROFILE_BYTES:
            raise MatrixError(400, "M_PROFILE_TOO_LARGE", "the profile would exceed 64 KiB")
        fact: Fact
        if value is None and key in MEMBER_FIELDS:
            fact = ProfileDeleted(user_id, key)
        else:
            fact = ProfileSet(user_id, key, value)
        await self._append(user_id, fact)
        if key in MEMBER_FIELDS:
            await self._update_rooms(user_id)

    async def delete_field(self, who: Requester, user_id: str, key: str) -> None:
        if who.user_id != user_id:
            raise forbidden("you can only change your own profile")
        self._key(key)
        if key not in tables.profile(self.ctx.conn, user_id):
            return
        await self._append(user_id, ProfileDeleted(user_id, key))
        if key in MEMBER_FIELDS:
            await self._update_rooms(user_id)

    async def _append(self, user_id: str, fact: Fact) -> None:
        ack = await self.ctx.log.append(self.ctx.names.user_subject(user_id, "profile"), fact)
        await self.ctx.applied(ack)

    async def _update_rooms(self, user_id: str) -> None:
        """Re-send the user's join event in every joined room with the new profile."""
        for room_id in queries.joined_rooms(self.ctx.conn, user_id):
            try:
                await self._update_room(user_id, room_id)
            except _Skip:
                continue
            except (MatrixError, LogUnavailable) as exc:
                # One room refusing (e.g. it is being torn down) must not fail the others.
                log.warning("profile update in %s for %s failed: %s", room_id, user_id, exc)

    async def _update_room(self, user_id: str, room_id: str) -> None:
        fields = member_fields(self.ctx.conn, user_id)

        def build(state: StateMap) -> list[dict[str, Any]]:
            previous = state.get(("m.room.member", user_id))
            old = (previous or {}).get("content", {})
            if old.get("membership") != "join":
                raise _Skip()
            content = {
                k: v
                for k, v in old.items()
                if k not in ("reason", "join_authorised_via_users_server", *MEMBER_FIELDS)
            }
            content.update(fields)
            content.setdefault(DISPLAYNAME, ids.parse_user_id(user_id)[0])
            if all(content.get(k) == old.get(k) for k in MEMBER_FIELDS):
                raise _Skip()
            event = self.writer.build_event(room_id, user_id, "m.room.member", content, user_id)
            checked(state, event)
            return [event]

        await self.writer.commit(room_id, build)


def _checked_value(key: str, value: Any) -> Any:
    if key == DISPLAYNAME:
        if value is not None and not isinstance(value, str):
            raise bad_json("displayname must be a string")
        if isinstance(value, str) and len(value) > MAX_DISPLAYNAME:
            raise bad_json(f"displayname must be at most {MAX_DISPLAYNAME} characters")
        return value or None
    if key == AVATAR_URL:
        if value is not None and not isinstance(value, str):
            raise bad_json("avatar_url must be a string")
        if isinstance(value, str) and len(value) > MAX_AVATAR_URL:
            raise bad_json("avatar_url is too long")
        return value or None
    return value
