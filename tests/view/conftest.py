"""The ``view`` fixture: a fresh view database with a fake log numbering each stream."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from outlast.view.store import open_db
from tests.view.test_apply import STREAMS, View


@pytest.fixture
def view(tmp_path: Path) -> Iterator[View]:
    conn = open_db(tmp_path / "view.sqlite", STREAMS)
    try:
        yield View(conn)
    finally:
        conn.close()
