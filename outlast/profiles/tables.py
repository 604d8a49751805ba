"""The view's profiles: one row per (user, field), the only writer of ``profiles``.

A profile change is a per-field fact on the user's ``profile`` subject, so two
sites changing different fields never overwrite each other and the last write
of one field wins in log order everywhere.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from outlast.log.client import LogMessage
from outlast.log.facts import ProfileDeleted, ProfileSet

DISPLAYNAME, AVATAR_URL = "displayname", "avatar_url"
MEMBER_FIELDS = (DISPLAYNAME, AVATAR_URL)

SCHEMA = """
CREATE TABLE IF NOT EXISTS profiles (
    user_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (user_id, key)
);
"""


def apply_profile_set(conn: sqlite3.Connection, msg: LogMessage, fact: ProfileSet) -> set[str]:
    conn.execute(
        "INSERT OR REPLACE INTO profiles (user_id, key, value) VALUES (?, ?, ?)",
        (fact.user_id, fact.key, json.dumps(fact.value)),
    )
    return set()


def apply_profile_delete(
    conn: sqlite3.Connection, msg: LogMessage, fact: ProfileDeleted
) -> set[str]:
    conn.execute("DELETE FROM profiles WHERE user_id = ? AND key = ?", (fact.user_id, fact.key))
    return set()


def profile(conn: sqlite3.Connection, user_id: str) -> dict[str, Any]:
    """Every stored profile field of a user (empty if none were ever set)."""
    rows = conn.execute("SELECT key, value FROM profiles WHERE user_id = ?", (user_id,))
    return {str(r[0]): json.loads(r[1]) for r in rows}


def member_fields(conn: sqlite3.Connection, user_id: str) -> dict[str, str]:
    """What a new or updated member event carries from the stored profile."""
    stored = profile(conn, user_id)
    return {k: stored[k] for k in MEMBER_FIELDS if isinstance(stored.get(k), str) and stored[k]}
