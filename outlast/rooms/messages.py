"""Sending messages and state, and reading a room's events, state and members."""

from __future__ import annotations

import json
from typing import Any

from outlast.account_data import tables as account_data
from outlast.accounts.service import Requester
from outlast.context import SiteContext
from outlast.core import aliases, auth, ids, relations
from outlast.core import sync as sync_core
from outlast.core.errors import bad_json, forbidden, not_found
from outlast.core.events import validate_content, validate_type
from outlast.core.filters import EventFilter
from outlast.core.members import member_filter
from outlast.core.sliding.pos import sync_part
from outlast.core.tokens import Position, encode_boundary, parse_boundary, parse_sync_token
from outlast.core.visibility import event_visible, membership_at
from outlast.rooms import tables
from outlast.rooms.render import render, visible_rows
from outlast.rooms.writer import RoomWriter, checked
from outlast.sync.window import EventDecorator, no_decoration
from outlast.view import queries
from outlast.view.queries import StateMap

CANONICAL_ALIAS = "m.room.canonical_alias"

MAX_PAGE = 1000


class Messages:
    def __init__(
        self, ctx: SiteContext, writer: RoomWriter, decorate: EventDecorator = no_decoration
    ) -> None:
        self.ctx = ctx
        self.writer = writer
        self.decorate = decorate

    def room_stream(self, room_id: str) -> str:
        """The partition stream holding a room (its order lives there)."""
        return self.writer.subjects(room_id).stream

    def boundary(self, room_id: str, token: str) -> Position:
        """A /messages ``from``/``to`` token as a position in the room: a ``t…`` boundary,
        or a sync token's position in the room's partition (a sliding sync ``pos``
        carries one)."""
        token = sync_part(token)
        if token.startswith("s"):
            streams = self.ctx.stream_names
            sync_token = parse_sync_token(token, len(streams))
            index = streams.index(self.room_stream(room_id))
            return parse_boundary(token, sync_token.positions[index])
        return parse_boundary(token)

    async def history(
        self,
        who: Requester,
        room_id: str,
        start: Position | None,
        end: Position | None,
        backwards: bool,
        limit: int,
        event_filter: EventFilter,
    ) -> dict[str, Any]:
        """GET /rooms/{roomId}/messages: one page from ``start`` (the room's newest end when
        paging back without one), after this view has reached ``start`` (the token may come
        from a site or worker whose view was ahead)."""
        stream = self.room_stream(room_id)
        if start is not None:
            await self.ctx.positions.wait_for(stream, start[0] - 1, 5.0)
        if start is None and backwards:
            start = (self.ctx.positions.applied(stream) + 1, 0)
        return self.page(who, room_id, start, end, backwards, limit, event_filter)

    async def send(
        self, who: Requester, room_id: str, event_type: str, txn_id: str, content: Any
    ) -> str:
        """Idempotent per (device, room, type, txnId): the event id is derived from them."""
        validate_type(event_type)
        content = validate_content(content)
        if len(txn_id) > 255:
            raise bad_json("transaction id too long")
        event_id = ids.txn_event_id(who.user_id, who.device_id, room_id, event_type, txn_id)

        def build(state: StateMap) -> list[dict[str, Any]]:
            if not state:
                raise forbidden("you are not in this room")
            event = self.writer.build_event(
                room_id, who.user_id, event_type, content, None, event_id
            )
            checked(state, event)
            self._check_relation(event)
            return [event]

        await self.writer.send(
            room_id, build, msg_id=event_id, txn={"device_id": who.device_id, "txn_id": txn_id}
        )
        return event_id

    def _check_relation(self, event: dict[str, Any]) -> None:
        """The relation rules a server enforces at sending: no thread off an event that
        itself relates (400 M_UNKNOWN), no second identical reaction (400
        M_DUPLICATE_ANNOTATION). Two sites may still accept the same reaction at the
        same instant; the spec expects that, and clients count one per sender and key."""
        rel = relations.relation_of(event)
        if rel is None:
            return
        conn = self.ctx.conn
        if rel.rel_type == relations.THREAD:
            parent = queries.event_row(conn, rel.event_id)
            if parent is not None and parent["room_id"] == event["room_id"]:
                relations.check_thread_root(json.loads(parent["json"]))
        elif rel.rel_type == relations.ANNOTATION:
            existing = [
                json.loads(r["json"])
                for r in tables.children_rows(conn, [rel.event_id], relations.ANNOTATION)
                if r["event_id"] != event["event_id"] and r["room_id"] == event["room_id"]
            ]
            relations.check_new_annotation(event, existing)

    async def put_state(
        self, user_id: str, room_id: str, event_type: str, state_key: str, content: Any
    ) -> str:
        """Set one piece of state; returns the event id. Re-sending the state a user set,
        unchanged, commits nothing and returns the existing event's id (as Synapse does)."""
        validate_type(event_type)
        content = validate_content(content)
        unchanged: list[str] = []
        canonical = event_type == CANONICAL_ALIAS and state_key == ""
        if canonical:
            # Aliases it names may have been made at another site a moment ago.
            await self.ctx.catch_up(self.ctx.names.directory_stream)

        def build(state: StateMap) -> list[dict[str, Any]]:
            if not state:
                raise forbidden("you are not in this room")
            if canonical:
                previous = state.get((CANONICAL_ALIAS, ""))
                aliases.check_canonical_alias(
                    content,
                    room_id,
                    previous.get("content") if previous else None,
                    lambda alias: queries.alias_target(self.ctx.conn, alias),
                )
            event = self.writer.build_event(room_id, user_id, event_type, content, state_key)
            checked(state, event)  # still allowed to set it now
            current = state.get((event_type, state_key))
            if current and current.get("sender") == user_id and current.get("content") == content:
                unchanged[:] = [str(current["event_id"])]
                return []
            return [event]

        events = await self.writer.commit(room_id, build)
        return str(events[0]["event_id"]) if events else unchanged[0]

    def _readable_state(self, user_id: str, room_id: str, at: Position | None = None) -> StateMap:
        """The room's state as the user may read it: current for a member (or anyone, in a
        world-readable room), as it was when they left for a former member; with ``at``,
        as it was just before that position, but never later than that."""
        state = queries.current_state(self.ctx.conn, room_id)
        if not state:
            raise forbidden("you are not in this room")
        vis = state.get(("m.room.history_visibility", ""), {}).get("content", {})
        if auth.membership(state, user_id) == "join" or (
            vis.get("history_visibility") == "world_readable"
        ):
            return state if at is None else queries.state_before(self.ctx.conn, room_id, at)
        changes = queries.membership_changes(self.ctx.conn, room_id, user_id)
        if changes and changes[-1].membership in ("leave", "ban"):
            # A former member sees the state as it was when they left.
            left = (changes[-1].position[0], changes[-1].position[1] + 1)
            return queries.state_before(self.ctx.conn, room_id, min(left, at or left))
        raise forbidden("you are not in this room")

    def state(self, user_id: str, room_id: str) -> list[dict[str, Any]]:
        return list(self._readable_state(user_id, room_id).values())

    def state_event(
        self,
        user_id: str,
        room_id: str,
        event_type: str,
        state_key: str,
        whole_event: bool = False,
    ) -> dict[str, Any]:
        """One state event's content, or (``?format=event``) the whole event."""
        event = self._readable_state(user_id, room_id).get((event_type, state_key))
        if event is None:
            raise not_found("no such state event")
        return dict(event) if whole_event else dict(event["content"])

    def members(
        self,
        user_id: str,
        room_id: str,
        membership: str | None,
        not_membership: str | None,
        at: str | None = None,
    ) -> list[dict[str, Any]]:
        """GET /members: the member events of the readable state, or (``at``, a sync or
        /messages token) of the state at that point, that the membership query keeps."""
        wanted = member_filter(membership, not_membership)
        position = self.boundary(room_id, at) if at is not None else None
        state = self._readable_state(user_id, room_id, position)
        return [
            event
            for (event_type, _), event in state.items()
            if event_type == "m.room.member" and wanted.keeps(event["content"].get("membership"))
        ]

    def joined_members(self, user_id: str, room_id: str) -> dict[str, Any]:
        state = queries.current_state(self.ctx.conn, room_id)
        if auth.membership(state, user_id) != "join":
            raise forbidden("you are not joined to this room")
        joined = {}
        for (event_type, key), event in state.items():
            content = event.get("content", {})
            if event_type == "m.room.member" and content.get("membership") == "join":
                joined[key] = {
                    "display_name": content.get("displayname"),
                    "avatar_url": content.get("avatar_url"),
                }
        return joined

    def event(self, who: Requester, room_id: str, event_id: str) -> dict[str, Any]:
        row = queries.event_row(self.ctx.conn, event_id)
        if row is None or row["room_id"] != room_id:
            raise not_found("event not found")
        changes = queries.membership_changes(self.ctx.conn, room_id, who.user_id)
        position = (int(row["seq"]), int(row["idx"]))
        own = row["type"] == "m.room.member" and row["state_key"] == who.user_id
        if not event_visible(
            history_visibility=row["hist_vis"],
            membership_at_event=membership_at(changes, position),
            changes=changes,
            position=position,
            is_own_membership_event=own,
        ):
            raise not_found("event not found")
        event = render(row, who.device_id, who.user_id, now_ms=self.ctx.now_ms(), changes=changes)
        self.decorate(who.user_id, [event])
        return event

    def page(
        self,
        who: Requester,
        room_id: str,
        start: Position | None,
        end: Position | None,
        backwards: bool,
        limit: int,
        event_filter: EventFilter,
    ) -> dict[str, Any]:
        """One page of /messages. Positions are boundaries: (seq, idx) of the event after them."""
        if queries.room(self.ctx.conn, room_id) is None:
            raise forbidden("you are not in this room")
        if queries.forgotten(self.ctx.conn, room_id, who.user_id):
            raise forbidden("you forgot this room")  # its history is closed to you
        changes = queries.membership_changes(self.ctx.conn, room_id, who.user_id)
        if not changes:
            state = queries.current_state(self.ctx.conn, room_id)
            vis = state.get(("m.room.history_visibility", ""), {}).get("content", {})
            if vis.get("history_visibility") != "world_readable":
                raise forbidden("you are not in this room")
        limit = max(0, min(limit, MAX_PAGE))
        ignored = account_data.ignored_users(self.ctx.conn, who.user_id)  # spec: ignoring users
        chunk: list[dict[str, Any]] = []
        first: Position | None = None  # where the page's first event sits
        cursor = start
        exhausted = False
        for _ in range(20):  # bounded scan when filters hide many events
            if len(chunk) >= limit:
                break
            if backwards:
                rows = queries.events_between(
                    self.ctx.conn,
                    room_id,
                    after=end,
                    before=cursor,
                    limit=limit * 2 + 10,
                    newest_first=True,
                )
            else:
                rows = queries.events_between(
                    self.ctx.conn,
                    room_id,
                    after=cursor,
                    before=end,
                    limit=limit * 2 + 10,
                    newest_first=False,
                )
            if not rows:
                exhausted = True
                break
            for row in visible_rows(rows, changes, who.user_id, ignored):
                if len(chunk) >= limit:
                    break
                now_ms = self.ctx.now_ms()
                event = render(row, who.device_id, who.user_id, now_ms=now_ms, changes=changes)
                cursor = _boundary_after(row, backwards)
                if event_filter.matches(event):
                    chunk.append(event)
                    first = first or (int(row["seq"]), int(row["idx"]))
            else:
                last = rows[-1]
                cursor = _boundary_after(last, backwards)
        self.decorate(who.user_id, chunk)
        body: dict[str, Any] = {
            "chunk": chunk,
            "start": encode_boundary(start) if start else "t0_0",
        }
        if not exhausted and cursor is not None:
            body["end"] = encode_boundary(cursor)
        if event_filter.lazy_load_members and first is not None:
            # The senders' member events as the state stood once the page's first
            # event was applied (as Synapse does).
            after_first = queries.state_before(self.ctx.conn, room_id, (first[0], first[1] + 1))
            body["state"] = sync_core.senders_members(after_first, chunk)
        return body


def _boundary_after(row: Any, backwards: bool) -> Position:
    """Where the next page starts after having returned ``row``."""
    seq, idx = int(row["seq"]), int(row["idx"])
    return (seq, idx) if backwards else (seq, idx + 1)


def load_json(raw: str) -> Any:
    return json.loads(raw)
