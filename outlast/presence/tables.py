"""The view's presence: one row per user, with the users-stream sequence of its last
change (the only writer of ``presence``). Presence facts come from the user's
``presence`` subject on the users stream."""

from __future__ import annotations

import sqlite3

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
