"""The ``view`` fixture: a fresh view database with a fake log numbering each stream,
on each view backend (SQLite file, PostgreSQL database)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from outlast.view.store import open_db
from tests.view.test_apply import STREAMS, View


@pytest.fixture(params=["sqlite", "postgresql"])
def view(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[View]:
    dsn = str(request.getfixturevalue("pg_dsn")) if request.param == "postgresql" else None
    conn = open_db(tmp_path / "view.sqlite", STREAMS, dsn=dsn)
    try:
        yield View(conn)
    finally:
        conn.close()
