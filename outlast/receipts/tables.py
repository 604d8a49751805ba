"""Read state in the view: receipts, fully-read markers, and presence.

Receipts and markers arrive on a room's receipt subject, in the same partition
stream as the room's events, so the receipted event is always applied before
the receipt and every site derives the same rows. For each (room, user,
receipt type, thread) only the furthest receipt is kept: a receipt for an
earlier event than the stored one is ignored (markers never move backwards).
``log_seq`` is the partition sequence at which a row last changed; /sync
compares it with the positions in its token.

Presence facts come from the users stream (``user_subject(user, "presence")``)
and keep one row per user, with the users-stream sequence of its last change.

Handlers are defensive: a malformed fact is skipped, never raised, because a
failing batch would be retried by the projector for ever.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

from outlast.core.unread import MARKER_TYPES, PRIVATE_TYPES, READ_TYPES, Position, Receipt
from outlast.log.client import LogMessage
from outlast.log.facts import PresenceSet, ReceiptsMarked
from outlast.view.extension import ViewExtension

PRESENCE_STATES = ("online", "offline", "unavailable")

SCHEMA = """
CREATE TABLE IF NOT EXISTS receipts (
    room_id TEXT NOT NULL, user_id TEXT NOT NULL, receipt_type TEXT NOT NULL,
    thread_id TEXT NOT NULL, event_id TEXT NOT NULL, seq INTEGER NOT NULL,
    idx INTEGER NOT NULL, ts INTEGER NOT NULL, log_seq INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_id, receipt_type, thread_id)
);
CREATE INDEX IF NOT EXISTS receipts_by_arrival ON receipts (room_id, log_seq);
CREATE TABLE IF NOT EXISTS read_markers (
    room_id TEXT NOT NULL, user_id TEXT NOT NULL, event_id TEXT NOT NULL,
    seq INTEGER NOT NULL, idx INTEGER NOT NULL, log_seq INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
CREATE TABLE IF NOT EXISTS presence (
    user_id TEXT PRIMARY KEY, presence TEXT NOT NULL, status_msg TEXT,
    active_ts INTEGER NOT NULL, log_seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS presence_by_arrival ON presence (log_seq);
"""


# --- applying facts -----------------------------------------------------------


def apply_marks(conn: sqlite3.Connection, msg: LogMessage, fact: ReceiptsMarked) -> set[str]:
    room_id, user_id, ts = fact.room_id, fact.user_id, fact.ts
    # Re-checked here so that every site decides alike, whatever its view held
    # when the receipt was accepted.
    if membership(conn, room_id, user_id) != "join":
        return set()
    public = private = False
    for mark in fact.marks:
        if not isinstance(mark, dict):
            continue
        rtype, event_id = mark.get("type"), mark.get("event_id")
        thread_id = mark.get("thread_id") or ""
        if rtype not in MARKER_TYPES or not isinstance(event_id, str):
            continue
        if not isinstance(thread_id, str):
            continue
        position = event_position(conn, room_id, event_id)
        if position is None:
            continue
        if rtype == "m.fully_read":
            private |= _move_marker(conn, msg.seq, room_id, user_id, event_id, position)
        elif _move_receipt(
            conn, msg.seq, room_id, user_id, rtype, thread_id, event_id, position, ts
        ):
            if rtype in PRIVATE_TYPES:
                private = True
            else:
                public = True
    if public:
        # Everyone in the room may see it, and the unread counts they see change.
        return set(joined_members(conn, room_id))
    return {user_id} if private else set()


def _move_receipt(
    conn: sqlite3.Connection,
    log_seq: int,
    room_id: str,
    user_id: str,
    rtype: str,
    thread_id: str,
    event_id: str,
    position: Position,
    ts: int,
) -> bool:
    row = conn.execute(
        "SELECT seq, idx FROM receipts WHERE room_id = ? AND user_id = ? AND receipt_type = ?"
        " AND thread_id = ?",
        (room_id, user_id, rtype, thread_id),
    ).fetchone()
    if row is not None and (int(row[0]), int(row[1])) >= position:
        return False
    conn.execute(
        "INSERT OR REPLACE INTO receipts (room_id, user_id, receipt_type, thread_id, event_id,"
        " seq, idx, ts, log_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (room_id, user_id, rtype, thread_id, event_id, position[0], position[1], ts, log_seq),
    )
    return True


def _move_marker(
    conn: sqlite3.Connection,
    log_seq: int,
    room_id: str,
    user_id: str,
    event_id: str,
    position: Position,
) -> bool:
    row = conn.execute(
        "SELECT seq, idx FROM read_markers WHERE room_id = ? AND user_id = ?", (room_id, user_id)
    ).fetchone()
    if row is not None and (int(row[0]), int(row[1])) >= position:
        return False
    conn.execute(
        "INSERT OR REPLACE INTO read_markers (room_id, user_id, event_id, seq, idx, log_seq)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (room_id, user_id, event_id, position[0], position[1], log_seq),
    )
    return True


def apply_presence(conn: sqlite3.Connection, msg: LogMessage, fact: PresenceSet) -> set[str]:
    if fact.presence not in PRESENCE_STATES:
        return set()
    conn.execute(
        "INSERT OR REPLACE INTO presence (user_id, presence, status_msg, active_ts, log_seq)"
        " VALUES (?, ?, ?, ?, ?)",
        (fact.user_id, fact.presence, fact.status_msg, fact.ts, msg.seq),
    )
    return {fact.user_id, *room_mates(conn, fact.user_id)}


EXTENSION = ViewExtension(name="receipts", schema=SCHEMA)


# --- reading ------------------------------------------------------------------


def membership(conn: sqlite3.Connection, room_id: str, user_id: str) -> str:
    row = conn.execute(
        "SELECT membership FROM members WHERE room_id = ? AND user_id = ?", (room_id, user_id)
    ).fetchone()
    return str(row[0]) if row else "leave"


def event_position(conn: sqlite3.Connection, room_id: str, event_id: str) -> Position | None:
    row = conn.execute(
        "SELECT seq, idx FROM events WHERE event_id = ? AND room_id = ?", (event_id, room_id)
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else None


def event_places(conn: sqlite3.Connection, event_ids: list[str]) -> dict[str, tuple[str, Position]]:
    """Room and position of each stored event among ``event_ids``."""
    places: dict[str, tuple[str, Position]] = {}
    for start in range(0, len(event_ids), 500):
        chunk = event_ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for row in conn.execute(
            f"SELECT event_id, room_id, seq, idx FROM events WHERE event_id IN ({marks})", chunk
        ):
            places[str(row[0])] = (str(row[1]), (int(row[2]), int(row[3])))
    return places


def joined_members(conn: sqlite3.Connection, room_id: str) -> list[str]:
    return [
        str(r[0])
        for r in conn.execute(
            "SELECT user_id FROM members WHERE room_id = ? AND membership = 'join'", (room_id,)
        )
    ]


def join_positions(conn: sqlite3.Connection, room_id: str) -> dict[str, tuple[int, int]]:
    """Each joined member's position where their current stay began.

    A later profile change re-sends a join event; it must not count as joining
    anew, so the streak start is the first join after the last non-join.
    """
    start: dict[str, tuple[int, int] | None] = {}
    for user, seq, idx, membership in conn.execute(
        "SELECT user_id, seq, idx, membership FROM membership_changes WHERE room_id = ?"
        " ORDER BY seq, idx",
        (room_id,),
    ):
        if membership == "join":
            if start.get(user) is None:
                start[user] = (int(seq), int(idx))
        else:
            start[user] = None
    return {user: pos for user, pos in start.items() if pos is not None}


def room_mates(conn: sqlite3.Connection, user_id: str) -> set[str]:
    """Everyone joined to a room that ``user_id`` is joined to (including themselves)."""
    return {
        str(r[0])
        for r in conn.execute(
            "SELECT DISTINCT b.user_id FROM members a JOIN members b ON b.room_id = a.room_id"
            " WHERE a.user_id = ? AND a.membership = 'join' AND b.membership = 'join'",
            (user_id,),
        )
    }


def receipts_between(
    conn: sqlite3.Connection, room_id: str, after: int, upto: int
) -> list[Receipt]:
    """Receipts of a room that changed at a partition sequence in (after, upto]."""
    rows = conn.execute(
        "SELECT user_id, receipt_type, thread_id, event_id, ts FROM receipts"
        " WHERE room_id = ? AND log_seq > ? AND log_seq <= ? ORDER BY log_seq",
        (room_id, after, upto),
    )
    return [Receipt(str(r[0]), str(r[1]), str(r[2]), str(r[3]), int(r[4])) for r in rows]


def read_receipt_positions(
    conn: sqlite3.Connection, room_id: str, user_id: str | None = None
) -> list[tuple[str, Position]]:
    """(user, position) of every read receipt in a room, or of one user's."""
    sql = "SELECT user_id, seq, idx FROM receipts WHERE room_id = ? AND receipt_type IN (?, ?)"
    args: list[Any] = [room_id, *READ_TYPES]
    if user_id is not None:
        sql += " AND user_id = ?"
        args.append(user_id)
    return [(str(r[0]), (int(r[1]), int(r[2]))) for r in conn.execute(sql, args)]


def fully_read(conn: sqlite3.Connection, room_id: str, user_id: str) -> tuple[str, int] | None:
    """The user's m.fully_read marker in a room and the sequence it was set at."""
    row = conn.execute(
        "SELECT event_id, log_seq FROM read_markers WHERE room_id = ? AND user_id = ?",
        (room_id, user_id),
    ).fetchone()
    return (str(row[0]), int(row[1])) if row else None


def last_event_position(conn: sqlite3.Connection, room_id: str) -> tuple[int, int] | None:
    row = conn.execute(
        "SELECT seq, idx FROM events WHERE room_id = ? ORDER BY seq DESC, idx DESC LIMIT 1",
        (room_id,),
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else None


def counted_events_after(
    conn: sqlite3.Connection,
    room_id: str,
    position: Position,
    types: Iterable[str],
    not_sender: str,
    limit: int,
) -> list[sqlite3.Row]:
    """Newest-first events of ``types`` after ``position`` not sent by ``not_sender``."""
    wanted = list(types)
    marks = ",".join("?" * len(wanted))
    return list(
        conn.execute(
            f"SELECT type, sender, json FROM events WHERE room_id = ?"
            f" AND (seq > ? OR (seq = ? AND idx > ?)) AND type IN ({marks}) AND sender != ?"
            f" ORDER BY seq DESC, idx DESC LIMIT ?",
            (room_id, position[0], position[0], position[1], *wanted, not_sender, limit),
        )
    )


def last_join(conn: sqlite3.Connection, room_id: str, user_id: str) -> Position | None:
    row = conn.execute(
        "SELECT seq, idx FROM membership_changes WHERE room_id = ? AND user_id = ?"
        " AND membership = 'join' ORDER BY seq DESC, idx DESC LIMIT 1",
        (room_id, user_id),
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else None


def member_event_json(conn: sqlite3.Connection, room_id: str, user_id: str) -> str | None:
    row = conn.execute(
        "SELECT e.json FROM state s JOIN events e ON e.event_id = s.event_id"
        " WHERE s.room_id = ? AND s.type = 'm.room.member' AND s.state_key = ?",
        (room_id, user_id),
    ).fetchone()
    return str(row[0]) if row else None


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
