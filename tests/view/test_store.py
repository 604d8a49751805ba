"""Tests for the view database lifecycle and read-your-writes waits (outlast.view.store)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from outlast.view.store import SCHEMA_VERSION, Positions, open_db

STREAMS = ["OUTLAST_USERS", "OUTLAST_DIRECTORY", "OUTLAST_ROOMS_0"]


def add_user(conn: sqlite3.Connection, user: str = "@alice:example.test") -> None:
    conn.execute("INSERT INTO users (user_id, created_ts, account_seq) VALUES (?, 0, 1)", (user,))


def schema_version(conn: sqlite3.Connection) -> str:
    return str(conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])


def positions(conn: sqlite3.Connection) -> dict[str, int]:
    return {r["stream"]: r["seq"] for r in conn.execute("SELECT stream, seq FROM positions")}


# --- open_db ----------------------------------------------------------------


def test_open_db_creates_schema_and_zero_positions(tmp_path: Path) -> None:
    conn = open_db(tmp_path / "sub" / "view.sqlite", STREAMS)
    assert schema_version(conn) == str(SCHEMA_VERSION)
    assert positions(conn) == dict.fromkeys(STREAMS, 0)
    conn.close()


def test_open_db_in_memory(tmp_path: Path) -> None:
    conn = open_db(":memory:", STREAMS)
    add_user(conn)
    assert conn.execute("SELECT COUNT(*) FROM users").fetchone()[0] == 1
    conn.close()


def test_reopening_keeps_rows_and_positions_and_adds_new_streams(tmp_path: Path) -> None:
    path = tmp_path / "view.sqlite"
    conn = open_db(path, STREAMS)
    add_user(conn)
    conn.execute("UPDATE positions SET seq = 7 WHERE stream = 'OUTLAST_USERS'")
    conn.close()
    conn = open_db(path, [*STREAMS, "OUTLAST_ROOMS_1"])
    assert conn.execute("SELECT COUNT(*) FROM users").fetchone()[0] == 1
    assert positions(conn) == {
        **dict.fromkeys(STREAMS, 0),
        "OUTLAST_USERS": 7,
        "OUTLAST_ROOMS_1": 0,
    }
    conn.close()


def test_open_db_resets_a_database_from_another_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "view.sqlite"
    conn = open_db(path, STREAMS)
    add_user(conn)
    conn.execute("UPDATE positions SET seq = 7")
    conn.execute(
        "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION - 1),)
    )
    conn.execute("CREATE TABLE leftover (x)")
    conn.close()

    conn = open_db(path, STREAMS)
    assert schema_version(conn) == str(SCHEMA_VERSION)
    assert conn.execute("SELECT COUNT(*) FROM users").fetchone()[0] == 0
    assert positions(conn) == dict.fromkeys(STREAMS, 0)  # re-applied from the log
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "leftover" not in tables
    conn.close()


# --- Positions --------------------------------------------------------------


def test_positions_start_from_the_database(tmp_path: Path) -> None:
    conn = open_db(tmp_path / "view.sqlite", STREAMS)
    conn.execute("UPDATE positions SET seq = 4 WHERE stream = 'OUTLAST_ROOMS_0'")
    pos = Positions(conn)
    assert pos.applied("OUTLAST_ROOMS_0") == 4
    assert pos.applied("unknown") == 0
    assert pos.snapshot(STREAMS) == (0, 0, 4)
    conn.close()


def fresh_positions() -> Positions:
    return Positions(open_db(":memory:", STREAMS))


async def test_wait_for_an_applied_sequence_returns_at_once() -> None:
    pos = fresh_positions()
    pos.advance("OUTLAST_USERS", 3)
    assert await pos.wait_for("OUTLAST_USERS", 3, timeout=0)
    assert await pos.wait_for("OUTLAST_USERS", 1, timeout=0)


async def test_wait_for_resolves_when_the_stream_advances() -> None:
    pos = fresh_positions()
    waiter = asyncio.create_task(pos.wait_for("OUTLAST_USERS", 2, timeout=5))
    await asyncio.sleep(0.01)
    pos.advance("OUTLAST_USERS", 1)
    await asyncio.sleep(0.01)
    assert not waiter.done()
    pos.advance("OUTLAST_USERS", 5)
    assert await asyncio.wait_for(waiter, 1) is True


async def test_wait_for_times_out_when_only_other_streams_advance() -> None:
    pos = fresh_positions()
    waiter = asyncio.create_task(pos.wait_for("OUTLAST_USERS", 1, timeout=0.1))
    await asyncio.sleep(0.01)
    pos.advance("OUTLAST_ROOMS_0", 10)
    assert await waiter is False
    assert pos.applied("OUTLAST_USERS") == 0


async def test_many_waiters_wake_up_to_the_advanced_sequence() -> None:
    pos = fresh_positions()
    waiters = {
        n: asyncio.create_task(pos.wait_for("OUTLAST_USERS", n, timeout=0.3)) for n in (1, 2, 3)
    }
    await asyncio.sleep(0.01)
    pos.advance("OUTLAST_USERS", 2)
    assert {n: await w for n, w in waiters.items()} == {1: True, 2: True, 3: False}


async def test_a_timed_out_or_cancelled_waiter_is_forgotten() -> None:
    pos = fresh_positions()
    assert await pos.wait_for("OUTLAST_USERS", 7, timeout=0.01) is False
    cancelled = asyncio.create_task(pos.wait_for("OUTLAST_USERS", 8, timeout=5))
    await asyncio.sleep(0.01)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert pos._waiters["OUTLAST_USERS"] == []


# --- no triggers ---------------------------------------------------------------


def triggers(conn: sqlite3.Connection) -> list[str]:
    return [
        str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
    ]


def test_the_view_has_no_triggers_and_drops_those_of_older_versions(tmp_path: Path) -> None:
    """What one capability's change means for another's tables is written out in
    view/apply.py, not hidden in a trigger; a view file from a version that had
    triggers loses them when opened."""
    path = tmp_path / "view.sqlite"
    conn = open_db(path, STREAMS)
    assert triggers(conn) == []
    conn.execute(
        "CREATE TRIGGER device_gone AFTER DELETE ON devices BEGIN"
        " DELETE FROM e2e_device_keys WHERE user_id = OLD.user_id; END"
    )
    conn.close()
    conn = open_db(path, STREAMS)
    assert triggers(conn) == []
    conn.close()
