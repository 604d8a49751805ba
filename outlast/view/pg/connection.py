"""A PostgreSQL view connection with the part of sqlite3's surface the view code uses.

The capabilities call ``conn.execute(sql, params)`` synchronously, on the
event loop, with SQLite-flavoured SQL, and read rows by column name and by
index. This wraps one psycopg 3 connection so they keep doing exactly that:
statements go through outlast/view/pg/dialect.py, rows are ``Row`` (name and
index, like ``sqlite3.Row``), and psycopg's errors are raised as the sqlite3
exception of the same meaning, so the few places that catch one keep working.

Why synchronous: the view code is synchronous (the projector applies a batch
inside one transaction; handlers read in plain functions), and psycopg 3's
sync connection keeps that shape. The cost is that each statement blocks the
event loop for one loopback round trip (tens of microseconds) where SQLite
answered from memory; an async driver would free the loop during that wait
but would make every view function a coroutine.

The connection runs in autocommit mode: as with sqlite3's ``isolation_level=None``
each statement is its own transaction unless the caller sent ``BEGIN``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import psycopg
import psycopg.errors
from psycopg import pq
from psycopg.adapt import Dumper, Loader
from psycopg.rows import RowMaker
from psycopg.types.string import StrDumperUnknown

from outlast.view.pg.dialect import Dialect

INT8_OID = 20


class Row(tuple[Any, ...]):
    """A result row readable by index and by column name, like ``sqlite3.Row``."""

    _names: tuple[str, ...]
    _index: dict[str, int]

    def __new__(cls, values: Sequence[Any], names: tuple[str, ...], index: dict[str, int]) -> Row:
        row = super().__new__(cls, values)
        row._names = names
        row._index = index
        return row

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


def _row_factory(cursor: psycopg.Cursor[Any]) -> RowMaker[Row]:
    names = tuple(c.name for c in cursor.description or ())
    index = {name: i for i, name in enumerate(names)}

    def make(values: Sequence[Any]) -> Row:
        return Row(values, names, index)

    return make


class _BoolAsInt(Dumper):
    """SQLite has no boolean: the view stores flags as 0/1 in integer columns."""

    oid = INT8_OID

    def dump(self, obj: Any) -> bytes:
        return b"1" if obj else b"0"


class _TextWithoutNul(StrDumperUnknown):
    """PostgreSQL text cannot hold NUL, SQLite's can: a NUL in a parameter becomes
    U+FFFD, so a hostile id finds nothing (as in SQLite) instead of failing the
    request, and a string the projector writes cannot wedge it. Such a string
    reads back with U+FFFD where the log has NUL: the one place the backends differ."""

    def dump(self, obj: str) -> Any:
        return super().dump(obj.replace("\x00", "\ufffd") if "\x00" in obj else obj)


class _NumericLoader(Loader):
    """SUM() over integers is numeric in PostgreSQL; the code expects an int as from SQLite."""

    def load(self, data: Any) -> int | float:
        text = bytes(data).decode()
        return float(text) if "." in text or "e" in text.lower() else int(text)


def _mapped(exc: psycopg.Error) -> sqlite3.Error:
    """The sqlite3 exception with the same meaning as a psycopg error."""
    text = str(exc).strip()
    if isinstance(exc, psycopg.errors.IntegrityError):
        return sqlite3.IntegrityError(text)
    if isinstance(exc, psycopg.errors.ProgrammingError | psycopg.OperationalError):
        return sqlite3.OperationalError(text)
    return sqlite3.DatabaseError(text)


class Cursor:
    """The result of one statement: rows, ``rowcount`` and nothing else of sqlite3's cursor."""

    def __init__(self, cursor: psycopg.Cursor[Row] | None) -> None:
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount if self._cursor is not None else -1

    @property
    def lastrowid(self) -> int | None:
        return None

    def fetchone(self) -> Row | None:
        if self._cursor is None or self._cursor.pgresult is None or not self._cursor.description:
            return None
        return self._cursor.fetchone()

    def fetchall(self) -> list[Row]:
        if self._cursor is None or not self._cursor.description:
            return []
        return self._cursor.fetchall()

    def __iter__(self) -> Iterator[Row]:
        return iter(self.fetchall())

    def close(self) -> None:
        if self._cursor is not None:
            self._cursor.close()


class Connection:
    """One PostgreSQL connection that the view code can use as its sqlite3 connection."""

    def __init__(self, dsn: str, dialect: Dialect) -> None:
        try:
            self._conn: psycopg.Connection[Row] = psycopg.connect(
                dsn, autocommit=True, row_factory=_row_factory
            )
        except psycopg.Error as exc:
            raise _mapped(exc) from exc
        self._conn.adapters.register_dumper(bool, _BoolAsInt)
        self._conn.adapters.register_dumper(str, _TextWithoutNul)
        self._conn.adapters.register_loader("numeric", _NumericLoader)
        self.dialect = dialect
        self.total_changes = 0
        self.row_factory: Callable[..., Any] | None = None  # accepted, ignored: rows are Row

    @property
    def in_transaction(self) -> bool:
        status = self._conn.info.transaction_status
        return status in (pq.TransactionStatus.INTRANS, pq.TransactionStatus.INERROR)

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Cursor:
        if sql.lstrip()[:6].upper() == "PRAGMA":
            return Cursor(None)
        text = self.dialect.translate(sql)
        try:
            cursor = self._conn.execute(text, params if params else None)
        except psycopg.Error as exc:
            raise _mapped(exc) from exc
        self._count(cursor)
        return Cursor(cursor)

    def executemany(self, sql: str, seq: Iterable[Sequence[Any]]) -> Cursor:
        text = self.dialect.translate(sql)
        cursor = self._conn.cursor()
        try:
            cursor.executemany(text, list(seq))
        except psycopg.Error as exc:
            raise _mapped(exc) from exc
        self._count(cursor)
        return Cursor(cursor)

    def executescript(self, sql: str) -> None:
        """Several statements without parameters (the schema)."""
        try:
            self._conn.execute(self.dialect.script(sql).encode())
        except psycopg.Error as exc:
            raise _mapped(exc) from exc

    def commit(self) -> None:
        if self.in_transaction:
            self.execute("COMMIT")

    def rollback(self) -> None:
        if self.in_transaction:
            self.execute("ROLLBACK")

    def close(self) -> None:
        self._conn.close()

    def _count(self, cursor: psycopg.Cursor[Row]) -> None:
        """Keep ``total_changes`` as SQLite does: rows inserted, updated or deleted."""
        status = cursor.statusmessage or ""
        if status[:6] in ("INSERT", "UPDATE", "DELETE") and cursor.rowcount > 0:
            self.total_changes += cursor.rowcount
