"""The view's stored sliding sync connection states: one row per (user, content id).

A state is written to the log once (content-addressed, like /sync filters) and
projected here at every site, so a ``pos`` naming it works wherever the client
lands next.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from outlast.log.facts import SlidingStateStored

SCHEMA = """
CREATE TABLE IF NOT EXISTS sliding_states (
    user_id TEXT NOT NULL, state_id INTEGER NOT NULL, json TEXT NOT NULL,
    PRIMARY KEY (user_id, state_id)
);
"""


def apply_state(conn: sqlite3.Connection, fact: SlidingStateStored) -> set[str]:
    conn.execute(
        "INSERT OR IGNORE INTO sliding_states (user_id, state_id, json) VALUES (?, ?, ?)",
        (fact.user_id, fact.state_id, json.dumps(fact.state)),
    )
    return set()  # nothing for anyone's long-poll: the writer already has its answer


def stored_state(conn: sqlite3.Connection, user_id: str, state_id: int) -> Any:
    row = conn.execute(
        "SELECT json FROM sliding_states WHERE user_id = ? AND state_id = ?", (user_id, state_id)
    ).fetchone()
    return json.loads(row[0]) if row else None
