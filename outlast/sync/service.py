"""/sync: gather each room's slice from the view, assemble, long-poll when empty.

What other capabilities add (receipts, typing, presence, account data, e2ee,
push rules) comes from the sources the composition root hands to :class:`Sync`,
in that order, each asked with the pass's :class:`~outlast.sync.window.SyncWindow`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import replace
from typing import Any

from outlast.account_data import tables as account_data
from outlast.accounts.service import Requester
from outlast.context import SiteContext
from outlast.core import sync as assembly
from outlast.core.errors import MatrixError
from outlast.core.filters import SyncFilter
from outlast.core.sync import RoomSlice
from outlast.core.tokens import SyncToken, encode_boundary, parse_sync_token
from outlast.log.client import LogUnavailable
from outlast.ops.health import Health
from outlast.rooms.render import render, visible_rows
from outlast.sync import queries as sync_queries
from outlast.sync.window import (
    EphemeralCounter,
    EventDecorator,
    JoinedRoom,
    RoomExtras,
    SyncSource,
    SyncWindow,
    no_decoration,
)
from outlast.view import queries


class Sync:
    def __init__(
        self,
        ctx: SiteContext,
        sources: Sequence[SyncSource],
        counter: EphemeralCounter,
        health: Health,
        decorate: EventDecorator = no_decoration,
    ) -> None:
        self.ctx = ctx
        self.sources = tuple(sources)
        self.counter = counter
        self.health = health
        self.decorate = decorate

    async def since(self, token: str | None) -> SyncToken | None:
        """A client's ``since`` token, once this view has reached it: never answer from a
        view older than the token (it may come from another worker or site)."""
        if not token:
            return None
        since = parse_sync_token(token, len(self.ctx.stream_names))
        await self._refuse_future_token(since)
        await self.ctx.reach(since.positions)
        return since

    async def _refuse_future_token(self, since: SyncToken) -> None:
        """A position beyond the log's end was never issued by any site: 400 M_INVALID_PARAM.

        Answering it at once would hand the token back and leave the client polling
        in a tight loop forever; waiting would park it until the log happens to get
        there. A position the log has but this view has not yet applied (a token
        from a site that is ahead) is fine: the caller waits for it.

        Only a site that reaches a quorum can tell: cut off from the others, its
        node's idea of a stream's end may be stale (an old leader), and a token
        from the majority is legitimately ahead of it. Such a site keeps the usual
        bounded wait and answers a token no older than the one it was given."""
        ctx = self.ctx
        checked = False
        for name, seq in zip(ctx.stream_names, since.positions, strict=True):
            if seq > ctx.positions.applied(name):
                if not checked:
                    checked = True
                    if not (await self.health.report()).get("ready"):
                        return
                try:
                    last = await ctx.log.last_seq(name)
                except LogUnavailable:
                    return  # cannot tell now; the usual wait for the position applies
                if seq > last:
                    raise MatrixError(400, "M_INVALID_PARAM", "since is beyond this server's log")

    async def sync(
        self,
        who: Requester,
        since: SyncToken | None,
        sync_filter: SyncFilter,
        *,
        full_state: bool,
        timeout_ms: int,
    ) -> dict[str, Any]:
        clock = self.ctx.clock
        deadline = clock.monotonic() + min(timeout_ms, self.ctx.config.sync.max_timeout_ms) / 1000
        while True:
            response = self.build(who, since, sync_filter, full_state=full_state)
            remaining = deadline - clock.monotonic()
            if (
                since is None
                or full_state
                or remaining <= 0
                or self.ctx.notifier.closed
                or not assembly.is_empty(response)
            ):
                return response
            await self.ctx.notifier.wait(who.user_id, remaining)

    def build(
        self, who: Requester, since: SyncToken | None, sync_filter: SyncFilter, *, full_state: bool
    ) -> dict[str, Any]:
        """One synchronous pass over the view (no awaits: a consistent snapshot)."""
        streams = self.ctx.stream_names
        now = SyncToken(self.ctx.positions.snapshot(streams), self.counter.value)
        if since is not None and since.ephemeral > now.ephemeral:
            # A token from another worker: its typing counter means nothing here.
            since = SyncToken(since.positions, 0)
        window = SyncWindow(
            who.user_id,
            who.device_id,
            since,
            now,
            tuple(streams),
            threaded=sync_filter.room.timeline.unread_thread_notifications,
        )
        narrowed = self._narrow(window) if since is not None and not full_state else None
        if narrowed is None:
            memberships = queries.rooms_of_user(self.ctx.conn, who.user_id)
        else:
            # Only the rooms where something was written since the token: the
            # others have nothing to add, and cost nothing.
            window, touched = narrowed
            memberships = sync_queries.memberships_among(self.ctx.conn, who.user_id, touched)
        slices = []
        for row in memberships:
            index = streams.index(row["stream"])
            since_seq = since.positions[index] if since is not None else None
            if not sync_filter.room.room_allowed(row["room_id"]):
                continue
            if since_seq is not None and since_seq >= now.positions[index] and not full_state:
                room_slice = None  # its partition has not moved: nothing new in this room
            else:
                room_slice = self._room(
                    who, row, since_seq, now.positions[index], sync_filter, full_state
                )
            if row["membership"] == "join" and int(row["seq"]) <= now.positions[index]:
                room = JoinedRoom(row["room_id"], row["stream"])
                room_slice = self._with_extras(window, room, room_slice, sync_filter)
            if room_slice is not None:
                self.decorate(who.user_id, list(room_slice.timeline))
                slices.append(room_slice)
        top: dict[str, Any] = {}
        for source in self.sources:
            for key, value in source.top_extras(window).items():
                _merge(top, key, value)
        lists = {k: top.pop(k) for k in ("account_data", "presence", "to_device") if k in top}
        next_batch = now
        pairs = list(zip(since.positions, now.positions, strict=True)) if since else []
        if any(s > n for s, n in pairs):
            # The token comes from a site whose view was ahead of ours (ctx.reach gave
            # up waiting, e.g. we are cut off). The client has everything up to it: never
            # hand back an older position, or its next sync would repeat those events.
            next_batch = SyncToken(tuple(max(s, n) for s, n in pairs), now.ephemeral)
        return assembly.assemble(
            next_batch.encode(),
            slices,
            account_data=lists.get("account_data", []),
            presence=lists.get("presence", []),
            to_device=lists.get("to_device", []),
            extra=top,
        )

    def _narrow(self, window: SyncWindow) -> tuple[SyncWindow, AbstractSet[str]] | None:
        """On an incremental sync, the rooms where anything was written since the
        token (None: not worth finding out, look at every room of the user).

        One range read of the room events in the moved windows, and each source's
        own answer (receipts, account data, typing). Every membership change is a
        room event, so a room the user joined, left or was invited to since the
        token is among them. The set may hold rooms the user is not in."""
        assert window.since is not None
        windows = assembly.moved_windows(
            window.streams, window.since.positions, window.now.positions
        )
        if not assembly.worth_narrowing(windows):
            return None
        evented = frozenset(sync_queries.rooms_with_events(self.ctx.conn, windows))
        window = replace(window, evented=evented)
        touched = set(evented)
        for source in self.sources:
            rooms = source.touched(window)
            if rooms is None:
                return None
            touched |= rooms
        return window, touched

    def _with_extras(
        self,
        window: SyncWindow,
        room: JoinedRoom,
        room_slice: RoomSlice | None,
        sync_filter: SyncFilter,
    ) -> RoomSlice | None:
        merged = RoomExtras()
        for source in self.sources:
            extras = source.room_extras(window, room)
            if extras is not None:
                merged.ephemeral += extras.ephemeral
                merged.account_data += extras.account_data
                merged.unread.update(extras.unread)
        merged.ephemeral = [e for e in merged.ephemeral if sync_filter.room.ephemeral.matches(e)]
        merged.account_data = [
            e for e in merged.account_data if sync_filter.room.account_data.matches(e)
        ]
        if room_slice is None:
            if merged.empty():
                return None
            room_slice = RoomSlice(room.room_id, "join")
        return replace(
            room_slice,
            ephemeral=merged.ephemeral,
            account_data=merged.account_data,
            unread=merged.unread,
        )

    def _ignored(self, who: Requester) -> frozenset[str]:
        """Whom the user ignores: their invites and non-state events are not sent."""
        return account_data.ignored_users(self.ctx.conn, who.user_id)

    def _room(
        self,
        who: Requester,
        row: sqlite3.Row,
        since_seq: int | None,
        now_seq: int,
        sync_filter: SyncFilter,
        full_state: bool,
    ) -> RoomSlice | None:
        room_id = row["room_id"]
        membership = row["membership"]
        changed_at = int(row["seq"])
        if changed_at > now_seq:
            return None  # applied after our snapshot; the next sync carries it
        fresh = since_seq is None or changed_at > since_seq
        if membership in ("invite", "knock"):
            # Not joined: only stripped state, shown once, when the membership changes.
            if not fresh:
                return None
            state = queries.current_state(self.ctx.conn, room_id)
            own = state.get(("m.room.member", who.user_id))
            if own is None:
                return None
            if membership == "invite" and own.get("sender") in self._ignored(who):
                return None  # an ignored user's invite is not shown (spec: ignoring users)
            stripped = assembly.invite_state(state.values(), own)
            return RoomSlice(room_id, membership, invite_state=stripped)
        if membership in ("leave", "ban"):
            if row["forgotten"] and not (since_seq is not None and fresh):
                # A forgotten room stays out of /sync, except that the incremental sync
                # spanning the leave still tells the user's other devices they left
                # (Synapse does so; spec issue matrix-org/matrix-spec#1458).
                return None
            if since_seq is None and not sync_filter.room.include_leave:
                return None
            if since_seq is not None and not fresh:
                return None
            upto = (changed_at, int(row["idx"]) + 1)
            return self._timeline_slice(
                who,
                room_id,
                "leave",
                None if since_seq is None else since_seq,
                upto,
                sync_filter,
                True,
            )
        if membership != "join":
            return None
        return self._timeline_slice(
            who,
            room_id,
            "join",
            None if fresh else since_seq,
            (now_seq + 1, 0),
            sync_filter,
            full_state or fresh,
        )

    def _timeline_slice(
        self,
        who: Requester,
        room_id: str,
        section: str,
        since_seq: int | None,
        upto: tuple[int, int],
        sync_filter: SyncFilter,
        include_full_state: bool,
    ) -> RoomSlice | None:
        limit = sync_filter.room.timeline.limit
        if limit is None:
            limit = self.ctx.config.sync.default_timeline_limit
        after = (since_seq + 1, 0) if since_seq is not None else None
        changes = queries.membership_changes(self.ctx.conn, room_id, who.user_id)
        rows = queries.events_between(
            self.ctx.conn,
            room_id,
            after=after,
            before=upto,
            limit=limit * 3 + 20,
            newest_first=True,
        )
        visible = visible_rows(rows, changes, who.user_id, self._ignored(who))
        picked = []
        now_ms = self.ctx.now_ms()
        for r in visible:
            event = render(r, who.device_id, who.user_id, now_ms=now_ms, changes=changes)
            if sync_filter.room.timeline.matches(event):
                picked.append((r, event))
            if len(picked) > limit:
                break
        limited = len(picked) > limit or (len(rows) == limit * 3 + 20)
        picked = picked[:limit]
        picked.reverse()
        timeline = [e for _, e in picked]
        if not timeline and not include_full_state:
            return None
        start = (int(picked[0][0]["seq"]), int(picked[0][0]["idx"])) if picked else upto
        state_rows = queries.state_before(self.ctx.conn, room_id, start)
        if include_full_state:
            state = list(state_rows.values())
        elif limited:
            state = [e for e in state_rows.values() if _after(self.ctx.conn, e, since_seq)]
        else:
            state = []
        state = [
            e for e in assembly.state_delta(state, timeline) if sync_filter.room.state.matches(e)
        ]
        return RoomSlice(
            room_id,
            section,
            timeline=timeline,
            limited=limited,
            prev_batch=encode_boundary(start),
            state=state,
        )


def _merge(top: dict[str, Any], key: str, value: Any) -> None:
    """Combine what several extensions return: lists concatenate, dicts merge."""
    if key not in top:
        top[key] = value
    elif isinstance(top[key], list) and isinstance(value, list):
        top[key] = top[key] + value
    elif isinstance(top[key], dict) and isinstance(value, dict):
        merged = dict(top[key])
        for k, v in value.items():
            if isinstance(merged.get(k), list) and isinstance(v, list):
                merged[k] = merged[k] + v
            else:
                merged[k] = v
        top[key] = merged
    else:
        top[key] = value


def _after(conn: sqlite3.Connection, event: dict[str, Any], since_seq: int | None) -> bool:
    if since_seq is None:
        return True
    row = queries.event_row(conn, event["event_id"])
    return row is not None and int(row["seq"]) > since_seq


def load(raw: str) -> Any:
    return json.loads(raw)
