"""The view's read state: receipts and fully-read markers (the only writer of both).

Receipts and markers arrive on a room's receipt subject, in the same partition
stream as the room's events, so the receipted event is always applied before
the receipt and every site derives the same rows. For each (room, user,
receipt type, thread) only the furthest receipt is kept: a receipt for an
earlier event than the stored one is ignored (markers never move backwards).
``log_seq`` is the partition sequence at which a row last changed; /sync
compares it with the positions in its token.

Handlers are defensive: a malformed fact is skipped, never raised, because a
failing batch would be retried by the projector for ever.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

from outlast.core.unread import MARKER_TYPES, PRIVATE_TYPES, READ_TYPES, Position, Receipt
from outlast.log.client import LogMessage
from outlast.log.facts import ReceiptsMarked
from outlast.view.queries import event_position, joined_members, membership

SCHEMA = """
CREATE TABLE IF NOT EXISTS receipts (
    room_id TEXT NOT NULL, user_id TEXT NOT NULL, receipt_type TEXT NOT NULL,
    thread_id TEXT NOT NULL, event_id TEXT NOT NULL, seq INTEGER NOT NULL,
    idx INTEGER NOT NULL, ts INTEGER NOT NULL, log_seq INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_id, receipt_type, thread_id)
);
CREATE INDEX IF NOT EXISTS receipts_by_arrival ON receipts (room_id, log_seq);
-- /sync asks which rooms got receipts in a window, across all of a user's rooms.
CREATE INDEX IF NOT EXISTS receipts_by_log_seq ON receipts (log_seq);
CREATE TABLE IF NOT EXISTS read_markers (
    room_id TEXT NOT NULL, user_id TEXT NOT NULL, event_id TEXT NOT NULL,
    seq INTEGER NOT NULL, idx INTEGER NOT NULL, log_seq INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX IF NOT EXISTS read_markers_by_user ON read_markers (user_id, log_seq);
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


# --- reading ------------------------------------------------------------------


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


def rooms_with_marks(
    conn: sqlite3.Connection, user_id: str, windows: Iterable[tuple[int, int]]
) -> set[str]:
    """Rooms with a receipt (anyone's) or a marker (the user's) that changed at a
    sequence in one of the ``(after, upto]`` windows."""
    rooms: set[str] = set()
    for after, upto in windows:
        rows = conn.execute(
            "SELECT DISTINCT room_id FROM receipts WHERE log_seq > ? AND log_seq <= ?"
            " UNION SELECT room_id FROM read_markers"
            " WHERE user_id = ? AND log_seq > ? AND log_seq <= ?",
            (after, upto, user_id, after, upto),
        )
        rooms.update(str(r[0]) for r in rows)
    return rooms


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


def read_marks(
    conn: sqlite3.Connection, room_id: str, user_id: str
) -> list[tuple[str, str, Position]]:
    """(receipt type, thread id or "", position) of one user's read receipts in a room."""
    rows = conn.execute(
        "SELECT receipt_type, thread_id, seq, idx FROM receipts WHERE room_id = ? AND user_id = ?"
        " AND receipt_type IN (?, ?)",
        (room_id, user_id, *READ_TYPES),
    )
    return [(str(r[0]), str(r[1]), (int(r[2]), int(r[3]))) for r in rows]
