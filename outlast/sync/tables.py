"""The view's stored /sync filters: one row per (user, content-derived filter id)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from outlast.log.facts import FilterStored

SCHEMA = """
CREATE TABLE IF NOT EXISTS filters (
    user_id TEXT NOT NULL, filter_id TEXT NOT NULL, json TEXT NOT NULL,
    PRIMARY KEY (user_id, filter_id)
);
"""


def apply_filter(conn: sqlite3.Connection, fact: FilterStored) -> set[str]:
    conn.execute(
        "INSERT OR IGNORE INTO filters (user_id, filter_id, json) VALUES (?, ?, ?)",
        (fact.user_id, fact.filter_id, json.dumps(fact.filter)),
    )
    return set()


def stored_filter(conn: sqlite3.Connection, user_id: str, filter_id: str) -> Any:
    row = conn.execute(
        "SELECT json FROM filters WHERE user_id = ? AND filter_id = ?", (user_id, filter_id)
    ).fetchone()
    return json.loads(row[0]) if row else None
