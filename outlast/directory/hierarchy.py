"""Space hierarchies: the rooms below a space that the requester may see.

The walk itself is pure (:mod:`outlast.core.hierarchy`); this service reads
each room's current state from the view and decides visibility: a room is
shown to a user who is joined or invited, or when it is world readable or
public. Anything else is left out with everything below it, so a private
room's name never leaks through a public space.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from outlast.context import SiteContext
from outlast.core import auth, hierarchy
from outlast.core.errors import forbidden
from outlast.core.hierarchy import SpaceRoom
from outlast.core.room_summary import public_chunk
from outlast.view import queries


class Hierarchy:
    def __init__(self, ctx: SiteContext) -> None:
        self.ctx = ctx

    def _room(self, user_id: str, room_id: str) -> SpaceRoom | None:
        state = queries.current_state(self.ctx.conn, room_id)
        if not state:
            return None
        contents = {t: e.get("content", {}) for (t, key), e in state.items() if key == ""}
        joined = sum(
            1 for (t, _), e in state.items() if t == auth.MEMBER and _membership(e) == "join"
        )
        visibility = contents.get("m.room.history_visibility", {}).get("history_visibility")
        visible = (
            auth.membership(state, user_id) in ("join", "invite")
            or visibility == "world_readable"
            or auth.join_rule(state) == "public"
        )
        kids = [e for (t, _), e in state.items() if t == hierarchy.SPACE_CHILD]
        return SpaceRoom(public_chunk(room_id, joined, contents), kids, visible)

    def hierarchy(self, user_id: str, room_id: str, query: Mapping[str, str]) -> dict[str, Any]:
        """GET /rooms/{roomId}/hierarchy: 403 when the root is unknown or not visible."""
        request = hierarchy.parse(query)
        root = self._room(user_id, room_id)
        if root is None or not root.visible:
            raise forbidden("you may not view this room")
        return hierarchy.page(room_id, lambda r: self._room(user_id, r), request)


def _membership(event: Mapping[str, Any]) -> Any:
    content = event.get("content")
    return content.get("membership") if isinstance(content, Mapping) else None
