"""A log written by a real server (fixtures/log-v1.jsonl, see scripts/capture_log_fixture.py),
and what a view that projects it holds."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from outlast.log.client import LogClient, LogMessage
from outlast.log.names import Names
from outlast.view.notifier import Notifier
from outlast.view.projector import Projector
from outlast.view.state_cache import StateCache
from outlast.view.store import Positions, open_db

FIXTURES = Path(__file__).resolve().parent / "fixtures"
LOG_V1 = FIXTURES / "log-v1.jsonl"
VIEW_V1 = FIXTURES / "log-v1.view.json"
PARTITIONS = 2  # the capturing server's (tests/servers.py)


def load(path: Path = LOG_V1) -> list[LogMessage]:
    messages = []
    for line in path.read_text(encoding="utf-8").splitlines():
        raw = json.loads(line)
        messages.append(LogMessage(raw["stream"], raw["seq"], raw["subject"], raw["data"]))
    return messages


def project(messages: list[LogMessage], path: Path) -> sqlite3.Connection:
    """Apply the messages as the projector does, one per batch, stream by stream."""
    streams = Names(partitions=PARTITIONS).streams()
    conn = open_db(path, [s.name for s in streams])
    positions = Positions(conn)
    projector = Projector(
        conn, LogClient([], name="fixture"), streams, positions, Notifier(), StateCache(conn)
    )
    followed = {s.name for s in streams}  # not the health stream: no view follows it
    for msg in messages:
        if msg.stream in followed:
            projector._apply_batch([msg])  # the projector's own transaction and positions
    return conn


def dump(conn: sqlite3.Connection) -> dict[str, list[list[Any]]]:
    """Every table's rows, sorted: what the view holds, independent of insertion order."""
    tables = [
        str(r[0])
        for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
    ]
    out: dict[str, list[list[Any]]] = {}
    for table in tables:
        rows = [list(r) for r in conn.execute(f'SELECT * FROM "{table}"')]
        out[table] = sorted(rows, key=lambda r: json.dumps(r, sort_keys=True))
    return out
