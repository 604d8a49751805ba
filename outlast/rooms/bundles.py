"""Bundled aggregations: ``unsigned["m.relations"]`` on events as they are served.

Every path that serves room events to a user (``/messages``, ``/context``,
``/event``, ``/sync`` timelines, ``/relations``, ``/threads``) runs its page
through :meth:`Bundler.decorate`, which reads the children of the whole page
in one query and applies the spec's rules (core/relations.py):

- ``m.replace``: the most recent valid edit (same sender, room and type), whole.
  The original's ``content`` is served unchanged in every room version: since
  spec v1.7 servers must not apply the edit, clients do.
- ``m.thread``: ``latest_event`` (itself carrying its edit and references),
  ``count``, ``current_user_participated``.
- ``m.reference``: the referring event IDs.

Only children the user may see (history visibility, as ``/messages``) count.
Reactions (``m.annotation``) are not bundled: spec v1.7 dropped that
aggregation, clients count the reaction events they receive themselves.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from typing import Any

from outlast.context import SiteContext
from outlast.core import relations
from outlast.rooms import tables
from outlast.rooms.render import render, visible_rows
from outlast.view import queries

BUNDLED = (relations.REPLACE, relations.THREAD, relations.REFERENCE)


class Bundler:
    def __init__(self, ctx: SiteContext) -> None:
        self.ctx = ctx

    def decorate(self, user_id: str, events: list[dict[str, Any]]) -> None:
        """Set ``unsigned["m.relations"]`` on those of ``events`` that have children
        (an EventDecorator: the events are changed in place)."""
        targets = [e for e in events if isinstance(e.get("event_id"), str) and "state_key" not in e]
        if not targets:
            return
        by_parent = self._visible_children(user_id, [e["event_id"] for e in targets])
        now_ms = self.ctx.now_ms()
        for event in targets:
            kids = by_parent.get(event["event_id"])
            if not kids:
                continue
            rendered = self._aggregate(user_id, event, kids, now_ms)
            event.clear()
            event.update(rendered)

    def _visible_children(
        self, user_id: str, parent_ids: list[str]
    ) -> dict[str, list[sqlite3.Row]]:
        """The children of ``parent_ids`` of a bundled type the user may see, oldest first."""
        rows = [
            r for r in tables.children_rows(self.ctx.conn, parent_ids) if r["rel_type"] in BUNDLED
        ]
        by_room: dict[str, list[sqlite3.Row]] = defaultdict(list)
        for row in rows:
            by_room[str(row["room_id"])].append(row)
        out: dict[str, list[sqlite3.Row]] = defaultdict(list)
        for room_id, room_rows in by_room.items():
            changes = queries.membership_changes(self.ctx.conn, room_id, user_id)
            for row in visible_rows(room_rows, changes, user_id):
                out[str(row["parent_id"])].append(row)
        return out

    def _aggregate(
        self,
        user_id: str,
        event: dict[str, Any],
        kids: list[sqlite3.Row],
        now_ms: int,
        *,
        nested: bool = False,
    ) -> dict[str, Any]:
        same_room = [r for r in kids if r["room_id"] == event.get("room_id")]

        def served(rows: list[sqlite3.Row]) -> list[dict[str, Any]]:
            return [render(r, None, user_id, now_ms=now_ms) for r in rows]

        def of(rel_type: str) -> list[sqlite3.Row]:
            return [r for r in same_room if r["rel_type"] == rel_type]

        replacement = relations.latest_replacement(event, served(of(relations.REPLACE)))
        references = relations.reference_chunk(_outline(of(relations.REFERENCE)))
        summary = None
        if not nested:  # a thread inside a thread is refused at sending; never bundle deeper
            # Counting needs only who sent what where; only the latest reply is decoded.
            replies = of(relations.THREAD)
            summary = relations.thread_summary(event, _outline(replies), user_id)
        if summary is not None:
            last = next(r for r in replies if r["event_id"] == summary["latest_event"]["event_id"])
            latest = summary["latest_event"] = render(last, None, user_id, now_ms=now_ms)
            # The latest reply carries its own edit and references (one level: a
            # thread reply cannot be a thread root).
            grandkids = self._visible_children(user_id, [latest["event_id"]])
            if grandkids.get(latest["event_id"]):
                summary["latest_event"] = self._aggregate(
                    user_id, latest, grandkids[latest["event_id"]], now_ms, nested=True
                )
        return relations.bundle(
            event, replacement=replacement, thread=summary, references=references
        )


def _outline(rows: list[sqlite3.Row]) -> list[dict[str, Any]]:
    """Children as the counting rules see them, without decoding each stored event
    (a redacted child has no row: redaction strips its relation)."""
    return [
        {
            "event_id": str(r["event_id"]),
            "sender": str(r["sender"]),
            "content": {"m.relates_to": {"rel_type": r["rel_type"], "event_id": r["parent_id"]}},
        }
        for r in rows
    ]
