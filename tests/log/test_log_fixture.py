"""A log written by an earlier version still projects to the same view.

fixtures/log-v1.jsonl was written by a real server driving every kind of fact
(scripts/capture_log_fixture.py); fixtures/log-v1.view.json is what the view of
that version held after projecting it. A change to how facts are read or applied
that would make a rebuilt view differ from the views already in the field fails
here.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.log.fixture_log import VIEW_V1, dump, load, project

# Tables later versions added, derived from facts v1 already wrote: the v1 view
# lacks them, and a rebuild fills them (checked below to hold something).
ADDED_SINCE_V1 = frozenset({"push_actions"})


def test_the_fixture_holds_every_kind_of_fact() -> None:
    ops = {str(msg.data.get("op")) for msg in load()}
    assert len(ops) == 41, sorted(ops)


def test_projecting_the_v1_log_gives_the_v1_view(tmp_path: Path) -> None:
    conn = project(load(), tmp_path / "view.sqlite")
    try:
        expected = json.loads(VIEW_V1.read_text(encoding="utf-8"))
        got = json.loads(json.dumps(dump(conn)))
        assert set(got) - ADDED_SINCE_V1 == set(expected)
        for table in ADDED_SINCE_V1:
            assert got[table], table
        for table in sorted(expected):
            assert got[table] == expected[table], table
    finally:
        conn.close()
