"""Read queries over the view. Plain functions of a connection, no writes."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from outlast.core.tokens import Position
from outlast.core.visibility import MembershipChange

StateMap = dict[tuple[str, str], dict[str, Any]]


def session_for_token(conn: sqlite3.Connection, token_hash: str) -> tuple[str, str] | None:
    row = conn.execute(
        "SELECT t.user_id, t.device_id FROM tokens t JOIN users u ON u.user_id = t.user_id"
        " WHERE t.token_hash = ? AND u.deactivated = 0",
        (token_hash,),
    ).fetchone()
    return (row[0], row[1]) if row else None


def user(conn: sqlite3.Connection, user_id: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM users WHERE user_id = ?", (user_id,)
    ).fetchone()
    return row


def room(conn: sqlite3.Connection, room_id: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM rooms WHERE room_id = ?", (room_id,)
    ).fetchone()
    return row


def current_state(conn: sqlite3.Connection, room_id: str) -> StateMap:
    rows = conn.execute(
        "SELECT e.json FROM state s JOIN events e ON e.event_id = s.event_id WHERE s.room_id = ?",
        (room_id,),
    )
    state: StateMap = {}
    for (raw,) in rows:
        event = json.loads(raw)
        state[(event["type"], event["state_key"])] = event
    return state


def state_before(conn: sqlite3.Connection, room_id: str, position: Position) -> StateMap:
    """Room state just before ``position``: the latest state event of each key before it."""
    rows = conn.execute(
        "SELECT json FROM events WHERE room_id = ? AND state_key IS NOT NULL"
        " AND (seq < ? OR (seq = ? AND idx < ?)) ORDER BY seq, idx",
        (room_id, position[0], position[0], position[1]),
    )
    state: StateMap = {}
    for (raw,) in rows:
        event = json.loads(raw)
        state[(event["type"], event["state_key"])] = event
    return state


def membership(conn: sqlite3.Connection, room_id: str, user_id: str) -> str:
    row = conn.execute(
        "SELECT membership FROM members WHERE room_id = ? AND user_id = ?", (room_id, user_id)
    ).fetchone()
    return str(row[0]) if row else "leave"


def rooms_of_user(conn: sqlite3.Connection, user_id: str) -> list[sqlite3.Row]:
    return list(
        conn.execute(
            "SELECT m.room_id, m.membership, m.seq, m.idx, m.forgotten, r.stream"
            " FROM members m JOIN rooms r ON r.room_id = m.room_id WHERE m.user_id = ?",
            (user_id,),
        )
    )


def joined_rooms(conn: sqlite3.Connection, user_id: str) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT room_id FROM members WHERE user_id = ? AND membership = 'join'", (user_id,)
        )
    ]


def member_events(conn: sqlite3.Connection, room_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT e.json FROM state s JOIN events e ON e.event_id = s.event_id"
        " WHERE s.room_id = ? AND s.type = 'm.room.member' ORDER BY s.state_key",
        (room_id,),
    )
    return [json.loads(r[0]) for r in rows]


def membership_changes(
    conn: sqlite3.Connection, room_id: str, user_id: str
) -> list[MembershipChange]:
    rows = conn.execute(
        "SELECT seq, idx, membership FROM membership_changes WHERE room_id = ? AND user_id = ?"
        " ORDER BY seq, idx",
        (room_id, user_id),
    )
    return [MembershipChange((int(r[0]), int(r[1])), str(r[2])) for r in rows]


def event_row(conn: sqlite3.Connection, event_id: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM events WHERE event_id = ?", (event_id,)
    ).fetchone()
    return row


def has_event(conn: sqlite3.Connection, event_id: str) -> bool:
    return (
        conn.execute("SELECT 1 FROM events WHERE event_id = ?", (event_id,)).fetchone() is not None
    )


def events_between(
    conn: sqlite3.Connection,
    room_id: str,
    *,
    after: Position | None,
    before: Position | None,
    limit: int,
    newest_first: bool,
) -> list[sqlite3.Row]:
    """Events with ``after <= position < before`` (either bound optional)."""
    clauses = ["room_id = ?"]
    args: list[Any] = [room_id]
    if after is not None:
        clauses.append("(seq > ? OR (seq = ? AND idx >= ?))")
        args += [after[0], after[0], after[1]]
    if before is not None:
        clauses.append("(seq < ? OR (seq = ? AND idx < ?))")
        args += [before[0], before[0], before[1]]
    order = "DESC" if newest_first else "ASC"
    args.append(limit)
    return list(
        conn.execute(
            f"SELECT * FROM events WHERE {' AND '.join(clauses)}"
            f" ORDER BY seq {order}, idx {order} LIMIT ?",
            args,
        )
    )


def alias_target(conn: sqlite3.Connection, alias: str) -> str | None:
    row = conn.execute("SELECT room_id FROM aliases WHERE alias = ?", (alias,)).fetchone()
    return str(row[0]) if row else None


def stored_filter(conn: sqlite3.Connection, user_id: str, filter_id: str) -> Any:
    row = conn.execute(
        "SELECT json FROM filters WHERE user_id = ? AND filter_id = ?", (user_id, filter_id)
    ).fetchone()
    return json.loads(row[0]) if row else None
