"""The view's public room directory: each room's published visibility (the only writer
of ``room_directory``), and the reads behind /publicRooms, aliases and user search.
Aliases themselves are rooms' (``aliases``, outlast/rooms/tables.py); profiles are
profiles' (outlast/profiles/tables.py).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from outlast.log.client import LogMessage
from outlast.log.facts import RoomListed

SCHEMA = """
CREATE TABLE IF NOT EXISTS room_directory (
    room_id TEXT PRIMARY KEY, visibility TEXT NOT NULL, seq INTEGER NOT NULL
);
"""

# State types a directory entry is built from.
ENTRY_TYPES = (
    "m.room.name",
    "m.room.topic",
    "m.room.canonical_alias",
    "m.room.avatar",
    "m.room.join_rules",
    "m.room.history_visibility",
    "m.room.guest_access",
    "m.room.create",
)


def apply_room_listed(conn: sqlite3.Connection, msg: LogMessage, fact: RoomListed) -> set[str]:
    conn.execute(
        "INSERT OR REPLACE INTO room_directory (room_id, visibility, seq) VALUES (?, ?, ?)",
        (fact.room_id, fact.visibility, msg.seq),
    )
    return set()


# --- reads ------------------------------------------------------------------


def visibility(conn: sqlite3.Connection, room_id: str) -> str:
    row = conn.execute(
        "SELECT visibility FROM room_directory WHERE room_id = ?", (room_id,)
    ).fetchone()
    return str(row[0]) if row else "private"


def room_aliases(conn: sqlite3.Connection, room_id: str) -> list[str]:
    rows = conn.execute("SELECT alias FROM aliases WHERE room_id = ? ORDER BY alias", (room_id,))
    return [str(r[0]) for r in rows]


def alias_row(conn: sqlite3.Connection, alias: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        "SELECT alias, room_id, creator FROM aliases WHERE alias = ?", (alias,)
    ).fetchone()
    return row


def published_rooms(conn: sqlite3.Connection) -> list[tuple[str, int, dict[str, Any]]]:
    """(room id, joined members, {state type: content}) for every public room."""
    rooms = [
        str(r[0])
        for r in conn.execute(
            "SELECT d.room_id FROM room_directory d JOIN rooms r ON r.room_id = d.room_id"
            " WHERE d.visibility = 'public'"
        )
    ]
    out = []
    marks = ",".join("?" for _ in ENTRY_TYPES)
    for room_id in rooms:
        joined = conn.execute(
            "SELECT COUNT(*) FROM members WHERE room_id = ? AND membership = 'join'", (room_id,)
        ).fetchone()[0]
        state: dict[str, Any] = {}
        for event_type, raw in conn.execute(
            "SELECT s.type, e.json FROM state s JOIN events e ON e.event_id = s.event_id"
            f" WHERE s.room_id = ? AND s.state_key = '' AND s.type IN ({marks})",
            (room_id, *ENTRY_TYPES),
        ):
            content = json.loads(raw).get("content")
            state[str(event_type)] = content if isinstance(content, dict) else {}
        out.append((room_id, int(joined), state))
    return out


def directory_candidates(conn: sqlite3.Connection, user_id: str) -> list[tuple[str, Any, Any]]:
    """(user id, display name, avatar url) of users who share a joined room with ``user_id``
    or are joined to a room whose join rule is public; deactivated users excluded."""
    rows = conn.execute(
        """
        WITH visible(user_id) AS (
            SELECT m2.user_id FROM members m1
            JOIN members m2 ON m2.room_id = m1.room_id AND m2.membership = 'join'
            WHERE m1.user_id = ? AND m1.membership = 'join'
            UNION
            SELECT m.user_id FROM members m
            JOIN state s ON s.room_id = m.room_id AND s.type = 'm.room.join_rules'
                AND s.state_key = ''
            JOIN events e ON e.event_id = s.event_id
            WHERE m.membership = 'join' AND json_extract(e.json, '$.content.join_rule') = 'public'
        )
        SELECT v.user_id, p.value, a.value FROM visible v
        LEFT JOIN users u ON u.user_id = v.user_id
        LEFT JOIN profiles p ON p.user_id = v.user_id AND p.key = 'displayname'
        LEFT JOIN profiles a ON a.user_id = v.user_id AND a.key = 'avatar_url'
        WHERE COALESCE(u.deactivated, 0) = 0
        """,
        (user_id,),
    )
    return [(str(r[0]), _loads(r[1]), _loads(r[2])) for r in rows]


def _loads(raw: str | None) -> Any:
    return json.loads(raw) if raw is not None else None
