"""Two workers sharing one PostgreSQL view: one projects (it holds the advisory lock), the
other follows; kill the projecting one mid-stream and the other takes over.

The PostgreSQL twin of tests/test_workers.py's shared-view tests. Each worker has a
port of its own so the test chooses which one answers; the workers are not
children of one `serve --workers N` (a PostgreSQL view is shared by any worker
that names it, on any machine).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from outlast.view.pg.lock import AdvisoryLock
from tests.servers import eventually, http_json
from tests.test_workers import V3, Worker, event_status, send, start_worker
from tests.testrig import new_prefix, site_config, start_shared_nats

pytestmark = pytest.mark.slow


@pytest.fixture
def pg_pair(tmp_path: Path, pg_dsn: str) -> Iterator[tuple[str, Worker, Worker]]:
    """Two workers of one site on one PostgreSQL view; the first started projects."""
    node = start_shared_nats(tmp_path / "nats")
    workers: list[Worker] = []
    try:
        config = site_config(
            tmp_path / "site",
            node.url,
            new_prefix(),
            extra=f'\n[limits]\nenabled = false\n\n[view]\nbackend = "postgresql"\n'
            f'dsn = "{pg_dsn}"\n',
        )
        workers.append(start_worker(tmp_path, config, 0, node.url))
        workers.append(start_worker(tmp_path, config, 1, node.url))
        yield pg_dsn, workers[0], workers[1]
    finally:
        for w in workers:
            w.stop()
        node.stop()


def rows(dsn: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        return [tuple(r) for r in conn.execute(sql, args).fetchall()]


def register(url: str, name: str) -> str:
    status, body = http_json(
        "POST",
        url + V3 + "/register",
        {"username": name, "password": "pw", "auth": {"type": "m.login.dummy"}},
    )
    assert status == 200, body
    return str(body["access_token"])


def test_killing_the_projecting_worker_mid_stream_loses_and_repeats_nothing(
    pg_pair: tuple[str, Worker, Worker],
) -> None:
    dsn, projecting, following = pg_pair
    lock = AdvisoryLock(dsn)
    assert lock.holder() == projecting.process.pid
    token = register(following.url, "bob")
    status, body = http_json("POST", following.url + V3 + "/createRoom", {}, token)
    assert status == 200, body
    room = body["room_id"]

    acknowledged: list[str] = []
    deadline = time.monotonic() + 120
    for n in range(60):
        if n == 20:
            projecting.process.kill()  # mid-stream; its session ends, its lock with it
        acknowledged.append(send(following.url, token, room, f"m{n}", deadline))
    projecting.process.wait(timeout=10)
    assert eventually(lambda: lock.holder() == following.process.pid, 30)

    def history() -> list[str] | None:
        status, page = http_json(
            "GET", f"{following.url}{V3}/rooms/{room}/messages?dir=b&limit=200", token=token
        )
        if status != 200:
            return None
        found = [e["event_id"] for e in page["chunk"] if e["type"] == "m.room.message"]
        return found[::-1] if len(found) >= len(acknowledged) else None

    assert eventually(history, 30) == acknowledged

    # In the database: each once, and the commits of both owners add up to exactly
    # the positions reached (nothing applied twice, nothing skipped).
    counted = rows(
        dsn,
        "SELECT event_id, count(*) FROM events WHERE room_id = %s AND type = 'm.room.message'"
        " GROUP BY event_id",
        room,
    )
    assert sorted(counted) == sorted((e, 1) for e in acknowledged)
    [(applied, reached)] = rows(
        dsn, "SELECT (SELECT sum(messages) FROM commits), (SELECT sum(seq) FROM positions)"
    )
    assert applied == reached


def test_a_write_at_one_worker_is_read_at_the_other_and_wakes_its_long_polls(
    pg_pair: tuple[str, Worker, Worker],
) -> None:
    dsn, projecting, following = pg_pair
    assert AdvisoryLock(dsn).holder() == projecting.process.pid
    token = register(projecting.url, "carol")
    status, body = http_json("POST", following.url + V3 + "/createRoom", {}, token)
    assert status == 200, body
    room = body["room_id"]
    deadline = time.monotonic() + 60
    for n in range(5):
        event_id = send(projecting.url, token, room, f"p{n}", deadline)
        assert event_status(following.url, token, room, event_id) == 200
        event_id = send(following.url, token, room, f"f{n}", deadline)
        assert event_status(following.url, token, room, event_id) == 200
        assert event_status(projecting.url, token, room, event_id) == 200

    status, first = http_json("GET", following.url + V3 + "/sync?timeout=0", token=token)
    assert status == 200, first
    answer: dict[str, Any] = {}

    def long_poll() -> None:
        answer["status"], answer["body"] = http_json(
            "GET",
            f"{following.url}{V3}/sync?timeout=60000&since={first['next_batch']}",
            token=token,
            timeout=90,
        )

    poller = threading.Thread(target=long_poll)
    poller.start()
    time.sleep(1.0)  # parked by now
    woken_by = send(projecting.url, token, room, "wake", deadline)
    poller.join(90)
    assert not poller.is_alive()
    assert answer["status"] == 200, answer
    timeline = answer["body"]["rooms"]["join"][room]["timeline"]["events"]
    assert woken_by in [e["event_id"] for e in timeline]
