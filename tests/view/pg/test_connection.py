"""The sqlite3-shaped PostgreSQL connection, against a real private server."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest

from outlast.view.pg.connection import Connection
from outlast.view.pg.dialect import Dialect
from outlast.view.store import SCHEMA_VERSION, open_db

SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    k TEXT PRIMARY KEY, v TEXT NOT NULL, n INTEGER NOT NULL DEFAULT 0, flag INTEGER
);
"""


@pytest.fixture
def conn(pg_dsn: str) -> Iterator[Connection]:
    c = Connection(pg_dsn, Dialect([SCHEMA]))
    c.executescript(SCHEMA)
    try:
        yield c
    finally:
        c.close()


def test_rows_by_name_and_index(conn: Connection) -> None:
    conn.execute("INSERT INTO kv (k, v, n) VALUES (?, ?, ?)", ("a", "x", 2**40))
    row = conn.execute("SELECT k, v, n FROM kv WHERE k = ?", ("a",)).fetchone()
    assert row is not None
    assert (row["k"], row[1], row["n"]) == ("a", "x", 2**40)  # beyond int4
    assert dict(zip(row.keys(), row, strict=True)) == {"k": "a", "v": "x", "n": 2**40}
    k, v, n = row
    assert (k, v, n) == ("a", "x", 2**40)


def test_replace_ignore_and_total_changes(conn: Connection) -> None:
    before = conn.total_changes
    conn.execute("INSERT OR REPLACE INTO kv (k, v, n) VALUES (?, ?, ?)", ("a", "x", 5))
    conn.execute("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", ("a", "y"))
    conn.execute("INSERT OR IGNORE INTO kv (k, v) VALUES (?, ?)", ("a", "z"))
    assert [tuple(r) for r in conn.execute("SELECT k, v, n FROM kv")] == [("a", "y", 0)]
    assert conn.total_changes - before == 2


def test_booleans_are_stored_as_integers_and_sums_are_ints(conn: Connection) -> None:
    conn.executemany(
        "INSERT INTO kv (k, v, flag) VALUES (?, ?, ?)", [("a", "1", True), ("b", "2", False)]
    )
    row = conn.execute("SELECT SUM(flag), COUNT(*) FROM kv").fetchone()
    assert row is not None and tuple(row) == (1, 2) and isinstance(row[0], int)


def test_nul_in_text_finds_nothing_and_is_stored_replaced(conn: Connection) -> None:
    assert conn.execute("SELECT v FROM kv WHERE k = ?", ("a\x00b",)).fetchall() == []
    conn.execute("INSERT INTO kv (k, v) VALUES (?, ?)", ("a", "x\x00y"))
    assert conn.execute("SELECT v FROM kv").fetchone() == ("x\ufffdy",)


def test_transactions(conn: Connection) -> None:
    assert not conn.in_transaction
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO kv (k, v) VALUES (?, ?)", ("a", "x"))
    assert conn.in_transaction
    conn.execute("ROLLBACK")
    assert not conn.in_transaction
    assert conn.execute("SELECT COUNT(*) FROM kv").fetchone() == (0,)


def test_errors_are_sqlite3_errors(conn: Connection) -> None:
    conn.execute("INSERT INTO kv (k, v) VALUES (?, ?)", ("a", "x"))
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO kv (k, v) VALUES (?, ?)", ("a", "y"))
    with pytest.raises(sqlite3.OperationalError):
        conn.execute("SELECT * FROM no_such_table")


def test_pragmas_are_answered_empty(conn: Connection) -> None:
    assert conn.execute("PRAGMA journal_mode=WAL").fetchall() == []


def test_open_db_on_postgresql_resets_on_a_schema_change(pg_dsn: str) -> None:
    view = open_db("", ["S1"], dsn=pg_dsn)
    view.execute("INSERT INTO users (user_id, created_ts, account_seq) VALUES (?, 0, 1)", ("@a:x",))
    view.execute("UPDATE positions SET seq = 7")
    view.close()
    view = open_db("", ["S1", "S2"], dsn=pg_dsn)
    assert {r["stream"]: r["seq"] for r in view.execute("SELECT * FROM positions")} == {
        "S1": 7,
        "S2": 0,
    }
    view.execute(
        "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION - 1),)
    )
    view.close()
    view = open_db("", ["S1"], dsn=pg_dsn)
    assert view.execute("SELECT COUNT(*) FROM users").fetchone()[0] == 0
    assert view.execute("SELECT seq FROM positions").fetchall() == [(0,)]
    view.close()
