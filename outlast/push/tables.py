"""View tables and log handlers for push rules and pushers.

- ``push_rules``: one row per user holding the whole rules document (see
  ``outlast/core/pushrules.py``) and the log sequence that wrote it. The
  service fences its next write on that sequence, so two concurrent edits
  (at two sites) cannot silently overwrite each other; /sync uses it to tell
  whether ``m.push_rules`` changed since a token.
- ``pushers``: one row per (app_id, pushkey, user). Stored only; no delivery.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from outlast.log.client import LogMessage
from outlast.log.facts import PusherDeleted, PusherSet, PushRulesSet

SCHEMA = """
CREATE TABLE IF NOT EXISTS push_rules (
    user_id TEXT PRIMARY KEY, doc TEXT NOT NULL, seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS pushers (
    app_id TEXT NOT NULL, pushkey TEXT NOT NULL, user_id TEXT NOT NULL,
    pusher TEXT NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (app_id, pushkey, user_id)
);
CREATE INDEX IF NOT EXISTS pushers_by_user ON pushers (user_id);
"""


def apply_push_rules(conn: sqlite3.Connection, msg: LogMessage, fact: PushRulesSet) -> set[str]:
    conn.execute(
        "INSERT INTO push_rules (user_id, doc, seq) VALUES (?, ?, ?)"
        " ON CONFLICT (user_id) DO UPDATE SET doc = excluded.doc, seq = excluded.seq",
        (fact.user_id, json.dumps(fact.doc), msg.seq),
    )
    return {fact.user_id}


def apply_pusher_set(conn: sqlite3.Connection, msg: LogMessage, fact: PusherSet) -> set[str]:
    pusher = fact.pusher
    if not fact.append:
        # Spec: without append, this pushkey now belongs to this user only.
        conn.execute(
            "DELETE FROM pushers WHERE app_id = ? AND pushkey = ? AND user_id != ?",
            (pusher["app_id"], pusher["pushkey"], fact.user_id),
        )
    conn.execute(
        "INSERT INTO pushers (app_id, pushkey, user_id, pusher, seq) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (app_id, pushkey, user_id) DO UPDATE"
        " SET pusher = excluded.pusher, seq = excluded.seq",
        (pusher["app_id"], pusher["pushkey"], fact.user_id, json.dumps(pusher), msg.seq),
    )
    return set()


def apply_pusher_delete(conn: sqlite3.Connection, msg: LogMessage, fact: PusherDeleted) -> set[str]:
    conn.execute(
        "DELETE FROM pushers WHERE app_id = ? AND pushkey = ? AND user_id = ?",
        (fact.app_id, fact.pushkey, fact.user_id),
    )
    return set()


def rules_document(conn: sqlite3.Connection, user_id: str) -> tuple[dict[str, Any] | None, int]:
    """The user's stored rules document (None: untouched defaults) and its sequence."""
    row = conn.execute("SELECT doc, seq FROM push_rules WHERE user_id = ?", (user_id,)).fetchone()
    if row is None:
        return None, 0
    return json.loads(row["doc"]), int(row["seq"])


def pushers(conn: sqlite3.Connection, user_id: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT pusher FROM pushers WHERE user_id = ? ORDER BY seq", (user_id,)
    ).fetchall()
    return [json.loads(r["pusher"]) for r in rows]
