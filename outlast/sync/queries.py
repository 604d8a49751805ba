"""Reads /sync makes across rooms: which rooms changed in a window of positions, and
the user's memberships in just those rooms."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Iterable

from outlast.core.sync import Window


def rooms_with_events(conn: sqlite3.Connection, windows: Iterable[Window]) -> set[str]:
    """Every room (anyone's) with an event stored at a position in one of the windows.

    A range over the events table's primary key (stream, seq, idx): the cost is
    what was written in the windows, not how many rooms anyone is in."""
    rooms: set[str] = set()
    for w in windows:
        rows = conn.execute(
            "SELECT DISTINCT room_id FROM events WHERE stream = ? AND seq > ? AND seq <= ?",
            (w.stream, w.after, w.upto),
        )
        rooms.update(str(r[0]) for r in rows)
    return rooms


def memberships_among(
    conn: sqlite3.Connection, user_id: str, rooms: Collection[str]
) -> list[sqlite3.Row]:
    """The user's membership rows (as ``queries.rooms_of_user``) in the given rooms only:
    one primary-key probe per room asked about, none for the user's other rooms."""
    if not rooms:
        return []
    return list(
        conn.execute(
            "SELECT m.room_id, m.membership, m.seq, m.idx, m.forgotten, r.stream"
            " FROM members m JOIN rooms r ON r.room_id = m.room_id"
            " WHERE m.user_id = ? AND m.room_id IN (SELECT value FROM json_each(?))",
            (user_id, json.dumps(sorted(rooms))),
        )
    )
