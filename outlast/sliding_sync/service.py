"""Simplified sliding sync (MSC4186): gather rooms from the view, let the pure core
(:mod:`outlast.core.sliding`) choose and render them, long-poll when nothing is new.

A ``pos`` is the /sync token of the view positions it covers plus the id of the
connection state it leaves the client with. That state is stored on the log,
content-addressed (:mod:`.tables`), so any site can continue any connection:
it waits for its view to reach the token, reads the state, and answers the same
way the first site would have.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from outlast.account_data import tables as account_data
from outlast.account_data.service import AccountDataSync
from outlast.accounts.service import Requester
from outlast.context import SiteContext
from outlast.core import sync as assembly
from outlast.core.errors import MatrixError
from outlast.core.sliding import rooms as render_rooms
from outlast.core.sliding import sticky
from outlast.core.sliding.connection import ConnectionState, RoomPlan, plan, unknown_pos
from outlast.core.sliding.lists import Selection, extension_rooms, select_rooms
from outlast.core.sliding.pos import Pos, parse_pos
from outlast.core.sliding.request import MEMBER, SlidingRequest, parse_request
from outlast.core.sliding.state import StateMap, expands
from outlast.core.tokens import SyncToken, encode_boundary
from outlast.e2ee import queries as e2ee_queries
from outlast.e2ee.keys import Keys
from outlast.e2ee.to_device import ToDevice
from outlast.log.facts import SlidingStateStored
from outlast.rooms.render import render, visible_rows
from outlast.sliding_sync import queries as sliding_queries
from outlast.sliding_sync import roomlist, tables
from outlast.sliding_sync.roomlist import ListedRoom
from outlast.sync.service import Sync
from outlast.sync.window import JoinedRoom, RoomExtras, SyncSource, SyncWindow
from outlast.view import queries


class SlidingSync:
    def __init__(
        self,
        ctx: SiteContext,
        sync: Sync,
        keys: Keys,
        to_device: ToDevice,
        account_data_source: AccountDataSync,
        room_sources: tuple[SyncSource, ...],
    ) -> None:
        """``room_sources`` add receipts, typing and unread counts to joined rooms
        (the same objects /sync asks)."""
        self.ctx = ctx
        self.sync = sync
        self.keys = keys
        self.to_device = to_device
        self.account_data = account_data_source
        self.room_sources = room_sources

    # --- the request ---------------------------------------------------------------

    async def sliding_sync(
        self, who: Requester, body: Any, query: Mapping[str, str]
    ) -> dict[str, Any]:
        """One request: ``body`` as JSON, ``query`` the query string (``pos``, ``timeout``)."""
        request = parse_request(body, query)  # validate what the client sent as it is
        since: SyncToken | None = None
        state = ConnectionState()
        remembered: dict[str, Any] = {}
        if request.pos:
            pos = parse_pos(request.pos, len(self.ctx.stream_names))
            try:
                since = await self.sync.since(pos.sync.encode())
            except MatrixError as exc:
                raise unknown_pos() from exc
            state, remembered = await self._load(who.user_id, pos.state_ref)
        filled = sticky.fill(body, remembered) if sticky.applies(body) else dict(body)
        request = parse_request(filled, query)
        clock = self.ctx.clock
        timeout_ms = min(request.timeout_ms, self.ctx.config.sync.max_timeout_ms)
        deadline = clock.monotonic() + timeout_ms / 1000
        while True:
            response, new_state, now = self.build(who, request, since, state)
            remaining = deadline - clock.monotonic()
            if (
                since is None
                or remaining <= 0
                or self.ctx.notifier.closed
                or not render_rooms.is_empty(response)
            ):
                break
            await self.ctx.notifier.wait(who.user_id, remaining)
        kept = sticky.remember(filled) if sticky.applies(body) else {}
        ref = await self._store(who.user_id, new_state, kept)
        response["pos"] = Pos(ref, now).encode()
        return response

    async def _load(self, user_id: str, ref: int) -> tuple[ConnectionState, dict[str, Any]]:
        """The stored state a ``pos`` names, and the remembered request parameters;
        another site's may still be on its way."""
        if ref == 0:
            return ConnectionState(), {}
        raw = tables.stored_state(self.ctx.conn, user_id, ref)
        if raw is None and await self.ctx.catch_up(self.ctx.names.users_stream):
            raw = tables.stored_state(self.ctx.conn, user_id, ref)
        if raw is None:
            raise unknown_pos()
        remembered = raw.get("sticky") if isinstance(raw, dict) else None
        return ConnectionState.from_json(raw), remembered if isinstance(remembered, dict) else {}

    async def _store(self, user_id: str, state: ConnectionState, remembered: dict[str, Any]) -> int:
        """Write the state once (its id is derived from its content), durably, before
        the ``pos`` naming it is handed out."""
        if not state.rooms and not remembered:
            return 0
        value = state.to_json()
        if remembered:
            value["sticky"] = remembered
        ref = state_id(value)
        if tables.stored_state(self.ctx.conn, user_id, ref) is None:
            fact = SlidingStateStored(user_id, ref, value)
            ack = await self.ctx.log.append(self.ctx.names.user_data_subject(user_id), fact)
            await self.ctx.applied(ack)
        return ref

    # --- one pass (no awaits: a consistent snapshot of the view) ------------------

    def build(
        self,
        who: Requester,
        request: SlidingRequest,
        since: SyncToken | None,
        state: ConnectionState,
    ) -> tuple[dict[str, Any], ConnectionState, SyncToken]:
        streams = self.ctx.stream_names
        now = SyncToken(self.ctx.positions.snapshot(streams), self.sync.counter.value)
        if since is not None and since.ephemeral > now.ephemeral:
            since = SyncToken(since.positions, 0)  # another worker's typing counter
        if since is not None and any(
            s > n for s, n in zip(since.positions, now.positions, strict=True)
        ):
            # Our view is behind the token (reach gave up): never hand back less.
            now = SyncToken(tuple(map(max, since.positions, now.positions)), now.ephemeral)
        window = SyncWindow(who.user_id, who.device_id, since, now, tuple(streams))
        conn = self.ctx.conn
        rooms = roomlist.user_rooms(conn, streams, who.user_id, request, now)
        selection = select_rooms(request, [r.entry for r in rooms.values()], state.rooms.keys())
        changed = roomlist.changed_rooms(conn, streams, rooms, since, now)
        expanded = set()
        for room_id, config in selection.configs.items():
            old = state.config_of(room_id)
            if old is None or old == config or room_id not in rooms:
                continue
            if expands(config, old, queries.current_state(conn, room_id), who.user_id):
                expanded.add(room_id)
        plans, new_state = plan(selection, state, changed, expanded)
        entries: dict[str, dict[str, Any]] = {}
        extras: dict[str, RoomExtras] = {}
        for room_plan in plans:
            room = rooms[room_plan.room_id]
            room_window = replace(window, since=None) if room_plan.initial else window
            extra = self._room_extras(room_window, room)
            extras[room.entry.room_id] = extra
            entries[room_plan.room_id] = self._entry(who, room_plan, room, since, now, extra)
        extensions = self._extensions(who, request, window, rooms, selection, extras)
        body = render_rooms.response("", selection.windows, entries, extensions, request.txn_id)
        return body, new_state, now

    def _room_extras(self, window: SyncWindow, room: ListedRoom) -> RoomExtras:
        merged = RoomExtras()
        if room.entry.membership != "join":
            return merged
        joined = JoinedRoom(room.entry.room_id, room.stream)
        for source in (*self.room_sources, self.account_data):
            extra = source.room_extras(window, joined)
            if extra is not None:
                merged.ephemeral += extra.ephemeral
                merged.account_data += extra.account_data
                merged.unread.update(extra.unread)
        return merged

    def _entry(
        self,
        who: Requester,
        room_plan: RoomPlan,
        room: ListedRoom,
        since: SyncToken | None,
        now: SyncToken,
        extra: RoomExtras,
    ) -> dict[str, Any]:
        conn = self.ctx.conn
        room_id, membership = room.entry.room_id, room.entry.membership
        index = self.ctx.stream_names.index(room.stream)
        since_seq = None if since is None else since.positions[index]
        if membership in ("invite", "knock"):
            current = queries.current_state(conn, room_id)
            own = current.get((MEMBER, who.user_id))
            stripped = assembly.invite_state(current.values(), own) if own else []
            data = render_rooms.RoomData(
                membership, invite_state=stripped, bump_stamp=room.entry.activity
            )
            return render_rooms.room_entry(room_plan, data, who.user_id)
        if membership == "join":
            upto = (now.positions[index] + 1, 0)
            state: StateMap = queries.current_state(conn, room_id)
        else:  # left, kicked or banned: what the room was up to that moment
            upto = (int(room.row["seq"]), int(room.row["idx"]) + 1)
            state = queries.state_before(conn, room_id, upto)
        fresh = room_plan.initial or room_plan.expanded_timeline or since_seq is None
        timeline, seqs, limited, start = self._timeline(
            who, room_id, None if fresh else since_seq, upto, room_plan.config.timeline_limit
        )
        changed_state: set[tuple[str, str]] = set()
        if not room_plan.initial and since_seq is not None:
            changed_state = sliding_queries.state_keys_between(conn, room_id, since_seq, upto)
        counts = extra.unread.get("unread_notifications", {})
        data = render_rooms.RoomData(
            membership,
            state=state,
            timeline=timeline,
            limited=limited,
            prev_batch=encode_boundary(start) if (timeline or limited) else None,
            num_live=render_rooms.num_live(seqs, since_seq),
            changed_state=changed_state,
            bump_stamp=room.entry.activity,
            is_dm=room.entry.is_dm,
            notification_count=int(counts.get("notification_count", 0)),
            highlight_count=int(counts.get("highlight_count", 0)),
        )
        return render_rooms.room_entry(room_plan, data, who.user_id)

    def _timeline(
        self,
        who: Requester,
        room_id: str,
        since_seq: int | None,
        upto: tuple[int, int],
        limit: int,
    ) -> tuple[list[dict[str, Any]], list[int], bool, tuple[int, int]]:
        """The latest ``limit`` events the user may see (after ``since_seq`` if given),
        oldest first, their sequences, whether a gap precedes them, and where they start."""
        conn = self.ctx.conn
        after = (since_seq + 1, 0) if since_seq is not None else None
        fetch = limit * 3 + 20
        rows = queries.events_between(
            conn, room_id, after=after, before=upto, limit=fetch, newest_first=True
        )
        changes = queries.membership_changes(conn, room_id, who.user_id)
        ignored = account_data.ignored_users(conn, who.user_id)
        visible = visible_rows(rows, changes, who.user_id, ignored)
        picked = list(reversed(visible[:limit])) if limit else []
        limited = len(visible) > limit or len(rows) == fetch
        now_ms = self.ctx.now_ms()
        timeline = [
            render(r, who.device_id, who.user_id, now_ms=now_ms, changes=changes) for r in picked
        ]
        self.sync.decorate(who.user_id, timeline)
        start = (int(picked[0]["seq"]), int(picked[0]["idx"])) if picked else upto
        return timeline, [int(r["seq"]) for r in picked], limited, start

    # --- extensions ------------------------------------------------------------------

    def _extensions(
        self,
        who: Requester,
        request: SlidingRequest,
        window: SyncWindow,
        rooms: Mapping[str, ListedRoom],
        selection: Selection,
        extras: dict[str, RoomExtras],
    ) -> dict[str, Any]:
        """to_device, e2ee, account_data, receipts and typing, each when enabled."""
        conn = self.ctx.conn
        user_id, device_id = who.user_id, who.device_id
        out: dict[str, Any] = {}
        users = self.ctx.names.users_stream
        to_device = request.extension("to_device")
        if to_device is not None:
            upto = window.upto(users)
            since = _digits(to_device.since)
            if since is not None and since > upto:
                # A batch token from a site ahead of this one: nothing new here yet,
                # and never hand back an older token (it would repeat messages).
                out["to_device"] = {"next_batch": str(since), "events": []}
            else:
                events = self.to_device.pending(user_id, device_id, since, upto)
                out["to_device"] = {"next_batch": str(upto), "events": events}
        if request.extension("e2ee") is not None:
            changed: list[str] = []
            left: list[str] = []
            if window.since is not None:
                changed, left = self.keys.device_lists(user_id, window.since, window.now)
            out["e2ee"] = {
                "device_lists": {"changed": changed, "left": left},
                "device_one_time_keys_count": self.keys.counts(user_id, device_id),
                "device_unused_fallback_key_types": e2ee_queries.unused_fallback_types(
                    conn, user_id, device_id
                ),
            }

        def covered(name: str) -> list[str]:
            config = request.extension(name)
            if config is None:
                return []
            chosen = extension_rooms(
                config.lists, config.rooms, selection, request.subscriptions.keys()
            )
            return sorted(r for r in chosen if r in rooms)

        def extra_of(room_id: str) -> RoomExtras:
            if room_id not in extras:
                extras[room_id] = self._room_extras(window, rooms[room_id])
            return extras[room_id]

        if request.extension("account_data") is not None:
            top = self.account_data.top_extras(window).get("account_data", [])
            by_room = {}
            for room_id in covered("account_data"):
                events = extra_of(room_id).account_data
                if events:
                    by_room[room_id] = events
            out["account_data"] = {"global": top, "rooms": by_room}
        for name, kind in (("receipts", "m.receipt"), ("typing", "m.typing")):
            if request.extension(name) is None:
                continue
            found = {}
            for room_id in covered(name):
                for event in extra_of(room_id).ephemeral:
                    if event.get("type") == kind:
                        found[room_id] = event
            out[name] = {"rooms": found}
        return out


def state_id(value: Mapping[str, Any]) -> int:
    """A connection state's id: 60 bits of a hash of its canonical JSON, never 0."""
    raw = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    return int(hashlib.sha256(raw).hexdigest()[:15], 16) or 1


def _digits(value: str | None) -> int | None:
    if value is None or not (value.isascii() and value.isdigit() and len(value) < 20):
        return None
    return int(value)
