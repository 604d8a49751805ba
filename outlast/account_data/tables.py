"""View table for account data (global and per room), including room tags.

Each row remembers the users-stream sequence of its last change, so /sync
can send exactly what changed since a token's users-stream position. Tags are
facts per tag (``room_tag``), merged into the room's ``m.tag`` content here,
in log order: two devices tagging at once never lose each other's tag.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from outlast.log.client import LogMessage
from outlast.log.facts import GLOBAL, AccountDataSet, RoomTagged

IGNORED_USER_LIST = "m.ignored_user_list"

TAG_TYPE = "m.tag"

SCHEMA = """
CREATE TABLE IF NOT EXISTS account_data (
    user_id TEXT NOT NULL, room_id TEXT NOT NULL, type TEXT NOT NULL,
    content TEXT NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (user_id, room_id, type)
);
CREATE INDEX IF NOT EXISTS account_data_by_seq ON account_data (user_id, seq);
"""


def _store(
    conn: sqlite3.Connection,
    user_id: str,
    room_id: str,
    kind: str,
    content: dict[str, Any],
    seq: int,
) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO account_data (user_id, room_id, type, content, seq)"
        " VALUES (?, ?, ?, ?, ?)",
        (user_id, room_id, kind, json.dumps(content), seq),
    )


def apply_account_data(conn: sqlite3.Connection, msg: LogMessage, fact: AccountDataSet) -> set[str]:
    _store(conn, fact.user_id, fact.room_id or GLOBAL, fact.type, fact.content, msg.seq)
    return {fact.user_id}


def apply_room_tag(conn: sqlite3.Connection, msg: LogMessage, fact: RoomTagged) -> set[str]:
    current = get(conn, fact.user_id, fact.room_id, TAG_TYPE) or {}
    tags = current.get("tags")
    tags = dict(tags) if isinstance(tags, dict) else {}
    if fact.content is None:
        tags.pop(fact.tag, None)
    else:
        tags[fact.tag] = fact.content
    _store(conn, fact.user_id, fact.room_id, TAG_TYPE, {**current, "tags": tags}, msg.seq)
    return {fact.user_id}


# --- reads ------------------------------------------------------------------


def get(conn: sqlite3.Connection, user_id: str, room_id: str, kind: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT content FROM account_data WHERE user_id = ? AND room_id = ? AND type = ?",
        (user_id, room_id, kind),
    ).fetchone()
    return json.loads(row[0]) if row else None


def ignored_users(conn: sqlite3.Connection, user_id: str) -> frozenset[str]:
    """The users the global ``m.ignored_user_list`` of ``user_id`` names."""
    content = get(conn, user_id, GLOBAL, IGNORED_USER_LIST) or {}
    ignored = content.get("ignored_users")
    return (
        frozenset(u for u in ignored if isinstance(u, str))
        if isinstance(ignored, dict)
        else frozenset()
    )


def rooms_changed(conn: sqlite3.Connection, user_id: str, after: int, upto: int) -> set[str]:
    """Scopes (room ids, or GLOBAL) of the user's account data changed in (after, upto]."""
    rows = conn.execute(
        "SELECT DISTINCT room_id FROM account_data WHERE user_id = ? AND seq > ? AND seq <= ?",
        (user_id, after, upto),
    )
    return {str(r[0]) for r in rows}


def changed(
    conn: sqlite3.Connection, user_id: str, room_id: str, after: int | None, upto: int
) -> list[dict[str, Any]]:
    """Account data events of one scope changed in (after, upto]; all if ``after`` is None."""
    rows = conn.execute(
        "SELECT type, content FROM account_data WHERE user_id = ? AND room_id = ?"
        " AND seq > ? AND seq <= ? ORDER BY seq",
        (user_id, room_id, -1 if after is None else after, upto),
    )
    return [{"type": str(r[0]), "content": json.loads(r[1])} for r in rows]
