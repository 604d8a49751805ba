"""Reads sliding sync makes per room: its last bumping activity, and which state
keys changed after a position."""

from __future__ import annotations

import json
import sqlite3

from outlast.core.sliding.lists import BUMP_TYPES
from outlast.core.sliding.state import StateKey, StateMap

_BUMP_JSON = json.dumps(sorted(BUMP_TYPES))


def last_bump_ts(conn: sqlite3.Connection, room_id: str, upto_seq: int) -> int | None:
    """``origin_server_ts`` of the room's latest event of a bumping type at or
    before ``upto_seq`` (None: none yet). Walks the room's index newest first."""
    row = conn.execute(
        "SELECT json FROM events"
        " WHERE room_id = ? AND seq <= ? AND type IN (SELECT value FROM json_each(?))"
        " ORDER BY seq DESC, idx DESC LIMIT 1",
        (room_id, upto_seq, _BUMP_JSON),
    ).fetchone()
    return _origin_ts(row[0]) if row else None


def event_ts(conn: sqlite3.Connection, room_id: str, seq: int, idx: int) -> int | None:
    """``origin_server_ts`` of the room event at a position (a membership change)."""
    row = conn.execute(
        "SELECT json FROM events WHERE room_id = ? AND seq = ? AND idx = ?",
        (room_id, seq, idx),
    ).fetchone()
    return _origin_ts(row[0]) if row else None


def _origin_ts(raw: str) -> int | None:
    """The event's ``origin_server_ts`` (read in Python: json_extract's result type
    differs between the view's SQL dialects)."""
    ts = json.loads(raw).get("origin_server_ts")
    return ts if isinstance(ts, int) and not isinstance(ts, bool) else None


def state_keys_between(
    conn: sqlite3.Connection, room_id: str, after_seq: int, upto: tuple[int, int]
) -> set[StateKey]:
    """Every state key written in the room after ``after_seq`` and before ``upto``."""
    rows = conn.execute(
        "SELECT DISTINCT type, state_key FROM events WHERE room_id = ? AND seq > ?"
        " AND (seq < ? OR (seq = ? AND idx < ?)) AND state_key IS NOT NULL",
        (room_id, after_seq, upto[0], upto[0], upto[1]),
    )
    return {(str(r[0]), str(r[1])) for r in rows}


def room_state_of_types(conn: sqlite3.Connection, room_id: str, types: list[str]) -> StateMap:
    """The room's current state events of the given types with an empty state key
    (what list filters read: create, encryption, name), not its whole state."""
    rows = conn.execute(
        "SELECT e.json FROM state s JOIN events e ON e.event_id = s.event_id"
        " WHERE s.room_id = ? AND s.state_key = '' AND s.type IN (SELECT value FROM json_each(?))",
        (room_id, json.dumps(types)),
    )
    out: dict[StateKey, dict[str, object]] = {}
    for (raw,) in rows:
        event = json.loads(raw)
        out[(event["type"], "")] = event
    return out


def space_children(conn: sqlite3.Connection, space_id: str) -> list[str]:
    """Rooms a space lists: its ``m.space.child`` state with a non-empty ``via``."""
    rows = conn.execute(
        "SELECT s.state_key, json_extract(e.json, '$.content.via') FROM state s"
        " JOIN events e ON e.event_id = s.event_id"
        " WHERE s.room_id = ? AND s.type = 'm.space.child'",
        (space_id,),
    )
    return [str(r[0]) for r in rows if _nonempty_list(r[1])]


def _nonempty_list(raw: object) -> bool:
    """Whether a ``json_extract`` result is a non-empty JSON array."""
    if not isinstance(raw, str) or not raw.startswith("["):
        return False
    try:
        value = json.loads(raw)
    except ValueError:
        return False
    return isinstance(value, list) and bool(value)
