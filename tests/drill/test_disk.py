"""The disk-full drill through the real CLI, on a real local cluster whose sites
each keep their data on a small tmpfs (`cluster up --disk-mb`).

One site's disk is filled until ENOSPC under load; a client writing straight
to it must get a Matrix error (503) or a durable acknowledgement, never a 500;
once the filler is gone the site must come back and every site must hold
every acknowledged message once, in order.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from outlast.drill import disk
from tests.cluster.harness import Cluster, start_cluster
from tests.drill.test_fire import HEAL_AFTER, assert_drill_passed, fire_drill, wait_healthy

DISK_MB = 64
VICTIM = "b"


def test_fill_refuses_a_directory_on_the_hosts_disk(tmp_path: Path) -> None:
    site = {"name": "x", "data_dir": str(tmp_path)}
    with pytest.raises(RuntimeError, match="--disk-mb"):
        disk.fill(site)
    assert not (tmp_path / disk.FILLER).exists()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = start_cluster(tmp_path_factory.mktemp("drill-disk") / "cluster", disk_mb=DISK_MB)
    data_dirs = [Path(cluster.site(n)["data_dir"]) for n in cluster.names]
    try:
        yield cluster
    finally:
        cluster.down()
        # `cluster down` unmounts what `cluster up --disk-mb` mounted.
        assert not any(os.path.ismount(d) for d in data_dirs), data_dirs


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_disk_full_site_refuses_cleanly_and_catches_up(cluster: Cluster, tmp_path: Path) -> None:
    data_dir = Path(cluster.site(VICTIM)["data_dir"])
    assert os.path.ismount(data_dir)
    wait_healthy(cluster)
    proc, report = fire_drill(
        cluster.dir / "cluster.json",
        "disk-full",
        tmp_path / "disk-full.json",
        "--site",
        VICTIM,
        "--heal-after",
        str(HEAL_AFTER),
        "--quiet",
        duration=30,
    )
    print("disk_full:", report.get("disk_full"))
    assert_drill_passed(proc, report, "disk-full")
    inflicted = report["inflicted"]
    assert inflicted["site"] == VICTIM
    assert inflicted["disk_bytes"] <= DISK_MB * 2**20
    assert inflicted["free_after"] < 2**20, inflicted  # really full
    direct = report["disk_full"]["direct_writes"]
    assert direct["ok"] is True and sum(direct["answers"].values()) > 0, direct
    assert not any(k.startswith("500") for k in direct["answers"]), direct
    assert report["disk_full"]["internal_errors"] == {}, report["counters"]["error_answers"]
    assert "full disk: writes straight to the site" in proc.stdout
    recovery = report["disk_full"]["recovery"]
    assert recovery["free_after_removal"] > DISK_MB * 2**20 // 2, recovery
    # Whatever the node did (it turns JetStream off on ENOSPC), the drill powered the
    # site on again when it had to, and the site ended healthy on the same disk.
    if recovery["jetstream_disabled"]:
        assert recovery["restart"] is True and recovery["power_on"]["status"] == "up", recovery
    assert not (data_dir / disk.FILLER).exists()
    wait_healthy(cluster, timeout=60)
