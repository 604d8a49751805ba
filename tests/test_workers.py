"""`outlast serve --workers 2`: one site, one port, two worker processes (outlast.workers).

The workers share one view, which one of them projects into; the kernel
spreads connections over them. What a client must not notice: a token from either
works on both, a write made through one is read through the other, and
sync tokens from one are valid on the other. What the operator must see:
both workers in the site's status.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from outlast.config import Config
from outlast.view.ownership import lock_path
from outlast.workers import prepare_view, worker_config_text
from tests.servers import OutlastProcess, eventually, http_json, start_outlast
from tests.testrig import new_prefix, site_config, start_shared_nats

pytestmark = pytest.mark.slow

V3 = "/_matrix/client/v3"
ADMIN = '\n[admin]\nusers = ["@ops:localhost"]\n'


@pytest.fixture
def site(tmp_path: Path) -> Iterator[OutlastProcess]:
    proc = start_outlast(tmp_path / "site", log_extra=ADMIN, extra_args=["--workers", "2"])
    try:
        yield proc
    finally:
        proc.stop()


def register(site: OutlastProcess, name: str) -> str:
    status, body = http_json(
        "POST",
        site.url + V3 + "/register",
        {"username": name, "password": "pw", "auth": {"type": "m.login.dummy"}},
    )
    assert status == 200, body
    return str(body["access_token"])


def worker_pids(site: OutlastProcess) -> list[int]:
    found = re.search(r"2 workers serving \S+ \(pids \[(\d+), (\d+)\]\)", site.log_path.read_text())
    assert found, site.log_path.read_text()[-2000:]
    return [int(found.group(1)), int(found.group(2))]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_two_workers_serve_one_site_as_one(site: OutlastProcess) -> None:
    pids = worker_pids(site)

    # Every request below is a new connection; the kernel spreads them over
    # both workers, and each health answer names the worker that gave it.
    def answered_by() -> set[int]:
        return {http_json("GET", site.url + "/_outlast/health")[1].get("worker") for _ in range(40)}

    assert eventually(lambda: answered_by() == set(pids))

    token = register(site, "alice")
    status, body = http_json("POST", site.url + V3 + "/createRoom", {}, token)
    assert status == 200, body
    room = body["room_id"]
    status, first = http_json("GET", site.url + V3 + "/sync?timeout=0", token=token)
    assert status == 200
    since = first["next_batch"]
    sent = []
    for n in range(20):
        status, body = http_json(
            "PUT",
            f"{site.url}{V3}/rooms/{room}/send/m.room.message/t{n}",
            {"msgtype": "m.text", "body": f"hello {n}"},
            token,
        )
        assert status == 200, body
        sent.append(body["event_id"])
        # Read your writes, whichever worker answers the read.
        status, event = http_json(
            "GET", f"{site.url}{V3}/rooms/{room}/event/{body['event_id']}", token=token
        )
        assert status == 200, event

    # One sync token, used on whichever worker: every message exactly once, in order.
    seen: list[str] = []
    wide = quote(json.dumps({"room": {"timeline": {"limit": 100}}}))
    deadline = time.monotonic() + 60
    while len(seen) < len(sent) and time.monotonic() < deadline:
        status, page = http_json(
            "GET",
            f"{site.url}{V3}/sync?timeout=5000&since={since}&filter={wide}",
            token=token,
            timeout=15,
        )
        assert status == 200, page
        events = page.get("rooms", {}).get("join", {}).get(room, {}).get("timeline", {})
        seen += [e["event_id"] for e in events.get("events", []) if e["type"] == "m.room.message"]
        since = page["next_batch"]
    assert seen == sent

    # The site's status lists both workers, each ready.
    ops = register(site, "ops")

    def both_ready() -> Any:
        status, body = http_json("GET", site.url + "/_outlast/admin/status", token=ops)
        if status != 200:
            return None
        [local] = body["sites"]
        workers = local["workers"]
        if sorted(w["pid"] for w in workers) == sorted(pids) and all(w["ready"] for w in workers):
            return local
        return None

    local = eventually(both_ready)
    assert local["state"] == "healthy"
    # One view, projected by exactly one of them: the one holding its lock.
    projecting = [w["pid"] for w in local["workers"] if w["projects_view"]]
    assert projecting == [lock_owner(site.data_dir)]
    assert sorted(w["projects_view"] for w in local["workers"]) == [False, True]

    # Stopping the site stops both workers.
    site.stop()
    assert not any(alive(p) for p in pids) or eventually(
        lambda: not any(alive(p) for p in pids), 10
    )


# --- one shared view: one projecting worker, the others following --------------------


def lock_owner(data_dir: Path) -> int | None:
    """The pid written by the worker holding the view's lock (see outlast/view/ownership.py)."""
    text = lock_path(data_dir / "view.sqlite").read_text().strip() if data_dir.exists() else ""
    return int(text) if text.isdigit() else None


def send(url: str, token: str, room: str, txn: str, deadline: float) -> str:
    """Send until acknowledged, retrying with the same txnId (the log deduplicates it)."""
    while True:
        try:
            status, body = http_json(
                "PUT",
                f"{url}{V3}/rooms/{room}/send/m.room.message/{txn}",
                {"msgtype": "m.text", "body": txn},
                token,
            )
            if status == 200:
                return str(body["event_id"])
        except OSError:
            pass  # the worker holding this connection was killed: try again
        assert time.monotonic() < deadline, f"{txn} never acknowledged"
        time.sleep(0.1)


def view_rows(view: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{view}?mode=ro", uri=True, timeout=10)
    try:
        return [tuple(r) for r in conn.execute(sql, args)]
    finally:
        conn.close()


def test_killing_the_projecting_worker_mid_stream_loses_and_repeats_nothing(
    site: OutlastProcess,
) -> None:
    pids = worker_pids(site)
    owner = eventually(lambda: lock_owner(site.data_dir))
    assert owner in pids
    token = register(site, "bob")
    status, body = http_json("POST", site.url + V3 + "/createRoom", {}, token)
    assert status == 200, body
    room = body["room_id"]

    acknowledged: list[str] = []
    deadline = time.monotonic() + 120
    for n in range(60):
        if n == 20:
            os.kill(owner, signal.SIGKILL)  # that worker only, mid-stream
        acknowledged.append(send(site.url, token, room, f"m{n}", deadline))

    # Another worker took the view over (the survivor, or the killed one started again).
    def new_owner() -> int | None:
        found = lock_owner(site.data_dir)
        return found if found not in (None, owner) and alive(found) else None

    assert eventually(new_owner, 30)

    # Every acknowledged message readable, exactly once, in order.
    def history() -> list[str] | None:
        status, page = http_json(
            "GET", f"{site.url}{V3}/rooms/{room}/messages?dir=b&limit=200", token=token
        )
        if status != 200:
            return None
        found = [e["event_id"] for e in page["chunk"] if e["type"] == "m.room.message"]
        return found[::-1] if len(found) >= len(acknowledged) else None

    assert eventually(history, 30) == acknowledged

    # In the view file: each once, and every applied message counted once: the commits
    # (one per projector transaction, the dead owner's and the new owner's) add up to
    # exactly the positions reached.
    view = site.data_dir / "view.sqlite"
    rows = view_rows(
        view,
        "SELECT event_id, count(*) FROM events WHERE room_id = ? AND type = 'm.room.message'"
        " GROUP BY event_id",
        room,
    )
    assert sorted(rows) == sorted((e, 1) for e in acknowledged)
    [(applied, reached)] = view_rows(
        view, "SELECT (SELECT sum(messages) FROM commits), (SELECT sum(seq) FROM positions)"
    )
    assert applied == reached


# --- workers on their own ports, to choose which one answers ---------------------------


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_worker(directory: Path, config: Config, index: int, nats_url: str) -> Worker:
    """Worker ``index`` on a port of its own (0: it picks one and logs it)."""
    path = directory / f"worker-{index}.toml"
    path.write_text(worker_config_text(config, index, nats_url, 0))
    log_path = directory / f"worker-{index}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "outlast", "serve", "--config", str(path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    worker = Worker(process, "", log_path)

    def ready() -> bool:
        assert process.poll() is None, log_path.read_text()[-3000:]
        if not worker.url:
            found = re.search(r"listening on (http://127\.0\.0\.1:\d+)", log_path.read_text())
            if not found:
                return False
            worker.url = found.group(1)
        try:
            status, body = http_json("GET", worker.url + "/_outlast/health", timeout=2)
        except OSError:
            return False
        return status == 200 and bool(body.get("ready"))

    try:
        eventually(ready, 60, f"worker {index} ready")
    except BaseException:
        worker.stop()
        raise
    return worker


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Path, Worker, Worker]]:
    """Two workers of one site sharing one view; the first started projects."""
    node = start_shared_nats(tmp_path / "nats")
    workers: list[Worker] = []
    try:
        config = site_config(
            tmp_path / "site", node.url, new_prefix(), extra="\n[limits]\nenabled = false\n"
        )
        prepare_view(config)
        workers.append(start_worker(tmp_path, config, 0, node.url))
        workers.append(start_worker(tmp_path, config, 1, node.url))
        yield config.data_path, workers[0], workers[1]
    finally:
        for w in workers:
            w.stop()
        node.stop()


def event_status(url: str, token: str, room: str, event_id: str) -> int:
    status, _ = http_json("GET", f"{url}{V3}/rooms/{room}/event/{event_id}", token=token)
    return status


def test_a_write_at_one_worker_is_read_at_the_other_and_wakes_its_long_polls(
    pair: tuple[Path, Worker, Worker],
) -> None:
    data_dir, projecting, following = pair
    assert lock_owner(data_dir) == projecting.process.pid

    status, body = http_json(
        "POST",
        projecting.url + V3 + "/register",
        {"username": "carol", "password": "pw", "auth": {"type": "m.login.dummy"}},
    )
    assert status == 200, body
    token = body["access_token"]
    # Read your writes across workers: each read right after the write, at the other one.
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

    # A long-poll parked at the worker that does not project wakes on a message sent
    # through the one that does, long before its timeout.
    status, first = http_json("GET", following.url + V3 + "/sync?timeout=0", token=token)
    assert status == 200, first
    answer: dict[str, Any] = {}

    def long_poll() -> None:
        started = time.monotonic()
        answer["status"], answer["body"] = http_json(
            "GET",
            f"{following.url}{V3}/sync?timeout=60000&since={first['next_batch']}",
            token=token,
            timeout=90,
        )
        answer["seconds"] = time.monotonic() - started

    poller = threading.Thread(target=long_poll)
    poller.start()
    time.sleep(1.0)  # parked by now (and had it not been, it would return at once, empty)
    woken_by = send(projecting.url, token, room, "wake", deadline)
    poller.join(90)
    assert not poller.is_alive()
    assert answer["status"] == 200, answer
    assert answer["seconds"] < 30, answer["seconds"]
    timeline = answer["body"]["rooms"]["join"][room]["timeline"]["events"]
    assert woken_by in [e["event_id"] for e in timeline]

    # The projecting worker dies: the other takes the view over and goes on serving.
    projecting.process.kill()
    projecting.process.wait(timeout=10)
    assert eventually(lambda: lock_owner(data_dir) == following.process.pid, 30)
    event_id = send(following.url, token, room, "after", deadline)
    assert event_status(following.url, token, room, event_id) == 200
