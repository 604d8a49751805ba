"""Compound and nastier faults through the real drill CLI, on one real local cluster.

Each drill must leave the cluster healthy for the next: a power loss of every
site at once, a minority node's stream files damaged while it is down, and a
frozen site combined with a partitioned one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.harness import Cluster, start_cluster
from tests.drill.test_fire import HEAL_AFTER, assert_drill_passed, fire_drill, wait_healthy

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

# Long enough that every client writes again after the slowest recovery (power-all
# restarts every node and worker, then the views catch up).
DURATION = 40


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = start_cluster(tmp_path_factory.mktemp("drill-compound") / "cluster")
    try:
        yield cluster
    finally:
        cluster.down()


def drill(cluster: Cluster, fault: str, tmp_path: Path) -> dict[str, Any]:
    wait_healthy(cluster)
    before = {name: cluster.site(name)["pids"] for name in cluster.names}
    proc, report = fire_drill(
        cluster.dir / "cluster.json",
        fault,
        tmp_path / f"{fault}.json",
        "--heal-after",
        str(HEAL_AFTER),
        "--quiet",
        duration=DURATION,
    )
    assert_drill_passed(proc, report, fault)
    assert report["recovered_at_s"] is not None
    assert report["recovered_at_s"] >= report["fault_at_s"] + HEAL_AFTER - 0.5
    wait_healthy(cluster, timeout=60)
    report["_stdout"] = proc.stdout
    report["_pids_before"] = before
    return report


def test_power_loss_of_every_site(cluster: Cluster, tmp_path: Path) -> None:
    report = drill(cluster, "power-all", tmp_path)
    assert report["site"] == "all"
    assert report["inflicted"] == {"sites": cluster.names}
    durable = report["durability"]
    assert durable["acknowledged_before_fault"] > 0, durable
    assert durable["missing_after_power_on"] == 0 and durable["ok"] is True, durable
    assert sorted(r["site"] for r in report["recovery"]["sites"]) == cluster.names
    # Every site really lost power: new processes everywhere.
    for name in cluster.names:
        assert set(cluster.site(name)["pids"]).isdisjoint(report["_pids_before"][name]), name
    assert "MISSING after power-on: 0" in report["_stdout"]


def test_corrupt_replica_of_a_minority_node(cluster: Cluster, tmp_path: Path) -> None:
    report = drill(cluster, "corrupt", tmp_path)
    victim = report["site"]
    damaged = report["inflicted"]["damaged"]
    assert report["inflicted"]["site"] == victim and damaged, report["inflicted"]
    assert all(d["flipped"] > 0 and d["cut"] > 0 for d in damaged), damaged
    replica = report["replica"]
    print("replica:", replica)
    assert replica["streams_damaged"] == len(damaged)
    # The damage bit: the node restored fewer messages from its disk than it held.
    assert replica["dropped_at_restore"] > 0 and replica["detected"] is True, replica
    # Whatever the node made of the damage, it must end up with every message again.
    assert replica["repaired"] is True, replica
    assert replica["caught_up"] == len(damaged), replica
    assert "damaged replica:" in report["_stdout"]


def test_freeze_one_site_and_partition_another(cluster: Cluster, tmp_path: Path) -> None:
    report = drill(cluster, "freeze-partition", tmp_path)
    inflicted = report["inflicted"]
    assert inflicted["frozen"] == report["site"]
    assert inflicted["partitioned"] in cluster.names and inflicted["partitioned"] != report["site"]
    # With two of three sites out no write can be acknowledged: every client waits at
    # least until the fault is undone.
    gap = report["write_gap"]
    assert gap["min"] >= HEAL_AFTER - 1.0, gap
