"""The user's rooms as sliding sync lists see them, and which changed since a ``pos``.

Plain reads of the view at one snapshot (``now``): membership, last bumping
activity, DM flag (``m.direct``, or ``is_direct`` on an invite), and, only when a
list filters on them, encryption, room type, name and tags.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from outlast.account_data import tables as account_data
from outlast.core import room_summary
from outlast.core import sync as assembly
from outlast.core.sliding.lists import RoomListEntry
from outlast.core.sliding.request import SlidingRequest
from outlast.core.sliding.state import StateMap
from outlast.core.tokens import SyncToken
from outlast.log.facts import GLOBAL
from outlast.sliding_sync import queries as sliding_queries
from outlast.sync import queries as sync_queries
from outlast.view import queries

DIRECT = "m.direct"
TAGS = "m.tag"
# Filters that need a room's current state to be decided.
_STATE_FILTERS = ("is_encrypted", "room_types", "not_room_types", "room_name_like")
_FILTER_STATE = ["m.room.create", "m.room.encryption", "m.room.name"]


@dataclass(frozen=True)
class ListedRoom:
    """One of the user's rooms as this pass sees it."""

    row: sqlite3.Row
    entry: RoomListEntry
    stream: str


def user_rooms(
    conn: sqlite3.Connection,
    streams: Sequence[str],
    user_id: str,
    request: SlidingRequest,
    now: SyncToken,
) -> dict[str, ListedRoom]:
    """Every room the user may list, with what the list rules need to know."""
    need_state = any(
        getattr(c.filters, f) not in (None, ())
        for c in request.lists.values()
        for f in _STATE_FILTERS
    )
    need_tags = any(
        c.filters.tags is not None or c.filters.not_tags for c in request.lists.values()
    )
    direct = _direct_rooms(account_data.get(conn, user_id, GLOBAL, DIRECT))
    ignored = account_data.ignored_users(conn, user_id)
    parents = _parents(conn, user_id, request)
    out: dict[str, ListedRoom] = {}
    for row in queries.rooms_of_user(conn, user_id):
        room_id, membership = str(row["room_id"]), str(row["membership"])
        seq, idx = int(row["seq"]), int(row["idx"])
        upto = now.positions[streams.index(row["stream"])]
        if seq > upto:
            continue  # applied after this pass's snapshot: the next pass shows it
        if membership in ("leave", "ban") and row["forgotten"]:
            continue
        activity = None
        if membership == "join":
            activity = sliding_queries.last_bump_ts(conn, room_id, upto)
        if activity is None:
            activity = sliding_queries.event_ts(conn, room_id, seq, idx) or 0
        by_self, ever_joined, is_dm = True, True, room_id in direct
        if membership != "join":
            own = json.loads(queries.member_event_json(conn, room_id, user_id) or "{}")
            by_self = own.get("sender") == user_id
            if membership == "invite":
                if own.get("sender") in ignored:
                    continue  # an ignored user's invite is not shown (spec: ignoring users)
                is_dm = is_dm or bool(own.get("content", {}).get("is_direct"))
            if membership == "ban":
                changes = queries.membership_changes(conn, room_id, user_id)
                ever_joined = any(c.membership == "join" for c in changes)
        entry = RoomListEntry(room_id, membership, activity, by_self, ever_joined, is_dm)
        if need_state and membership in ("join", "invite", "knock"):
            # All three are stripped-state types an invitee or knocker is shown anyway.
            facts = sliding_queries.room_state_of_types(conn, room_id, _FILTER_STATE)
            entry = _with_state_facts(entry, facts)
        if need_tags:
            tags = (account_data.get(conn, user_id, room_id, TAGS) or {}).get("tags")
            if isinstance(tags, dict):
                entry = replace(entry, tags=frozenset(str(t) for t in tags))
        if room_id in parents:
            entry = replace(entry, spaces=frozenset(parents[room_id]))
        out[room_id] = ListedRoom(row, entry, str(row["stream"]))
    return out


def _parents(
    conn: sqlite3.Connection, user_id: str, request: SlidingRequest
) -> dict[str, set[str]]:
    """For the ``spaces`` list filters: room -> the asked-for spaces that list it as a
    child (an ``m.space.child`` with ``via``), among spaces the user is joined to."""
    asked = {s for c in request.lists.values() for s in c.filters.spaces or ()}
    out: dict[str, set[str]] = {}
    for space in sorted(asked):
        if queries.membership(conn, space, user_id) != "join":
            continue  # a space's children are its state: only members may read them
        for child in sliding_queries.space_children(conn, space):
            out.setdefault(child, set()).add(space)
    return out


def changed_rooms(
    conn: sqlite3.Connection,
    streams: Sequence[str],
    rooms: Mapping[str, ListedRoom],
    since: SyncToken | None,
    now: SyncToken,
) -> set[str]:
    """Rooms with something new since ``pos`` that the user may see: any event in
    a joined room, only their own membership change in the others."""
    if since is None:
        return set()
    windows = assembly.moved_windows(streams, since.positions, now.positions)
    if assembly.worth_narrowing(windows):
        candidates = sync_queries.rooms_with_events(conn, windows)
    else:  # a long way back: asking each of the user's rooms is cheaper
        candidates = set()
        for room_id, each in rooms.items():
            last = queries.last_event_position(conn, room_id)
            if last is not None and last[0] > since.positions[streams.index(each.stream)]:
                candidates.add(room_id)
    out = set()
    for room_id in candidates:
        room = rooms.get(room_id)
        if room is None:
            continue
        index = streams.index(room.stream)
        after, upto = since.positions[index], now.positions[index]
        if room.entry.membership == "join" or after < int(room.row["seq"]) <= upto:
            out.add(room_id)
    return out


def _direct_rooms(content: Mapping[str, Any] | None) -> set[str]:
    """Rooms ``m.direct`` names (it maps users to lists of room ids)."""
    out: set[str] = set()
    for rooms in (content or {}).values():
        if isinstance(rooms, list):
            out.update(r for r in rooms if isinstance(r, str))
    return out


def _with_state_facts(entry: RoomListEntry, state: StateMap) -> RoomListEntry:
    """What the state-based list filters read: encryption, room type, name."""
    create = state.get(("m.room.create", ""), {})
    room_type = create.get("content", {}).get("type")
    return replace(
        entry,
        is_encrypted=("m.room.encryption", "") in state,
        room_type=room_type if isinstance(room_type, str) else None,
        name=room_summary.room_name(state),
    )
