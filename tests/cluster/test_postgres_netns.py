"""`cluster up --view postgresql --netns`: each site's PostgreSQL server runs in the site's
network namespace and listens on its address; the workers reach it there, and a
message written at one site is read at another."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from outlast.view.pg.lock import AdvisoryLock
from tests.cluster.harness import Cluster, start_cluster
from tests.cluster.test_netns_cluster import REASON
from tests.cluster.test_postgres_cluster import messages, register
from tests.servers import eventually, http_json
from tests.test_workers import V3, send

pytestmark = [pytest.mark.slow, pytest.mark.skipif(bool(REASON), reason=REASON)]


@pytest.fixture
def pg_netns_cluster(tmp_path: Path) -> Iterator[Cluster]:
    cluster = start_cluster(
        tmp_path / "cluster", netns_args=("--netns", "--latency-ms", "5"), view="postgresql"
    )
    try:
        yield cluster
    finally:
        cluster.down()


def test_each_sites_database_runs_in_its_namespace(pg_netns_cluster: Cluster) -> None:
    host_ns = os.readlink("/proc/self/ns/net")
    for site in pg_netns_cluster.description["sites"]:
        pg = site["postgres"]
        assert os.readlink(f"/proc/{pg['pid']}/ns/net") != host_ns
        worker_ns = os.readlink(f"/proc/{site['pids'][-1]}/ns/net")
        assert os.readlink(f"/proc/{pg['pid']}/ns/net") == worker_ns
        assert "127.0.0.1" not in pg["dsn"]
        assert AdvisoryLock(pg["dsn"]).holder() in site["pids"]

    a, b = pg_netns_cluster.site_url("a"), pg_netns_cluster.site_url("b")
    token = register(a, "erin")
    status, body = http_json("POST", a + V3 + "/createRoom", {}, token)
    assert status == 200, body
    room = body["room_id"]
    deadline = time.monotonic() + 60
    sent = [send(a, token, room, f"n{n}", deadline) for n in range(5)]

    def read() -> list[str] | None:
        return messages(b, token, room, len(sent))

    assert eventually(read, 60) == sent
