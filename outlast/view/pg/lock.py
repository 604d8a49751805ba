"""Which worker projects into a PostgreSQL view: whoever holds its advisory lock.

The same seam as outlast/view/ownership.py (``held``, ``try_acquire``,
``acquire``, ``release``), for a view that workers on several machines may
share. The lock is a session-level advisory lock taken on a connection of
its own: PostgreSQL releases it when that session ends, however it ends (the
owner killed, its machine gone, its connection cut), and grants it at once to
the next ``pg_advisory_lock`` waiting on it. No election, no lease to renew.

A machine that vanishes without closing its socket is noticed by TCP
keepalives, which the lock's session asks the server for (about ten seconds).
A dead lock session does not stop an owner that is still running from
writing, so the projector also fences every transaction on the positions it
expects (outlast/view/projector.py): a second writer can never apply twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from typing import Any

import psycopg

# One view per database: one key per database is enough. "outlast-v" as a number.
VIEW_LOCK_KEY = 0x6F75746C6173742D

# Server-side keepalives on the lock's session: a silent owner machine is dropped
# (and its lock released) after about idle + interval * count seconds.
SESSION_SETTINGS = (
    "SET tcp_keepalives_idle = 5",
    "SET tcp_keepalives_interval = 2",
    "SET tcp_keepalives_count = 3",
    "SET tcp_user_timeout = 10000",
)
# The lock session's application_name carries the worker's pid: what operators and
# tests read to learn which process projects (``holder``).
APP_PREFIX = "outlast-view-lock "
# The client's side of the same: the owner learns its session is gone.
CLIENT_KEEPALIVES: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "connect_timeout": 10,
}


# Another key, held only while a worker creates or upgrades the view's tables: two
# workers starting at once would otherwise race on CREATE TABLE IF NOT EXISTS.
SCHEMA_LOCK_KEY = VIEW_LOCK_KEY + 1


@contextlib.contextmanager
def schema_guard(dsn: str) -> Iterator[None]:
    """One worker at a time sets the view's tables up."""
    with psycopg.connect(dsn, autocommit=True, **CLIENT_KEEPALIVES) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK_KEY,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK_KEY,))


class AdvisoryLock:
    """The view's advisory lock, held by at most one session of the database."""

    backend = "postgresql"

    def __init__(self, dsn: str, key: int = VIEW_LOCK_KEY) -> None:
        self.dsn = dsn
        self.key = key
        self._conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any] | None = None

    @property
    def held(self) -> bool:
        return self._conn is not None and not self._conn.closed

    def try_acquire(self) -> bool:
        """Take the lock if no session holds it; True if this process holds it now."""
        if self._conn is not None:
            return True
        conn = psycopg.connect(self.dsn, autocommit=True, **CLIENT_KEEPALIVES)
        try:
            for statement in _settings():
                conn.execute(statement)
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
        except BaseException:
            conn.close()
            raise
        if not row or not row[0]:
            conn.close()
            return False
        self._conn = conn
        return True

    async def acquire(self) -> None:
        """Wait (in the server, not by polling) until this process holds the lock.

        Cancelling the wait closes its session, which withdraws it from the
        lock's queue; a connection that fails is opened again after a pause.
        """
        if self.try_acquire():
            return
        while True:
            conn = await psycopg.AsyncConnection.connect(
                self.dsn, autocommit=True, **CLIENT_KEEPALIVES
            )
            try:
                for statement in _settings():
                    await conn.execute(statement)
                await conn.execute("SELECT pg_advisory_lock(%s)", (self.key,))
            except asyncio.CancelledError:
                await _close(conn)
                raise
            except psycopg.Error:
                await _close(conn)
                await asyncio.sleep(1.0)
                continue
            self._conn = conn
            return

    async def alive(self) -> bool:
        """Whether the lock's session still answers (an owner checks it now and then)."""
        conn = self._conn
        if conn is None or conn.closed:
            return False
        try:
            if isinstance(conn, psycopg.AsyncConnection):
                await asyncio.wait_for(conn.execute("SELECT 1"), 10)
            else:
                loop = asyncio.get_running_loop()
                await asyncio.wait_for(loop.run_in_executor(None, conn.execute, "SELECT 1"), 10)
        except (psycopg.Error, TimeoutError, OSError):
            return False
        return True

    def holder(self) -> int | None:
        """The pid of the worker (on its own machine) whose session holds the lock, if any."""
        with psycopg.connect(self.dsn, autocommit=True, connect_timeout=10) as conn:
            row = conn.execute(
                "SELECT a.application_name FROM pg_locks l"
                " JOIN pg_stat_activity a ON a.pid = l.pid"
                " WHERE l.locktype = 'advisory' AND l.granted AND l.database = ("
                "   SELECT oid FROM pg_database WHERE datname = current_database())"
                " AND ((l.classid::bigint << 32) | l.objid::bigint) = %s",
                (self.key,),
            ).fetchone()
        if not row or not str(row[0]).startswith(APP_PREFIX):
            return None
        return int(str(row[0])[len(APP_PREFIX) :])

    def identity(self) -> str:
        """The database's identity, the same from every machine (whatever its DSN says)."""
        with psycopg.connect(self.dsn, autocommit=True, connect_timeout=10) as conn:
            # Not pg_control_system(): it reads a file by its absolute path, which fails
            # when a directory above the server's data lost its search bit.
            row = conn.execute(
                "SELECT current_setting('port'), oid::text, datname FROM pg_database"
                " WHERE datname = current_database()"
            ).fetchone()
        assert row is not None
        return f"pg-{row[0]}-{row[1]}-{row[2]}"

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        # Closing the session releases the lock; an async connection is closed from
        # its socket (no loop may be running when the process is on its way out).
        with contextlib.suppress(Exception):
            if isinstance(conn, psycopg.AsyncConnection):
                conn.pgconn.finish()
                return
            # Unlocked first: the server frees a closed session's locks only once its
            # backend has exited, a moment later, so a try_acquire elsewhere just after
            # the close could still fail (a CI run saw it).
            with contextlib.suppress(psycopg.Error):
                conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
            conn.close()


def _settings() -> list[str]:
    return [*SESSION_SETTINGS, f"SET application_name = '{APP_PREFIX}{os.getpid()}'"]


async def _close(conn: psycopg.AsyncConnection[Any]) -> None:
    with contextlib.suppress(Exception):
        await conn.close()


def drop_view(dsn: str) -> None:
    """Drop every table of the view (`outlast view rebuild`): the next worker replays the log.

    The schema lock is held meanwhile, so no worker sets tables up half-way through.
    """
    with schema_guard(dsn), psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        ).fetchall()
        for (table,) in tables:
            conn.execute(f'DROP TABLE IF EXISTS "{table}" CASCADE')
