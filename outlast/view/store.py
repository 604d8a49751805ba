"""The view's SQLite database: schema, applied positions, read-your-writes waits.

Only the projector writes. It records each stream's applied sequence in the
same transaction as the rows that sequence produced, so after a crash the
view resumes exactly where its last commit ended: nothing skipped, nothing
applied twice. Deleting the file is always safe; it is rebuilt from the log.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterable
from pathlib import Path

SCHEMA_VERSION = 3

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS positions (stream TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    user_id TEXT PRIMARY KEY, password_hash TEXT, deactivated INTEGER NOT NULL DEFAULT 0,
    admin INTEGER NOT NULL DEFAULT 0, created_ts INTEGER NOT NULL, account_seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS devices (
    user_id TEXT NOT NULL, device_id TEXT NOT NULL, display_name TEXT,
    created_ts INTEGER, PRIMARY KEY (user_id, device_id)
);
CREATE TABLE IF NOT EXISTS tokens (
    token_hash TEXT PRIMARY KEY, user_id TEXT NOT NULL, device_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tokens_by_device ON tokens (user_id, device_id);
CREATE TABLE IF NOT EXISTS filters (
    user_id TEXT NOT NULL, filter_id TEXT NOT NULL, json TEXT NOT NULL,
    PRIMARY KEY (user_id, filter_id)
);
CREATE TABLE IF NOT EXISTS aliases (
    alias TEXT PRIMARY KEY, room_id TEXT NOT NULL, creator TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rooms (
    room_id TEXT PRIMARY KEY, stream TEXT NOT NULL, state_seq INTEGER NOT NULL,
    version TEXT NOT NULL, creator TEXT NOT NULL, created_seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    stream TEXT NOT NULL, seq INTEGER NOT NULL, idx INTEGER NOT NULL,
    room_id TEXT NOT NULL, event_id TEXT NOT NULL UNIQUE, type TEXT NOT NULL,
    state_key TEXT, sender TEXT NOT NULL, json TEXT NOT NULL,
    txn_device TEXT, txn_id TEXT, hist_vis TEXT NOT NULL,
    PRIMARY KEY (stream, seq, idx)
);
CREATE INDEX IF NOT EXISTS events_by_room ON events (room_id, seq, idx);
CREATE TABLE IF NOT EXISTS state (
    room_id TEXT NOT NULL, type TEXT NOT NULL, state_key TEXT NOT NULL,
    event_id TEXT NOT NULL, seq INTEGER NOT NULL, idx INTEGER NOT NULL,
    PRIMARY KEY (room_id, type, state_key)
);
CREATE TABLE IF NOT EXISTS membership_changes (
    room_id TEXT NOT NULL, user_id TEXT NOT NULL, seq INTEGER NOT NULL, idx INTEGER NOT NULL,
    membership TEXT NOT NULL, PRIMARY KEY (room_id, user_id, seq, idx)
);
CREATE TABLE IF NOT EXISTS members (
    room_id TEXT NOT NULL, user_id TEXT NOT NULL, membership TEXT NOT NULL,
    seq INTEGER NOT NULL, idx INTEGER NOT NULL, forgotten INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX IF NOT EXISTS members_by_user ON members (user_id, membership);
"""


def open_db(path: Path | str, streams: Iterable[str]) -> sqlite3.Connection:
    """Open (or create, or reset after a schema change) the view database."""
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    # One connection per view, in one process: hold the file lock for the
    # connection's life instead of taking and dropping it around every
    # statement (two fcntl calls each), and keep the WAL index in process
    # memory. A second process opening the same view gets "database is locked".
    conn.execute("PRAGMA locking_mode=EXCLUSIVE")
    conn.execute("PRAGMA journal_mode=WAL")
    # The view is disposable and its position is committed with its rows: a lost
    # tail after power loss is simply re-applied from the log.
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=OFF")
    version = _schema_version(conn)
    if version is not None and version != SCHEMA_VERSION:
        _drop_all(conn)
    conn.executescript(SCHEMA)
    from outlast.view.extensions import EXTENSIONS

    for ext in EXTENSIONS:
        if ext.schema:
            conn.executescript(ext.schema)
    conn.execute(
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
        (str(SCHEMA_VERSION),),
    )
    for stream in streams:
        conn.execute("INSERT OR IGNORE INTO positions (stream, seq) VALUES (?, 0)", (stream,))
    return conn


def _schema_version(conn: sqlite3.Connection) -> int | None:
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.OperationalError:
        return None
    return int(row[0]) if row else None


def _drop_all(conn: sqlite3.Connection) -> None:
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    for table in tables:
        conn.execute(f'DROP TABLE IF EXISTS "{table}"')


class Positions:
    """Applied sequence per stream, and waiters for read-your-writes."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._applied: dict[str, int] = {
            row["stream"]: int(row["seq"]) for row in conn.execute("SELECT * FROM positions")
        }
        self._waiters: dict[str, list[tuple[int, asyncio.Future[None]]]] = {}

    def applied(self, stream: str) -> int:
        return self._applied.get(stream, 0)

    def snapshot(self, streams: Iterable[str]) -> tuple[int, ...]:
        return tuple(self.applied(s) for s in streams)

    def advance(self, stream: str, seq: int) -> None:
        """Called by the projector after its transaction committed."""
        self._applied[stream] = seq
        pending = self._waiters.get(stream)
        if not pending:
            return
        keep = []
        for target, fut in pending:
            if target <= seq:
                if not fut.done():
                    fut.set_result(None)
            else:
                keep.append((target, fut))
        self._waiters[stream] = keep

    async def wait_for(self, stream: str, seq: int, timeout: float) -> bool:
        """Wait until ``stream`` is applied through ``seq``; False on timeout."""
        if self.applied(stream) >= seq:
            return True
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = (seq, fut)
        self._waiters.setdefault(stream, []).append(waiter)
        try:
            async with asyncio.timeout(timeout):
                await fut
        except TimeoutError:
            return self.applied(stream) >= seq
        finally:
            # Timed out or cancelled: do not keep the waiter until the stream
            # reaches its sequence (that may never happen).
            current = self._waiters.get(stream)
            if current is not None and waiter in current:
                current.remove(waiter)
        return True
