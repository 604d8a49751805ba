"""GET /rooms/{roomId}/context/{eventId}: an event, its neighbours and the room's state.

Built from /event and two /messages pages, so it shows exactly what those would.
"""

from __future__ import annotations

from typing import Any

from outlast.accounts.service import Requester
from outlast.context import SiteContext
from outlast.core.filters import EventFilter
from outlast.core.tokens import encode_boundary
from outlast.rooms.messages import Messages
from outlast.view import queries

MAX_CONTEXT = 100


class RoomContext:
    def __init__(self, ctx: SiteContext, messages: Messages) -> None:
        self.ctx = ctx
        self.messages = messages

    def context(
        self, who: Requester, room_id: str, event_id: str, limit: int, event_filter: EventFilter
    ) -> dict[str, Any]:
        """GET /rooms/{roomId}/context/{eventId}: the event, its neighbours and the state."""
        messages = self.messages
        event = messages.event(who, room_id, event_id)  # 404 unless the user may see it
        row = queries.event_row(self.ctx.conn, event_id)
        assert row is not None
        position = (int(row["seq"]), int(row["idx"]))
        limit = max(0, min(limit, MAX_CONTEXT))
        before_limit = limit // 2
        before = messages.page(who, room_id, position, None, True, before_limit, event_filter)
        after = messages.page(
            who,
            room_id,
            (position[0], position[1] + 1),
            None,
            False,
            limit - before_limit,
            event_filter,
        )
        events_before: list[dict[str, Any]] = before["chunk"]
        events_after: list[dict[str, Any]] = after["chunk"]
        first = _position(self.ctx, events_before[-1]) if events_before else position
        last = _position(self.ctx, events_after[-1]) if events_after else position
        state = queries.state_before(self.ctx.conn, room_id, (last[0], last[1] + 1))
        return {
            "event": event,
            "events_before": events_before,
            "events_after": events_after,
            "start": before.get("end") or encode_boundary(first),
            "end": after.get("end") or encode_boundary((last[0], last[1] + 1)),
            "state": [e for e in state.values() if event_filter.matches(e)],
        }


def _position(ctx: SiteContext, event: dict[str, Any]) -> tuple[int, int]:
    row = queries.event_row(ctx.conn, event["event_id"])
    return (int(row["seq"]), int(row["idx"])) if row is not None else (0, 0)
