"""The view's database (a SQLite file, or PostgreSQL through outlast/view/pg/): its
tables (outlast/view/tables.py), applied positions, read-your-writes waits.

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
from typing import cast

from outlast.view.tables import REMOVED_TRIGGERS, SCHEMAS

SCHEMA_VERSION = 5  # 4: relations; 5: push_actions without event ids

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS positions (stream TEXT PRIMARY KEY, seq INTEGER NOT NULL);
"""

# Only in a shared view: what each projector transaction changed, for the workers
# that read the view without projecting (outlast/view/follower.py).
SHARED_SCHEMA = """
CREATE TABLE IF NOT EXISTS commits (
    id INTEGER PRIMARY KEY, messages INTEGER NOT NULL, users TEXT NOT NULL, rooms TEXT NOT NULL
);
"""

# A shared view's writer and readers are separate processes: a reader waits this
# long for the writer's lock (only ever held for a checkpoint or a schema step).
BUSY_TIMEOUT_MS = 10_000


def open_db(
    path: Path | str, streams: Iterable[str], *, shared: bool = False, dsn: str | None = None
) -> sqlite3.Connection:
    """Open (or create, or reset after a schema change) the view database.

    ``shared``: other processes use the same file (``serve --workers N``).
    ``dsn``: the view is in this PostgreSQL database instead (``path`` is unused).
    """
    if dsn is not None:
        return open_pg(dsn, streams, shared=shared)
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    if shared:
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    else:
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
    if shared:
        conn.executescript(SHARED_SCHEMA)
    for _, schema in SCHEMAS:
        conn.executescript(schema)
    for trigger in REMOVED_TRIGGERS:
        conn.execute(f'DROP TRIGGER IF EXISTS "{trigger}"')
    conn.execute(
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
        (str(SCHEMA_VERSION),),
    )
    for stream in streams:
        conn.execute("INSERT OR IGNORE INTO positions (stream, seq) VALUES (?, 0)", (stream,))
    return conn


def open_pg(dsn: str, streams: Iterable[str], *, shared: bool = False) -> sqlite3.Connection:
    """The view in a PostgreSQL database: the same tables, through outlast/view/pg/.

    The connection is typed as sqlite3's: it offers the part of that surface the
    view code uses (outlast/view/pg/connection.py), so the capabilities stay
    written once. A schema version change drops every table of the database's
    current schema and creates them again, as a SQLite view file is reset.
    """
    from outlast.view.pg.connection import Connection
    from outlast.view.pg.dialect import Dialect

    scripts = [SCHEMA, SHARED_SCHEMA, *(schema for _, schema in SCHEMAS)]
    conn = Connection(dsn, Dialect(scripts))
    row = conn.execute("SELECT to_regclass('meta') IS NOT NULL").fetchone()
    if row is not None and row[0]:
        found = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if found is not None and int(found[0]) != SCHEMA_VERSION:
            tables = conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            ).fetchall()
            for (table,) in tables:
                conn.execute(f'DROP TABLE IF EXISTS "{table}" CASCADE')
    conn.executescript(SCHEMA)
    if shared:
        conn.executescript(SHARED_SCHEMA)
    for _, schema in SCHEMAS:
        conn.executescript(schema)
    conn.execute(
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
        (str(SCHEMA_VERSION),),
    )
    for stream in streams:
        conn.execute("INSERT OR IGNORE INTO positions (stream, seq) VALUES (?, 0)", (stream,))
    # A stand-in for sqlite3.Connection (see the docstring), not a subclass.
    return cast(sqlite3.Connection, conn)


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

    def reload(self, conn: sqlite3.Connection) -> None:
        """Advance to what the view file says (a shared view's writer is another process)."""
        for row in conn.execute("SELECT stream, seq FROM positions").fetchall():
            if int(row[1]) > self.applied(row[0]):
                self.advance(row[0], int(row[1]))

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
