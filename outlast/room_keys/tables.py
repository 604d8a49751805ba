"""View tables of server-side key backup: each user's versions and their keys.

A version row keeps its counters (``etag``, ``count``); a deleted version
keeps its row (so deleting it again answers 200, as the spec asks) but loses
its keys. Uploads are judged again here, in log order, with the rules of
outlast/core/key_backup.py: a version that is no longer current takes no
keys, and a key replaces the stored one only if it is better.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from outlast.core import key_backup
from outlast.core.errors import MatrixError
from outlast.core.key_backup import BackupVersion, KeyData, SessionKey
from outlast.log.client import LogMessage
from outlast.log.facts import (
    BackupCreated,
    BackupDeleted,
    BackupKeysDeleted,
    BackupKeysStored,
    BackupUpdated,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS backup_versions (
    user_id TEXT NOT NULL, version INTEGER NOT NULL, algorithm TEXT NOT NULL,
    auth_data TEXT NOT NULL, etag INTEGER NOT NULL, count INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    PRIMARY KEY (user_id, version)
);
CREATE TABLE IF NOT EXISTS backup_keys (
    user_id TEXT NOT NULL, version INTEGER NOT NULL, room_id TEXT NOT NULL,
    session_id TEXT NOT NULL, first_message_index INTEGER NOT NULL,
    forwarded_count INTEGER NOT NULL, is_verified INTEGER NOT NULL,
    session_data TEXT NOT NULL,
    PRIMARY KEY (user_id, version, room_id, session_id)
);
"""


def apply_created(conn: sqlite3.Connection, msg: LogMessage, fact: BackupCreated) -> set[str]:
    conn.execute(
        "INSERT OR IGNORE INTO backup_versions"
        " (user_id, version, algorithm, auth_data, etag, count, deleted)"
        " VALUES (?, ?, ?, ?, 0, 0, 0)",
        (fact.user_id, msg.seq, fact.algorithm, json.dumps(fact.auth_data)),
    )
    return set()


def apply_updated(conn: sqlite3.Connection, fact: BackupUpdated) -> set[str]:
    if not fact.version.isdigit():
        return set()
    conn.execute(
        "UPDATE backup_versions SET auth_data = ?"
        " WHERE user_id = ? AND version = ? AND deleted = 0",
        (json.dumps(fact.auth_data), fact.user_id, int(fact.version)),
    )
    return set()


def apply_deleted(conn: sqlite3.Connection, fact: BackupDeleted) -> set[str]:
    if not fact.version.isdigit():
        return set()
    args = (fact.user_id, int(fact.version))
    conn.execute(
        "UPDATE backup_versions SET deleted = 1, count = 0 WHERE user_id = ? AND version = ?", args
    )
    conn.execute("DELETE FROM backup_keys WHERE user_id = ? AND version = ?", args)
    return set()


def apply_keys_stored(conn: sqlite3.Connection, fact: BackupKeysStored) -> set[str]:
    """Store the uploads that win, if the version is still the current one."""
    now = key_backup.current(versions(conn, fact.user_id))
    if now is None or now.version != fact.version:
        return set()  # deleted or superseded since the writer checked: nothing stored
    try:
        uploads = key_backup.parse_upload({"rooms": fact.rooms})
    except MatrixError:  # a malformed upload on the log stores nothing
        return set()
    stored = keys(conn, fact.user_id, fact.version)
    winners = key_backup.merge(stored, uploads)
    for (room_id, session_id), data in winners.items():
        conn.execute(
            "INSERT OR REPLACE INTO backup_keys (user_id, version, room_id, session_id,"
            " first_message_index, forwarded_count, is_verified, session_data)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                fact.user_id,
                int(fact.version),
                room_id,
                session_id,
                data.first_message_index,
                data.forwarded_count,
                int(data.is_verified),
                json.dumps(dict(data.session_data)),
            ),
        )
    _count(conn, now, fact.user_id, changed=bool(winners))
    return set()


def apply_keys_deleted(conn: sqlite3.Connection, fact: BackupKeysDeleted) -> set[str]:
    found = [v for v in versions(conn, fact.user_id) if v.version == fact.version]
    if not found or found[0].deleted:
        return set()
    sql = "DELETE FROM backup_keys WHERE user_id = ? AND version = ?"
    args: list[Any] = [fact.user_id, int(fact.version)]
    if fact.room_id is not None:
        sql += " AND room_id = ?"
        args.append(fact.room_id)
        if fact.session_id is not None:
            sql += " AND session_id = ?"
            args.append(fact.session_id)
    changed = conn.execute(sql, args).rowcount > 0
    _count(conn, found[0], fact.user_id, changed=changed)
    return set()


def _count(conn: sqlite3.Connection, version: BackupVersion, user_id: str, changed: bool) -> None:
    row = conn.execute(
        "SELECT COUNT(*) FROM backup_keys WHERE user_id = ? AND version = ?",
        (user_id, int(version.version)),
    ).fetchone()
    after = key_backup.after_write(version, int(row[0]), changed)
    conn.execute(
        "UPDATE backup_versions SET etag = ?, count = ? WHERE user_id = ? AND version = ?",
        (after.etag, after.count, user_id, int(version.version)),
    )


# --- reads ------------------------------------------------------------------


def versions(conn: sqlite3.Connection, user_id: str) -> list[BackupVersion]:
    """Every version the user ever created, deleted ones included."""
    rows = conn.execute(
        "SELECT version, algorithm, auth_data, etag, count, deleted FROM backup_versions"
        " WHERE user_id = ? ORDER BY version",
        (user_id,),
    )
    return [
        BackupVersion(str(r[0]), str(r[1]), json.loads(r[2]), int(r[3]), int(r[4]), bool(r[5]))
        for r in rows
    ]


def keys(
    conn: sqlite3.Connection, user_id: str, version: str, room_id: str | None = None
) -> dict[SessionKey, KeyData]:
    """The keys stored in a version (of one room, if given)."""
    sql = (
        "SELECT room_id, session_id, first_message_index, forwarded_count, is_verified,"
        " session_data FROM backup_keys WHERE user_id = ? AND version = ?"
    )
    args: list[Any] = [user_id, int(version)]
    if room_id is not None:
        sql += " AND room_id = ?"
        args.append(room_id)
    return {
        (str(r[0]), str(r[1])): KeyData(int(r[2]), int(r[3]), bool(r[4]), json.loads(r[5]))
        for r in conn.execute(sql, args)
    }
