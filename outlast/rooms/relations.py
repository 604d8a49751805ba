"""``/relations`` and ``/threads``: a room's related events, seen as ``/messages`` sees them.

The projector indexes every stored event with a cleartext ``m.relates_to``
(rooms/tables.py ``relations``); paging and the walk for ``recurse`` are pure
(core/relation_pages.py). What a user may see is decided exactly as for
``/messages``: the parent (or thread root) must be visible to them, and
children they may not see are left out before a page is cut, so pages are
never short of what the user may read.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

from outlast.account_data import tables as account_data
from outlast.accounts.service import Requester
from outlast.context import SiteContext
from outlast.core import relation_pages
from outlast.core.errors import forbidden, invalid_param
from outlast.core.relation_pages import Child, RelationsQuery, ThreadRoot
from outlast.core.tokens import Position
from outlast.rooms import tables
from outlast.rooms.messages import Messages
from outlast.rooms.render import render, visible_rows
from outlast.sync.window import EventDecorator, no_decoration
from outlast.view import queries

THREADS_DEFAULT_LIMIT = 20
THREADS_MAX_LIMIT = 100


def _position(row: sqlite3.Row) -> Position:
    return (int(row["seq"]), int(row["idx"]))


class Relations:
    def __init__(
        self, ctx: SiteContext, messages: Messages, decorate: EventDecorator = no_decoration
    ) -> None:
        self.ctx = ctx
        self.messages = messages
        self.decorate = decorate

    async def _boundary(self, room_id: str, token: str | None) -> Position | None:
        """A ``from``/``to`` token (``/relations``, ``/messages`` or ``/sync``), once this
        view has reached it."""
        if not token:
            return None
        position = self.messages.boundary(room_id, token)
        stream = self.messages.room_stream(room_id)
        await self.ctx.positions.wait_for(stream, position[0] - 1, 5.0)
        return position

    async def relations(
        self,
        who: Requester,
        room_id: str,
        event_id: str,
        rel_type: str | None,
        event_type: str | None,
        query: Mapping[str, str],
    ) -> dict[str, Any]:
        """GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]]"""
        parsed = relation_pages.parse_query(rel_type, event_type, query)
        start = await self._boundary(room_id, query.get("from"))
        end = await self._boundary(room_id, query.get("to"))
        self.messages.event(who, room_id, event_id)  # 404 unless the parent is visible
        rows = self._children(room_id, event_id, parsed)
        changes = queries.membership_changes(self.ctx.conn, room_id, who.user_id)
        ignored = account_data.ignored_users(self.ctx.conn, who.user_id)  # as /messages
        visible = visible_rows(rows, changes, who.user_id, ignored)
        by_position = {_position(r): r for r in visible}
        cut = relation_pages.page(
            sorted(by_position),
            start=start,
            end=end,
            forwards=parsed.forwards,
            limit=parsed.limit,
        )
        now_ms = self.ctx.now_ms()
        chunk = [
            render(by_position[p], who.device_id, who.user_id, now_ms=now_ms, changes=changes)
            for p in cut.positions
        ]
        self.decorate(who.user_id, chunk)
        body: dict[str, Any] = {"chunk": chunk}
        if cut.next_batch is not None:
            body["next_batch"] = cut.next_batch
        if query.get("from"):
            body["prev_batch"] = query["from"]
        if "recurse" in query or "org.matrix.msc3981.recurse" in query:
            body["recursion_depth"] = relation_pages.MAX_DEPTH if parsed.recurse else 1
        return body

    def _children(self, room_id: str, parent_id: str, query: RelationsQuery) -> list[sqlite3.Row]:
        """The matching children (recursively if asked) that sit in this room."""
        seen: dict[str, sqlite3.Row] = {}

        def children_of(event_id: str) -> list[Child]:
            out = []
            for row in tables.children_rows(self.ctx.conn, [event_id]):
                if row["room_id"] != room_id:
                    continue  # an event elsewhere naming this one is not its child
                seen[str(row["event_id"])] = row
                out.append(
                    Child(
                        str(row["event_id"]),
                        event_id,
                        str(row["rel_type"]),
                        str(row["type"]),
                        _position(row),
                    )
                )
            return out

        found = relation_pages.related(parent_id, children_of, query)
        return [seen[child.event_id] for child in found]

    async def threads(
        self, who: Requester, room_id: str, query: Mapping[str, str]
    ) -> dict[str, Any]:
        """GET /_matrix/client/v1/rooms/{roomId}/threads"""
        include = query.get("include", "all")
        limit = _threads_limit(query.get("limit"))
        start = await self._boundary(room_id, query.get("from"))
        conn = self.ctx.conn
        changes = queries.membership_changes(conn, room_id, who.user_id)
        if queries.room(conn, room_id) is None:
            raise forbidden("you are not in this room")
        if not changes:
            state = queries.current_state(conn, room_id)
            vis = state.get(("m.room.history_visibility", ""), {}).get("content", {})
            if vis.get("history_visibility") != "world_readable":
                raise forbidden("you are not in this room")
        replies = visible_rows(tables.thread_rows(conn, room_id), changes, who.user_id)
        latest: dict[str, Position] = {}
        senders: dict[str, set[str]] = {}
        for row in replies:
            root_id = str(row["parent_id"])
            latest[root_id] = max(latest.get(root_id, (0, 0)), _position(row))
            senders.setdefault(root_id, set()).add(str(row["sender"]))
        stored = [queries.event_row(conn, root_id) for root_id in latest]
        candidates = [r for r in stored if r is not None and r["room_id"] == room_id]
        roots = {str(r["event_id"]): r for r in visible_rows(candidates, changes, who.user_id)}
        threads = [
            ThreadRoot(root_id, latest[root_id], frozenset({str(row["sender"]), *senders[root_id]}))
            for root_id, row in roots.items()
        ]
        chosen, next_batch = relation_pages.thread_page(
            threads, who.user_id, include=include, start=start, limit=limit
        )
        now_ms = self.ctx.now_ms()
        chunk = [
            render(roots[t.root_id], who.device_id, who.user_id, now_ms=now_ms, changes=changes)
            for t in chosen
        ]
        self.decorate(who.user_id, chunk)
        body: dict[str, Any] = {"chunk": chunk}
        if next_batch is not None:
            body["next_batch"] = next_batch
        return body


def _threads_limit(raw: str | None) -> int:
    """``limit`` of ``/threads``: an integer greater than zero (clamped to the maximum)."""
    if raw is None or raw == "":
        return THREADS_DEFAULT_LIMIT
    if not (raw.isascii() and raw.isdigit() and len(raw) < 10) or int(raw) < 1:
        raise invalid_param("limit must be an integer greater than zero")
    return min(int(raw), THREADS_MAX_LIMIT)
