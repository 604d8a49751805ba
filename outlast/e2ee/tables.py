"""The view's end-to-end encryption tables: the keys devices publish, one-time-key
claims, device-list changes and the to-device inbox (the only writer of each).

Devices themselves are accounts' (outlast/accounts/tables.py). Invariants:

- A one-time key row is never deleted while its device lives, only marked
  claimed: a re-upload of a claimed key id is recognised and never handed
  out again.
- ``e2e_key_subjects`` holds, per device, the sequence of the last fact on
  that device's keys subject this view applied. A claim is fenced on it, so
  two claimers (any worker, any site) cannot both commit the same key.
- Whenever a device disappears, however it happened (a deletion, a logout, a
  password change or a deactivation), :func:`devices_gone` drops its keys and
  inbox and records a device-list change at the sequence of the fact that
  removed it (and ``signing_tables.forget_device_signatures`` the signatures on
  or by it). The projector calls both for every fact that removes devices
  (outlast/view/apply.py): explicit steps, where triggers on accounts' table
  used to do it unseen.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from outlast.log.client import LogMessage
from outlast.log.facts import (
    KeyClaimed,
    KeysUploaded,
    ToDeviceReceived,
    ToDeviceSent,
)
from outlast.view.queries import has_device, sharing_users

SCHEMA = """
CREATE TABLE IF NOT EXISTS e2e_device_keys (
    user_id TEXT NOT NULL, device_id TEXT NOT NULL, json TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id)
);
CREATE TABLE IF NOT EXISTS e2e_one_time_keys (
    user_id TEXT NOT NULL, device_id TEXT NOT NULL, algorithm TEXT NOT NULL,
    key_id TEXT NOT NULL, json TEXT NOT NULL, seq INTEGER NOT NULL,
    claimed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, device_id, algorithm, key_id)
);
CREATE TABLE IF NOT EXISTS e2e_fallback_keys (
    user_id TEXT NOT NULL, device_id TEXT NOT NULL, algorithm TEXT NOT NULL,
    key_id TEXT NOT NULL, json TEXT NOT NULL, used INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, device_id, algorithm)
);
CREATE TABLE IF NOT EXISTS e2e_key_subjects (
    user_id TEXT NOT NULL, device_id TEXT NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (user_id, device_id)
);
CREATE TABLE IF NOT EXISTS device_list_changes (user_id TEXT NOT NULL, seq INTEGER);
CREATE INDEX IF NOT EXISTS device_list_changes_by_seq ON device_list_changes (seq);
CREATE TABLE IF NOT EXISTS to_device_inbox (
    user_id TEXT NOT NULL, device_id TEXT NOT NULL, seq INTEGER NOT NULL, idx INTEGER NOT NULL,
    sender TEXT NOT NULL, type TEXT NOT NULL, content TEXT NOT NULL,
    PRIMARY KEY (user_id, device_id, seq, idx)
);
CREATE TABLE IF NOT EXISTS to_device_txns (
    sender TEXT NOT NULL, sender_device TEXT NOT NULL, txn_id TEXT NOT NULL,
    target TEXT NOT NULL, PRIMARY KEY (sender, sender_device, txn_id, target)
);
"""


def record_device_change(conn: sqlite3.Connection, user_id: str, seq: int) -> set[str]:
    """Record that the user's devices or keys changed at ``seq``; return whose /sync it reaches
    (the user and everyone in a room with them)."""
    conn.execute("INSERT INTO device_list_changes (user_id, seq) VALUES (?, ?)", (user_id, seq))
    return sharing_users(conn, user_id)


def devices_gone(conn: sqlite3.Connection, user_id: str, device_ids: list[str], seq: int) -> None:
    """Devices that accounts removed at ``seq``: their keys and inbox go, and each is a
    device-list change (their cross-signatures: signing_tables.forget_device_signatures)."""
    for device_id in device_ids:
        for table in ("e2e_device_keys", "e2e_one_time_keys", "e2e_fallback_keys"):
            conn.execute(
                f"DELETE FROM {table} WHERE user_id = ? AND device_id = ?", (user_id, device_id)
            )
        conn.execute(
            "DELETE FROM to_device_inbox WHERE user_id = ? AND device_id = ?", (user_id, device_id)
        )
        conn.execute("INSERT INTO device_list_changes (user_id, seq) VALUES (?, ?)", (user_id, seq))


def _record_subject(conn: sqlite3.Connection, user_id: str, device_id: str, seq: int) -> None:
    conn.execute(
        "INSERT INTO e2e_key_subjects (user_id, device_id, seq) VALUES (?, ?, ?)"
        " ON CONFLICT (user_id, device_id) DO UPDATE SET seq = excluded.seq",
        (user_id, device_id, seq),
    )


def apply_keys_uploaded(conn: sqlite3.Connection, msg: LogMessage, fact: KeysUploaded) -> set[str]:
    user_id, device_id = fact.user_id, fact.device_id
    _record_subject(conn, user_id, device_id, msg.seq)
    if not has_device(conn, user_id, device_id):
        return set()  # deleted before its upload was applied: nothing to publish
    affected: set[str] = set()
    device_keys = fact.device_keys
    if device_keys is not None:
        raw = json.dumps(device_keys, sort_keys=True)
        old = conn.execute(
            "SELECT json FROM e2e_device_keys WHERE user_id = ? AND device_id = ?",
            (user_id, device_id),
        ).fetchone()
        if old is None or old[0] != raw:
            conn.execute(
                "INSERT OR REPLACE INTO e2e_device_keys (user_id, device_id, json)"
                " VALUES (?, ?, ?)",
                (user_id, device_id, raw),
            )
            affected = record_device_change(conn, user_id, msg.seq)
    for key_id, key in (fact.one_time_keys or {}).items():
        algorithm, _, ident = key_id.partition(":")
        conn.execute(
            "INSERT OR IGNORE INTO e2e_one_time_keys"
            " (user_id, device_id, algorithm, key_id, json, seq) VALUES (?, ?, ?, ?, ?, ?)",
            (user_id, device_id, algorithm, ident, json.dumps(key, sort_keys=True), msg.seq),
        )
    for key_id, key in (fact.fallback_keys or {}).items():
        algorithm, _, ident = key_id.partition(":")
        raw = json.dumps(key, sort_keys=True)
        # Re-uploading the same fallback key keeps its "used" mark (spec: replaced, not reset).
        conn.execute(
            "INSERT INTO e2e_fallback_keys (user_id, device_id, algorithm, key_id, json, used)"
            " VALUES (?, ?, ?, ?, ?, 0) ON CONFLICT (user_id, device_id, algorithm) DO UPDATE SET"
            " used = CASE WHEN e2e_fallback_keys.key_id = excluded.key_id"
            " AND e2e_fallback_keys.json = excluded.json THEN e2e_fallback_keys.used ELSE 0 END,"
            " key_id = excluded.key_id, json = excluded.json",
            (user_id, device_id, algorithm, ident, raw),
        )
    return affected | {user_id}


def apply_key_claimed(conn: sqlite3.Connection, msg: LogMessage, fact: KeyClaimed) -> set[str]:
    user_id, device_id = fact.user_id, fact.device_id
    _record_subject(conn, user_id, device_id, msg.seq)
    table, flag = (
        ("e2e_fallback_keys", "used") if fact.fallback else ("e2e_one_time_keys", "claimed")
    )
    conn.execute(
        f"UPDATE {table} SET {flag} = 1 WHERE user_id = ? AND device_id = ?"
        " AND algorithm = ? AND key_id = ?",
        (user_id, device_id, fact.algorithm, fact.key_id),
    )
    return set()  # counts ride along on the owner's next sync; no need to wake it


def apply_to_device(conn: sqlite3.Connection, msg: LogMessage, fact: ToDeviceSent) -> set[str]:
    """Store one sender's message for each addressed device ("*": every device now)."""
    target = fact.target
    done = conn.execute(
        "INSERT OR IGNORE INTO to_device_txns (sender, sender_device, txn_id, target)"
        " VALUES (?, ?, ?, ?)",
        (fact.sender, fact.sender_device, fact.txn_id, target),
    )
    if not done.rowcount:
        return set()  # a retry that slipped past the log's dedup window
    rows = conn.execute("SELECT device_id FROM devices WHERE user_id = ?", (target,))
    devices = {r[0] for r in rows}
    delivered: dict[str, Any] = {}
    for device_id, content in fact.messages.items():
        if device_id == "*":
            for each in devices:
                delivered.setdefault(each, content)
        elif device_id in devices:
            delivered[device_id] = content
    for idx, (device_id, content) in enumerate(sorted(delivered.items())):
        conn.execute(
            "INSERT OR IGNORE INTO to_device_inbox"
            " (user_id, device_id, seq, idx, sender, type, content) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (target, device_id, msg.seq, idx, fact.sender, fact.type, json.dumps(content)),
        )
    return {target} if delivered else set()


def apply_to_device_received(
    conn: sqlite3.Connection, msg: LogMessage, fact: ToDeviceReceived
) -> set[str]:
    """A device proved (by a later since token) that it has everything up to ``upto``."""
    conn.execute(
        "DELETE FROM to_device_inbox WHERE user_id = ? AND device_id = ? AND seq <= ?",
        (fact.user_id, fact.device_id, fact.upto),
    )
    return set()
