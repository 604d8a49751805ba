"""Finding rooms and people: aliases, the public room directory, the user directory.

- An alias is unique across sites: its subject on the directory stream is
  fenced, at 0 for a fresh alias and at the subject's last sequence (a
  deletion) to claim it again. Deleting is fenced the same way, so a delete
  cannot remove an alias someone else re-created in between.
- A room's directory visibility is a fact on the room's own partition
  (subject ``…<room>.directory``), so it is ordered with the room's events.
- /publicRooms and the user directory are computed from the view on demand.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from outlast.accounts.service import Requester
from outlast.context import SiteContext
from outlast.core import aliases, auth, ids
from outlast.core.errors import MatrixError, bad_json, forbidden, invalid_param, not_found
from outlast.core.room_summary import public_chunk
from outlast.directory import tables
from outlast.log.client import FenceFailed, LogUnavailable
from outlast.log.facts import AliasDeleted, AliasSet, Fact, RoomListed
from outlast.rooms.writer import RoomWriter, checked
from outlast.view import queries
from outlast.view.queries import StateMap

log = logging.getLogger(__name__)

CANONICAL_ALIAS = "m.room.canonical_alias"
_SINCE = re.compile(r"o([0-9]{1,9})")
MAX_PUBLIC_ROOMS = 500
MAX_USER_RESULTS = 100


def _conflict(alias: str) -> MatrixError:
    return MatrixError(409, "M_ROOM_IN_USE", f"room alias {alias} already exists")


class Directory:
    def __init__(self, ctx: SiteContext, writer: RoomWriter) -> None:
        self.ctx = ctx
        self.writer = writer

    # --- for room creation ----------------------------------------------------

    def may_publish(self, user_id: str) -> bool:
        """Whether this user may make rooms public in the directory at all (config)."""
        if self.ctx.config.directory.users_may_publish:
            return True
        row = queries.user(self.ctx.conn, user_id)
        return bool(row is not None and row["admin"])

    def check_may_publish(self, user_id: str) -> None:
        if not self.may_publish(user_id):
            raise forbidden("only server administrators may publish rooms to the directory")

    async def publish(self, room_id: str, user_id: str, visibility: str) -> None:
        """Record a room's directory visibility (checks are the caller's)."""
        fact = RoomListed(room_id, visibility, user_id)
        ack = await self.ctx.log.append(self.ctx.names.directory_subject(room_id), fact)
        await self.ctx.applied(ack)

    async def claim_alias(self, alias: str, room_id: str, creator: str) -> str:
        """Aliases are unique across sites: the alias subject must not exist yet."""
        if queries.alias_target(self.ctx.conn, alias) is not None:
            raise MatrixError(400, "M_ROOM_IN_USE", "that alias is taken")
        fact = AliasSet(alias, room_id, creator)
        try:
            ack = await self.ctx.log.append(
                self.ctx.names.alias_subject(alias), fact, expected_seq=0
            )
        except FenceFailed:
            raise MatrixError(400, "M_ROOM_IN_USE", "that alias is taken") from None
        await self.ctx.applied(ack)
        return alias

    # --- aliases ------------------------------------------------------------

    def _local_alias(self, alias: str) -> str:
        if not ids.is_room_alias(alias):
            raise invalid_param("not a valid room alias")
        if alias.partition(":")[2] != self.ctx.server_name:
            raise invalid_param("aliases can only be managed on their own server")
        return alias

    async def resolve(self, alias: str) -> dict[str, Any]:
        if not ids.is_room_alias(alias):
            raise invalid_param("not a valid room alias")
        row = tables.alias_row(self.ctx.conn, alias)
        if row is None and await self.ctx.catch_up(self.ctx.names.directory_stream):
            row = tables.alias_row(self.ctx.conn, alias)
        if row is None:
            raise not_found(f"room alias {alias} not found")
        return {"room_id": row["room_id"], "servers": [self.ctx.server_name]}

    async def put_alias(self, who: Requester, alias: str, room_id: Any) -> None:
        self._local_alias(alias)
        if not isinstance(room_id, str) or not ids.is_room_id(room_id):
            raise bad_json("room_id must be a room id")
        state = queries.current_state(self.ctx.conn, room_id)
        if not state:
            raise not_found("unknown room")
        if auth.membership(state, who.user_id) != "join":
            raise forbidden("you must be in the room to give it an alias")
        last = await self._alias_seq(alias)
        if last == 0:
            try:
                await self.claim_alias(alias, room_id, who.user_id)
            except MatrixError as exc:
                if exc.errcode == "M_ROOM_IN_USE":
                    raise _conflict(alias) from None
                raise
            return
        if tables.alias_row(self.ctx.conn, alias) is not None:
            raise _conflict(alias)
        # The alias existed and was deleted: claim it again, fenced on the deletion.
        fact = AliasSet(alias, room_id, who.user_id)
        await self._fenced(alias, fact, last, _conflict(alias))

    async def delete_alias(self, who: Requester, alias: str) -> None:
        self._local_alias(alias)
        last = await self._alias_seq(alias)
        row = tables.alias_row(self.ctx.conn, alias)
        if row is None:
            raise not_found(f"room alias {alias} not found")
        if not self._may_delete(who.user_id, row):
            raise forbidden("only the alias's creator or a room moderator may delete it")
        conflict = MatrixError(409, "M_UNKNOWN", "the alias changed meanwhile; try again")
        await self._fenced(alias, AliasDeleted(alias), last, conflict)
        try:
            await self._unlist(who.user_id, str(row["room_id"]), alias)
        except (MatrixError, LogUnavailable) as exc:
            # The alias is gone either way; a user without the power to change the
            # canonical alias event leaves it naming a dead alias, as Synapse does.
            log.info("canonical alias of %s keeps deleted %s: %s", row["room_id"], alias, exc)

    async def _unlist(self, user_id: str, room_id: str, alias: str) -> None:
        """Take a deleted alias out of the room's ``m.room.canonical_alias`` event."""

        def build(state: StateMap) -> list[dict[str, Any]]:
            current = state.get((CANONICAL_ALIAS, ""))
            content = (
                aliases.without_alias(current.get("content") or {}, alias) if current else None
            )
            if content is None:
                return []
            event = self.writer.build_event(room_id, user_id, CANONICAL_ALIAS, content, "")
            checked(state, event)
            return [event]

        await self.writer.commit(room_id, build)

    def _may_delete(self, user_id: str, row: Any) -> bool:
        if row["creator"] == user_id:
            return True
        account = queries.user(self.ctx.conn, user_id)
        if account is not None and account["admin"]:
            return True
        state = queries.current_state(self.ctx.conn, row["room_id"])
        if auth.membership(state, user_id) != "join":
            return False
        levels = auth.power_levels(state)
        return levels.user_level(user_id) >= levels.event_level(CANONICAL_ALIAS, True)

    async def _alias_seq(self, alias: str) -> int:
        """The alias subject's last sequence, with this view caught up to it."""
        last = await self.ctx.log.last_subject_seq(
            self.ctx.names.directory_stream, self.ctx.names.alias_subject(alias)
        )
        await self.ctx.positions.wait_for(self.ctx.names.directory_stream, last, 5.0)
        return last

    async def _fenced(self, alias: str, fact: Fact, expected: int, conflict: MatrixError) -> None:
        try:
            ack = await self.ctx.log.append(
                self.ctx.names.alias_subject(alias), fact, expected_seq=expected
            )
        except FenceFailed:
            raise conflict from None
        await self.ctx.applied(ack)

    def room_aliases(self, who: Requester, room_id: str) -> list[str]:
        state = queries.current_state(self.ctx.conn, room_id)
        if not state:
            raise forbidden("you are not in this room")
        vis = state.get(("m.room.history_visibility", ""), {}).get("content", {})
        joined = auth.membership(state, who.user_id) == "join"
        if not joined and vis.get("history_visibility") != "world_readable":
            raise forbidden("you are not in this room")
        return tables.room_aliases(self.ctx.conn, room_id)

    # --- the public room directory --------------------------------------------

    def visibility(self, room_id: str) -> str:
        if queries.room(self.ctx.conn, room_id) is None:
            raise not_found("unknown room")
        return tables.visibility(self.ctx.conn, room_id)

    async def set_visibility(self, who: Requester, room_id: str, visibility: Any) -> None:
        if visibility is None:
            visibility = "public"
        if visibility not in ("public", "private"):
            raise invalid_param("visibility must be public or private")
        state = queries.current_state(self.ctx.conn, room_id)
        if not state:
            raise not_found("unknown room")
        account = queries.user(self.ctx.conn, who.user_id)
        admin = account is not None and bool(account["admin"])
        if not admin:
            if auth.membership(state, who.user_id) != "join":
                raise forbidden("you are not joined to this room")
            levels = auth.power_levels(state)
            if levels.user_level(who.user_id) < levels.state_default:
                raise forbidden("insufficient power level to change the room's listing")
        if visibility == "public":
            self.check_may_publish(who.user_id)
        if tables.visibility(self.ctx.conn, room_id) == visibility:
            return
        await self.publish(room_id, who.user_id, visibility)

    def public_rooms(
        self, limit: Any, since: Any, search: Any, room_types: Any, server: Any
    ) -> dict[str, Any]:
        if server not in (None, "", self.ctx.server_name):
            raise invalid_param("only this server's directory can be listed")
        limit = _limit(limit)
        offset = _offset(since)
        if search is not None and not isinstance(search, str):
            raise bad_json("generic_search_term must be a string")
        if room_types is not None and not isinstance(room_types, list):
            raise bad_json("room_types must be a list")
        entries = [public_chunk(*room) for room in tables.published_rooms(self.ctx.conn)]
        total = len(entries)
        if search:
            term = search.casefold()
            entries = [e for e in entries if _matches(e, term)]
        if room_types is not None:
            entries = [e for e in entries if e.get("room_type") in room_types]
        entries.sort(key=lambda e: (-e["num_joined_members"], e["room_id"]))
        page = entries[offset : offset + limit]
        body: dict[str, Any] = {"chunk": page, "total_room_count_estimate": total}
        if limit and offset + limit < len(entries):
            body["next_batch"] = f"o{offset + limit}"
        if offset > 0:
            body["prev_batch"] = f"o{max(0, offset - limit)}"
        return body

    # --- the user directory ----------------------------------------------------

    def search_users(self, who: Requester, term: Any, limit: Any) -> dict[str, Any]:
        if not isinstance(term, str):
            raise bad_json("search_term must be a string")
        if limit is None:
            limit = 10
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise bad_json("limit must be a non-negative integer")
        limit = min(limit, MAX_USER_RESULTS)
        needle = term.strip().casefold()
        found = []
        for user_id, name, avatar in tables.directory_candidates(self.ctx.conn, who.user_id):
            shown = name if isinstance(name, str) else None
            if needle not in user_id.casefold() and needle not in (shown or "").casefold():
                continue
            rank = 0 if user_id[1:].casefold().startswith(needle) else 1
            if shown is not None and shown.casefold().startswith(needle):
                rank = 0
            entry: dict[str, Any] = {"user_id": user_id}
            if shown is not None:
                entry["display_name"] = shown
            if isinstance(avatar, str):
                entry["avatar_url"] = avatar
            found.append((rank, shown is None, user_id, entry))
        found.sort(key=lambda item: item[:3])
        return {"results": [e for *_, e in found[:limit]], "limited": len(found) > limit}


def _limit(limit: Any) -> int:
    if limit is None or limit == "":
        return MAX_PUBLIC_ROOMS
    if isinstance(limit, str):
        if not limit.isascii() or not limit.isdigit() or len(limit) > 9:
            raise invalid_param("limit must be a non-negative integer")
        limit = int(limit)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise invalid_param("limit must be a non-negative integer")
    return min(limit, MAX_PUBLIC_ROOMS)


def _offset(since: Any) -> int:
    if since is None or since == "":
        return 0
    match = _SINCE.fullmatch(since) if isinstance(since, str) else None
    if match is None:
        raise invalid_param("invalid since token")
    return int(match.group(1))


def _matches(entry: dict[str, Any], term: str) -> bool:
    return any(
        term in str(entry.get(key) or "").casefold()
        for key in ("name", "topic", "canonical_alias", "room_id")
    )
