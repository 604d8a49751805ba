"""Read queries for devices, keys and the to-device inbox (tables in ext_devices)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import Any


def device_keys(
    conn: sqlite3.Connection, user_id: str, device_ids: list[str]
) -> dict[str, dict[str, Any]]:
    """Published identity keys of a user's live devices, with their display names."""
    rows = conn.execute(
        "SELECT k.device_id, k.json, d.display_name FROM e2e_device_keys k JOIN devices d"
        " ON d.user_id = k.user_id AND d.device_id = k.device_id WHERE k.user_id = ?",
        (user_id,),
    )
    wanted = set(device_ids)
    found: dict[str, dict[str, Any]] = {}
    for device_id, raw, display_name in rows:
        if wanted and device_id not in wanted:
            continue
        keys = json.loads(raw)
        unsigned = dict(keys.get("unsigned") or {})
        if display_name:
            unsigned["device_display_name"] = display_name
        keys["unsigned"] = unsigned
        found[device_id] = keys
    return found


def stored_device_keys(conn: sqlite3.Connection, user_id: str, device_id: str) -> str | None:
    row = conn.execute(
        "SELECT json FROM e2e_device_keys WHERE user_id = ? AND device_id = ?",
        (user_id, device_id),
    ).fetchone()
    return str(row[0]) if row else None


def one_time_keys(
    conn: sqlite3.Connection, user_id: str, device_id: str, key_ids: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], str]:
    """Stored (algorithm, key id) -> key JSON, claimed or not, for the given ids."""
    found: dict[tuple[str, str], str] = {}
    for algorithm, key_id in key_ids:
        row = conn.execute(
            "SELECT json FROM e2e_one_time_keys WHERE user_id = ? AND device_id = ?"
            " AND algorithm = ? AND key_id = ?",
            (user_id, device_id, algorithm, key_id),
        ).fetchone()
        if row is not None:
            found[(algorithm, key_id)] = str(row[0])
    return found


def key_counts(conn: sqlite3.Connection, user_id: str, device_id: str) -> dict[str, int]:
    rows = conn.execute(
        "SELECT algorithm, COUNT(*) FROM e2e_one_time_keys WHERE user_id = ? AND device_id = ?"
        " AND claimed = 0 GROUP BY algorithm",
        (user_id, device_id),
    )
    return {str(r[0]): int(r[1]) for r in rows}


def unused_fallback_types(conn: sqlite3.Connection, user_id: str, device_id: str) -> list[str]:
    rows = conn.execute(
        "SELECT algorithm FROM e2e_fallback_keys WHERE user_id = ? AND device_id = ? AND used = 0"
        " ORDER BY algorithm",
        (user_id, device_id),
    )
    return [str(r[0]) for r in rows]


def key_subject_seq(conn: sqlite3.Connection, user_id: str, device_id: str) -> int:
    """Sequence of the last fact on the device's keys subject this view has applied."""
    row = conn.execute(
        "SELECT seq FROM e2e_key_subjects WHERE user_id = ? AND device_id = ?",
        (user_id, device_id),
    ).fetchone()
    return int(row[0]) if row else 0


def next_one_time_key(
    conn: sqlite3.Connection, user_id: str, device_id: str, algorithm: str
) -> tuple[str, Any] | None:
    """The oldest unclaimed one-time key of an algorithm: (key id, key)."""
    row = conn.execute(
        "SELECT key_id, json FROM e2e_one_time_keys WHERE user_id = ? AND device_id = ?"
        " AND algorithm = ? AND claimed = 0 ORDER BY seq, key_id LIMIT 1",
        (user_id, device_id, algorithm),
    ).fetchone()
    return (str(row[0]), json.loads(row[1])) if row else None


def fallback_key(
    conn: sqlite3.Connection, user_id: str, device_id: str, algorithm: str
) -> tuple[str, Any, bool] | None:
    """The device's fallback key of an algorithm: (key id, key, used)."""
    row = conn.execute(
        "SELECT key_id, json, used FROM e2e_fallback_keys WHERE user_id = ? AND device_id = ?"
        " AND algorithm = ?",
        (user_id, device_id, algorithm),
    ).fetchone()
    return (str(row[0]), json.loads(row[1]), bool(row[2])) if row else None


def to_device_sent(
    conn: sqlite3.Connection, sender: str, sender_device: str, txn_id: str, target: str
) -> bool:
    row = conn.execute(
        "SELECT 1 FROM to_device_txns WHERE sender = ? AND sender_device = ? AND txn_id = ?"
        " AND target = ?",
        (sender, sender_device, txn_id, target),
    ).fetchone()
    return row is not None


def inbox(
    conn: sqlite3.Connection, user_id: str, device_id: str, after: int, upto: int
) -> list[dict[str, Any]]:
    """To-device messages for a device with users-stream position in (after, upto]."""
    rows = conn.execute(
        "SELECT sender, type, content FROM to_device_inbox WHERE user_id = ? AND device_id = ?"
        " AND seq > ? AND seq <= ? ORDER BY seq, idx",
        (user_id, device_id, after, upto),
    )
    return [{"sender": r[0], "type": r[1], "content": json.loads(r[2])} for r in rows]


def inbox_has_upto(conn: sqlite3.Connection, user_id: str, device_id: str, upto: int) -> bool:
    row = conn.execute(
        "SELECT 1 FROM to_device_inbox WHERE user_id = ? AND device_id = ? AND seq <= ? LIMIT 1",
        (user_id, device_id, upto),
    ).fetchone()
    return row is not None


def users_with_device_changes(conn: sqlite3.Connection, after: int, upto: int) -> set[str]:
    rows = conn.execute(
        "SELECT DISTINCT user_id FROM device_list_changes WHERE seq > ? AND seq <= ?",
        (after, upto),
    )
    return {str(r[0]) for r in rows}
