"""The private PostgreSQL server the tests and local clusters start."""

from __future__ import annotations

from pathlib import Path

from outlast.view.pg import private


def test_fresh_databases_are_separate_and_reachable(pg_server: private.PrivateCluster) -> None:
    first = pg_server.create_database("probe_one")
    assert first.endswith("/probe_one")
    pg_server.psql("CREATE TABLE t (x int)", dbname="probe_one")
    pg_server.create_database("probe_two")
    listed = pg_server.psql("SELECT tablename FROM pg_tables WHERE tablename = 't'", "probe_two")
    assert listed.strip() == ""


def test_a_stopped_server_starts_again_on_its_own_files(tmp_path: Path) -> None:
    # Durable: an immediate stop is a crash, and the committed row must survive it.
    cluster = private.start(tmp_path / "pg")
    try:
        cluster.create_database("kept")
        cluster.psql("CREATE TABLE t (x int); INSERT INTO t VALUES (7)", dbname="kept")
        cluster.stop("immediate")
        assert not cluster.running()
        again = private.start(tmp_path / "pg", cluster.port)
        assert again.psql("SELECT x FROM t", dbname="kept").strip() == "7"
    finally:
        cluster.stop("immediate")
