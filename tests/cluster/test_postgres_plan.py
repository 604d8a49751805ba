"""`cluster up --view postgresql` without the cluster: the plan, the site's server, the seed.

The plan's worker configs must name the site's database; a site's PostgreSQL
server is started on the site's disk, listed among its processes and stopped
with it; a rebuilt site's view is a consistent copy of a survivor's
(outlast/cluster/pg_seed.py). Real PostgreSQL servers, no workers.
"""

from __future__ import annotations

import os
from pathlib import Path

import psycopg

from outlast.cluster.pg_seed import copy_view
from outlast.cluster.plan import VIEW_DATABASE, ClusterPlan, describe
from outlast.cluster.supervisor import SiteProcesses
from outlast.config import load
from outlast.view.pg import private


def worker_toml(plan: ClusterPlan, tmp_path: Path, site: int, worker: int) -> Path:
    path = tmp_path / f"w{site}{worker}.toml"
    path.write_text(plan.worker_config(plan.sites[site], worker))
    return path


def test_every_worker_of_a_site_names_the_sites_database(tmp_path: Path) -> None:
    extra = "[view]\nsnapshot_interval_seconds = 3\n"
    plan = ClusterPlan.new(tmp_path, 3, 2, 2, extra, view="postgresql")
    ports = {s.postgres_port for s in plan.sites}
    assert len(ports) == 3 and 0 not in ports and ports <= plan.ports()
    for index, site in enumerate(plan.sites):
        configs = [load(worker_toml(plan, tmp_path, index, w)) for w in range(2)]
        for config in configs:
            assert config.view.backend == "postgresql"
            assert config.view.is_shared
            assert config.view.dsn == site.postgres_dsn
            assert config.view.dsn.endswith(f":{site.postgres_port}/{VIEW_DATABASE}")
            assert config.view.snapshot_interval_seconds == 3  # the extra [view] kept
        assert configs[0].server.listen != configs[1].server.listen
    # SQLite clusters are unchanged: no server, no [view] backend.
    sqlite = ClusterPlan.new(tmp_path / "s", 3, 2, 1)
    assert all(s.postgres_port == 0 for s in sqlite.sites)
    config = load(worker_toml(sqlite, tmp_path, 0, 0))
    assert config.view.backend == "sqlite" and not config.view.is_shared
    assert describe(sqlite, {}, {}, 1, "v")["sites"][0]["postgres"] is None


def test_a_sites_server_lives_on_its_disk_and_is_listed_and_stopped(tmp_path: Path) -> None:
    plan = ClusterPlan.new(tmp_path, 3, 2, 2, view="postgresql")
    site = plan.sites[0]
    processes = SiteProcesses(plan, site)
    try:
        processes.start_postgres()
        assert site.postgres_dir.is_relative_to(Path(site.data_dir))
        postmaster = processes.postgres_pid()
        assert postmaster is not None and postmaster in processes.pids()
        with psycopg.connect(site.postgres_dsn) as conn:
            row = conn.execute("SHOW fsync").fetchone()
            assert row is not None and row[0] == "on"  # durable: a power cut loses nothing
        described = describe(plan, {"a": processes.pids()}, {}, os.getpid(), "v")
        entry = described["sites"][0]["postgres"]
        assert entry["port"] == site.postgres_port and entry["pid"] == postmaster
        assert entry["dir"] == str(site.postgres_dir)
        # Power-on after a crash: the same files, started again.
        processes.postgres = None
        os.kill(postmaster, 9)
        processes.start_postgres()
        assert processes.postgres_pid() not in (None, postmaster)
    finally:
        processes.stop_postgres()
    assert processes.postgres_pid() is None
    assert not private.PrivateCluster(site.postgres_dir, site.postgres_port).running()


def test_a_seed_is_the_survivors_view_with_its_positions(pg_server: private.PrivateCluster) -> None:
    source = pg_server.create_database(f"seedsrc{os.getpid()}")
    target = pg_server.create_database(f"seeddst{os.getpid()}")
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("CREATE TABLE positions (stream TEXT PRIMARY KEY, seq BIGINT NOT NULL)")
        conn.execute("CREATE TABLE events (n BIGINT PRIMARY KEY, body TEXT NOT NULL)")
        conn.execute("INSERT INTO positions VALUES ('rooms_0', 40), ('users', 7)")
        conn.execute("INSERT INTO events SELECT g, 'e' || g FROM generate_series(1, 40) g")
    seeded = copy_view(source, target)
    assert seeded.positions == {"rooms_0": 40, "users": 7}
    with psycopg.connect(target) as conn:
        rows = conn.execute("SELECT n, body FROM events ORDER BY n").fetchall()
    assert rows == [(n, f"e{n}") for n in range(1, 41)]
