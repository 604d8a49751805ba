"""`outlast serve --workers 2`: one site, one port, two worker processes (outlast.workers).

Each worker keeps its own view of the shared log; the kernel spreads
connections over them. What a client must not notice: a token from either
works on both, a write made through one is read through the other, and
sync tokens from one are valid on the other. What the operator must see:
both workers in the site's status.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.servers import OutlastProcess, eventually, http_json, start_outlast

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

    # Stopping the site stops both workers.
    site.stop()
    assert not any(alive(p) for p in pids) or eventually(
        lambda: not any(alive(p) for p in pids), 10
    )
