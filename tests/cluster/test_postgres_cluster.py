"""`outlast cluster up --view postgresql`: per site a PostgreSQL server and two workers
sharing its database, one projecting (the advisory lock's holder), one following.

Two faults on real three-site clusters: the worker holding a site's projection
lock is killed mid-stream (the site's other worker takes over; every
acknowledged message is read back once, in order, at both remaining places);
and a fire drill with a rebuild (the burned site's database goes with its disk;
the new one is seeded from a survivor's dump and serves identical timelines).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from outlast.view.pg.lock import AdvisoryLock
from tests.cluster.harness import Cluster, pid_alive, start_cluster
from tests.drill.test_fire import assert_drill_passed, fire_drill, health_status
from tests.servers import eventually, http_json
from tests.test_workers import V3, send

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture
def pg_cluster(tmp_path: Path) -> Iterator[Cluster]:
    cluster = start_cluster(tmp_path / "cluster", view="postgresql")
    try:
        yield cluster
    finally:
        cluster.down()
        # `cluster down` stopped every site's server: nothing listens on their ports.
        pids = [(s.get("postgres") or {}).get("pid") for s in cluster.description["sites"]]
        stopped = [p for p in pids if p is not None]
        eventually(lambda: not any(pid_alive(p) for p in stopped), 30, "postmasters gone")


def register(url: str, name: str) -> str:
    status, body = http_json(
        "POST",
        url + V3 + "/register",
        {"username": name, "password": "pw", "auth": {"type": "m.login.dummy"}},
    )
    assert status == 200, body
    return str(body["access_token"])


def messages(url: str, token: str, room: str, want: int) -> list[str] | None:
    status, page = http_json(
        "GET", f"{url}{V3}/rooms/{room}/messages?dir=b&limit=300", token=token, timeout=10
    )
    if status != 200:
        return None
    found = [e["event_id"] for e in page["chunk"] if e["type"] == "m.room.message"]
    return found[::-1] if len(found) >= want else None


def test_every_site_runs_its_own_database_and_two_workers(pg_cluster: Cluster) -> None:
    description = pg_cluster.description
    assert description["view"] == "postgresql"
    for site in description["sites"]:
        pg: dict[str, Any] = site["postgres"]
        assert Path(pg["dir"]).is_relative_to(Path(site["data_dir"]))
        assert pg["pid"] in site["pids"] and len(site["worker_urls"]) == 2
        holder = AdvisoryLock(pg["dsn"]).holder()
        assert holder in site["pids"], (holder, site["pids"])


def test_killing_the_projecting_worker_loses_and_repeats_nothing(pg_cluster: Cluster) -> None:
    site = pg_cluster.site("a")
    lock = AdvisoryLock(site["postgres"]["dsn"])
    owner = eventually(lock.holder, 30)
    # The site's pids: its node, its postmaster, then its workers in the order of
    # their URLs.
    workers = site["pids"][-2:]
    assert owner in workers
    index = 1 - workers.index(owner)
    survivor, survivor_url = workers[index], site["worker_urls"][index]

    token = register(survivor_url, "dora")
    status, body = http_json("POST", survivor_url + V3 + "/createRoom", {}, token)
    assert status == 200, body
    room = body["room_id"]
    acknowledged: list[str] = []
    deadline = time.monotonic() + 120
    for n in range(60):
        if n == 20:
            os.kill(owner, signal.SIGKILL)  # mid-stream
        acknowledged.append(send(survivor_url, token, room, f"k{n}", deadline))
    assert eventually(lambda: lock.holder() == survivor, 30)

    # Read back once, in order, at the survivor and at another site.
    other_site = pg_cluster.site_url("b")
    for url in (survivor_url, other_site):

        def read(at: str = url) -> list[str] | None:
            return messages(at, token, room, len(acknowledged))

        assert eventually(read, 60) == acknowledged, url
    with psycopg.connect(site["postgres"]["dsn"], connect_timeout=10) as conn:
        counted = conn.execute(
            "SELECT count(*), count(DISTINCT event_id) FROM events"
            " WHERE room_id = %s AND type = 'm.room.message'",
            (room,),
        ).fetchone()
        sums = conn.execute(
            "SELECT (SELECT sum(messages) FROM commits), (SELECT sum(seq) FROM positions)"
        ).fetchone()
    assert counted == (len(acknowledged), len(acknowledged))
    assert sums is not None and sums[0] == sums[1]

    # The supervisor started the killed worker again (outlast/cluster/revive.py): a
    # new process on the same port, serving, while the survivor keeps projecting.
    def revived() -> bool:
        pids = pg_cluster.site("a")["pids"][-2:]
        return owner not in pids and all(pid_alive(p) for p in pids)

    assert eventually(revived, 60, "the killed worker started again")
    killed_url = site["worker_urls"][1 - index]
    assert eventually(lambda: health_status(killed_url) == 200, 60, "the new worker ready")
    assert lock.holder() == survivor


def test_fire_drill_rebuilds_the_site_from_a_survivors_view(
    pg_cluster: Cluster, tmp_path: Path
) -> None:
    before = {s["name"]: s["postgres"]["dir"] for s in pg_cluster.description["sites"]}
    proc, report = fire_drill(
        pg_cluster.dir / "cluster.json", "fire", tmp_path / "fire.json", "--rebuild", "--quiet"
    )
    assert_drill_passed(proc, report, "fire")
    victim = report["site"]
    rebuild = report["rebuild"]
    assert rebuild["identical"] is True, rebuild
    assert rebuild["seeded_from_snapshot"] is True, rebuild
    site = pg_cluster.site(victim)
    assert site["postgres"]["dir"] != before[victim]  # a new server, on a fresh disk
    assert not Path(before[victim]).exists()
    assert health_status(site["url"]) == 200
    assert AdvisoryLock(site["postgres"]["dsn"]).holder() in site["pids"]
