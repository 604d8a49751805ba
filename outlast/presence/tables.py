"""The view's presence: one row per user, with the users-stream sequence of its last
change (the only writer of ``presence``). Presence facts come from the user's
``presence`` subject on the users stream."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Iterable

from outlast.core.sync import Window
from outlast.log.client import LogMessage
from outlast.log.facts import PresenceSet
from outlast.view.queries import room_mates

PRESENCE_STATES = ("online", "offline", "unavailable")

SCHEMA = """
CREATE TABLE IF NOT EXISTS presence (
    user_id TEXT PRIMARY KEY, presence TEXT NOT NULL, status_msg TEXT,
    active_ts INTEGER NOT NULL, log_seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS presence_by_arrival ON presence (log_seq);
"""


def apply_presence(conn: sqlite3.Connection, msg: LogMessage, fact: PresenceSet) -> set[str]:
    if fact.presence not in PRESENCE_STATES:
        return set()  # checked here so that every view decides alike
    conn.execute(
        "INSERT OR REPLACE INTO presence (user_id, presence, status_msg, active_ts, log_seq)"
        " VALUES (?, ?, ?, ?, ?)",
        (fact.user_id, fact.presence, fact.status_msg, fact.ts, msg.seq),
    )
    return {fact.user_id, *room_mates(conn, fact.user_id)}


def presence_of(conn: sqlite3.Connection, user_id: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM presence WHERE user_id = ?", (user_id,)
    ).fetchone()
    return row


def presence_between(
    conn: sqlite3.Connection, user_id: str, after: int, upto: int
) -> list[sqlite3.Row]:
    """Presence of ``user_id`` and their room-mates that changed at a users-stream
    sequence in (after, upto]."""
    return list(
        conn.execute(
            "SELECT * FROM presence WHERE log_seq > ? AND log_seq <= ? AND (user_id = ?"
            " OR user_id IN (SELECT b.user_id FROM members a JOIN members b"
            " ON b.room_id = a.room_id WHERE a.user_id = ? AND a.membership = 'join'"
            " AND b.membership = 'join')) ORDER BY log_seq",
            (after, upto, user_id, user_id),
        )
    )


def joins_beside(
    conn: sqlite3.Connection,
    user_id: str,
    windows: Iterable[Window],
    rooms: Collection[str] | None = None,
) -> list[tuple[str, str]]:
    """``(room_id, joiner)`` for each join at a position in a window, in the rooms
    ``user_id`` is joined to (their own join included); only among ``rooms`` if given.

    One index range of ``membership_changes`` per room: the cost is the joins in the
    window, not the size of the user's rooms."""
    among = "" if rooms is None else " AND a.room_id IN (SELECT value FROM json_each(?))"
    extra: tuple[str, ...] = () if rooms is None else (json.dumps(sorted(rooms)),)
    pairs: list[tuple[str, str]] = []
    for w in windows:
        pairs += [
            (str(r[0]), str(r[1]))
            for r in conn.execute(
                "SELECT a.room_id, c.user_id FROM members a"
                " JOIN rooms r ON r.room_id = a.room_id AND r.stream = ?"
                " JOIN membership_changes c ON c.room_id = a.room_id"
                " AND c.seq > ? AND c.seq <= ? AND c.membership = 'join'"
                " WHERE a.user_id = ? AND a.membership = 'join'" + among,
                (w.stream, w.after, w.upto, user_id, *extra),
            )
        ]
    return pairs


def joined_in(conn: sqlite3.Connection, room_ids: Collection[str]) -> set[str]:
    """Everyone joined to one of ``room_ids``."""
    return {
        str(r[0])
        for r in conn.execute(
            "SELECT DISTINCT user_id FROM members WHERE membership = 'join'"
            " AND room_id IN (SELECT value FROM json_each(?))",
            (json.dumps(sorted(room_ids)),),
        )
    }


def presence_of_users(
    conn: sqlite3.Connection, user_ids: Collection[str], upto: int
) -> list[sqlite3.Row]:
    """The latest presence of each of ``user_ids`` set at a users-stream sequence up to
    ``upto``."""
    return list(
        conn.execute(
            "SELECT * FROM presence WHERE log_seq <= ?"
            " AND user_id IN (SELECT value FROM json_each(?)) ORDER BY log_seq",
            (upto, json.dumps(sorted(user_ids))),
        )
    )
