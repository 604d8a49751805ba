"""Reads of the core tables that several capabilities share: accounts (users, tokens,
devices) and rooms (rooms, events, state, members, membership changes, aliases).

One place for them, so a change of those tables' shape is one change here; a
capability's reads of its own tables stay beside them (its ``tables.py``).
Plain functions of a connection; nothing here writes.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from outlast.core.e2ee import MemberChange
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


def forgotten(conn: sqlite3.Connection, room_id: str, user_id: str) -> bool:
    """Whether the user forgot the room (and has not been in it again since)."""
    row = conn.execute(
        "SELECT forgotten FROM members WHERE room_id = ? AND user_id = ?", (room_id, user_id)
    ).fetchone()
    return bool(row and row[0])


def alias_target(conn: sqlite3.Connection, alias: str) -> str | None:
    row = conn.execute("SELECT room_id FROM aliases WHERE alias = ?", (alias,)).fetchone()
    return str(row[0]) if row else None


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


def last_event_position(conn: sqlite3.Connection, room_id: str) -> tuple[int, int] | None:
    row = conn.execute(
        "SELECT seq, idx FROM events WHERE room_id = ? ORDER BY seq DESC, idx DESC LIMIT 1",
        (room_id,),
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else None


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


def sharing_users(conn: sqlite3.Connection, user_id: str) -> set[str]:
    """Users joined to or invited into a room the user is joined to (the user included)."""
    rows = conn.execute(
        "SELECT DISTINCT o.user_id FROM members m JOIN members o ON o.room_id = m.room_id"
        " WHERE m.user_id = ? AND m.membership = 'join' AND o.membership IN ('join', 'invite')",
        (user_id,),
    )
    return {str(r[0]) for r in rows} | {user_id}


def user_rooms(conn: sqlite3.Connection, user_id: str) -> list[tuple[str, str]]:
    """(room id, partition stream) of every room the user has a membership in."""
    rows = conn.execute(
        "SELECT m.room_id, r.stream FROM members m JOIN rooms r ON r.room_id = m.room_id"
        " WHERE m.user_id = ?",
        (user_id,),
    )
    return [(str(r[0]), str(r[1])) for r in rows]


def member_changes(
    conn: sqlite3.Connection, room_id: str, after: int, upto: int
) -> list[MemberChange]:
    rows = conn.execute(
        "SELECT user_id, membership FROM membership_changes WHERE room_id = ?"
        " AND seq > ? AND seq <= ? ORDER BY seq, idx",
        (room_id, after, upto),
    )
    return [MemberChange(room_id, str(r[0]), str(r[1])) for r in rows]


def room_members(conn: sqlite3.Connection, room_id: str) -> set[str]:
    rows = conn.execute(
        "SELECT user_id FROM members WHERE room_id = ? AND membership IN ('join', 'invite')",
        (room_id,),
    )
    return {str(r[0]) for r in rows}


def user_exists(conn: sqlite3.Connection, user_id: str) -> bool:
    return conn.execute("SELECT 1 FROM users WHERE user_id = ?", (user_id,)).fetchone() is not None


def has_device(conn: sqlite3.Connection, user_id: str, device_id: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM devices WHERE user_id = ? AND device_id = ?", (user_id, device_id)
    ).fetchone()
    return row is not None


def device_ids(conn: sqlite3.Connection, user_id: str) -> set[str]:
    rows = conn.execute("SELECT device_id FROM devices WHERE user_id = ?", (user_id,))
    return {str(r[0]) for r in rows}
