"""Joining, knocking, inviting, leaving, kicking, banning: membership events through the
room writer."""

from __future__ import annotations

from typing import Any

from outlast.context import SiteContext
from outlast.core import auth, ids, restricted
from outlast.core.canonical_json import check_content
from outlast.core.errors import MatrixError, bad_json, forbidden, not_found
from outlast.log.facts import RoomForgotten
from outlast.profiles.tables import member_fields
from outlast.rooms.writer import RoomWriter, checked
from outlast.view import queries
from outlast.view.queries import StateMap

# Keys of a /join body that are not member event content.
JOIN_BODY_ONLY = ("membership", "reason", "third_party_signed")


class Memberships:
    def __init__(self, ctx: SiteContext, writer: RoomWriter) -> None:
        self.ctx = ctx
        self.writer = writer

    async def resolve(self, room_id_or_alias: str) -> str:
        if ids.is_room_id(room_id_or_alias):
            return room_id_or_alias
        if ids.is_room_alias(room_id_or_alias):
            target = queries.alias_target(self.ctx.conn, room_id_or_alias)
            if target is None and await self.ctx.catch_up(self.ctx.names.directory_stream):
                target = queries.alias_target(self.ctx.conn, room_id_or_alias)
            if target is None:
                raise not_found("room alias not found")
            return target
        raise MatrixError(400, "M_INVALID_PARAM", "expected a room id or alias")

    async def change(
        self,
        sender: str,
        room_id: str,
        target: str,
        membership: str,
        *,
        reason: Any = None,
        extra: dict[str, Any] | None = None,
        only_from: tuple[str, ...] | None = None,
    ) -> str:
        """Commit one membership change; returns its event id. With ``only_from``, the
        target's current membership must be one of those (else 403): a kick needs a
        member, an unban a ban, though the auth rules would let either through."""
        if not ids.is_user_id(target):
            raise MatrixError(400, "M_INVALID_PARAM", "not a user id")
        if reason is not None and not isinstance(reason, str):
            raise bad_json("reason must be a string")

        def build(state: StateMap) -> list[dict[str, Any]]:
            if only_from is not None and auth.membership(state, target) not in only_from:
                raise forbidden(f"{target} is not {' or '.join(only_from)} in this room")
            content: dict[str, Any] = {**(extra or {}), "membership": membership}
            previous = state.get(("m.room.member", target))
            if membership in ("join", "invite"):
                # The stored profile wins; else the previous name; else the localpart.
                # An invite carries the invitee's profile too, so clients can name them.
                content = {**member_fields(self.ctx.conn, target), **content}
                name = (previous or {}).get("content", {}).get("displayname")
                content.setdefault("displayname", name or ids.parse_user_id(target)[0])
            if reason:
                content["reason"] = reason[:1024]
            event = self.writer.build_event(room_id, sender, "m.room.member", content, target)
            checked(state, event)
            return [event]

        events = await self.writer.commit(room_id, build)
        return str(events[0]["event_id"])

    async def join(
        self, user_id: str, room_id_or_alias: str, body: dict[str, Any] | None = None
    ) -> str:
        """Join; the body's other keys (``reason`` and any custom ones) go into the member
        event's content, as in Synapse."""
        body = body or {}
        extra = {k: v for k, v in body.items() if k not in JOIN_BODY_ONLY}
        check_content(extra)
        room_id = await self.resolve(room_id_or_alias)
        if await self._already(user_id, room_id, "join"):
            return room_id  # joining again is a no-op, as in the reference servers
        state = queries.current_state(self.ctx.conn, room_id)
        vouch = restricted.authoriser(state, user_id, queries.joined_rooms(self.ctx.conn, user_id))
        if vouch:
            extra = {**extra, "join_authorised_via_users_server": vouch}
        await self.change(user_id, room_id, user_id, "join", reason=body.get("reason"), extra=extra)
        return room_id

    async def knock(self, user_id: str, room_id_or_alias: str, reason: Any = None) -> str:
        """Ask to join (membership ``knock``); the room's members answer with an invite
        (accept) or a kick (deny), the knocker may withdraw by leaving (rescind)."""
        room_id = await self.resolve(room_id_or_alias)
        if not queries.current_state(self.ctx.conn, room_id):
            raise not_found("unknown room")
        await self.change(user_id, room_id, user_id, "knock", reason=reason)
        return room_id

    async def leave(self, user_id: str, room_id: str, reason: Any = None) -> None:
        if not queries.current_state(self.ctx.conn, room_id):
            raise not_found("unknown room")
        if await self._already(user_id, room_id, "leave"):
            return
        await self.change(user_id, room_id, user_id, "leave", reason=reason)

    async def _already(self, user_id: str, room_id: str, membership: str) -> bool:
        """Whether ``user_id`` already has ``membership``, judged on a current view.

        A no-op writes nothing, so no fence or projector re-judges it: decided
        on a view that has not yet seen a leave made at another site a moment
        ago, a join would answer 200 and leave the user out of the room.
        """
        state = queries.current_state(self.ctx.conn, room_id)
        if not state or auth.membership(state, user_id) != membership:
            return False
        await self.ctx.make_current(self.writer.subjects(room_id).stream)
        state = queries.current_state(self.ctx.conn, room_id)
        return bool(state) and auth.membership(state, user_id) == membership

    async def forget(self, user_id: str, room_id: str) -> None:
        if queries.membership(self.ctx.conn, room_id, user_id) in ("join", "invite"):
            raise MatrixError(400, "M_UNKNOWN", "leave the room before forgetting it")
        if queries.room(self.ctx.conn, room_id) is None:
            raise not_found("unknown room")
        fact = RoomForgotten(user_id, room_id)
        ack = await self.ctx.log.append(self.ctx.names.user_data_subject(user_id), fact)
        await self.ctx.applied(ack)

    def joined_rooms(self, user_id: str) -> list[str]:
        """GET /joined_rooms, and the rooms a deactivation leaves."""
        return queries.joined_rooms(self.ctx.conn, user_id)

    def require_room(self, room_id: str) -> StateMap:
        state = queries.current_state(self.ctx.conn, room_id)
        if not state:
            raise forbidden("you are not in this room")
        return state
