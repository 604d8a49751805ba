"""WAN faults through the real drill CLI, on one real local cluster in network
namespaces: random packet loss on a site's links, a latency spike on them, and a
burned site rebuilt while another is cut off.

Each drill must leave the cluster healthy for the next. The namespaces need root;
without it the module is skipped (that reason is shown).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from outlast.drill.netfaults import send_latency, write_outage
from outlast.drill.verdict import Send
from tests.cluster.harness import Cluster, start_cluster
from tests.cluster.test_netns_cluster import REASON
from tests.drill.test_fire import assert_drill_passed, fire_drill, outlast, wait_healthy

needs_netns = pytest.mark.skipif(bool(REASON), reason=REASON)

DURATION, AT, HEAL_AFTER = 24, 4, 8
# Writes resume some 10 s after the heal (meta and stream leader elections), and every
# client must write again after that before the load ends.
REBUILD_DURATION = 40
SPIKE_MS = 150.0


def _send(sent_at: float, acked_at: float | None) -> Send:
    return Send("u", "!r", "t", "b", acked_at is not None, "$e", 1, 0, sent_at, acked_at)


def test_send_latency_counts_only_the_acked_sends_begun_in_the_window() -> None:
    sends = [_send(0.5, 0.6), _send(1.0, 1.2), _send(1.5, 2.5), _send(1.8, None), _send(3.0, 3.1)]
    got = send_latency(sends, 1.0, 2.0)
    assert got == {"sends": 2, "p50_ms": 200.0, "p99_ms": 1000.0, "max_ms": 1000.0}
    assert send_latency(sends, 10.0, 11.0) == {"sends": 0}


def test_write_outage_is_the_longest_time_nobody_was_acknowledged() -> None:
    assert write_outage([0.5, 1.0, 1.5, 9.0, 9.5], fault_at=1.0, until=10.0) == 7.5
    assert write_outage([], fault_at=1.0, until=4.0) == 3.0  # nothing at all after the fault


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if REASON:
        pytest.skip(REASON)
    directory = tmp_path_factory.mktemp("drill-netfaults") / "cluster"
    cluster = start_cluster(directory, netns_args=("--netns", "--latency-ms", "5"))
    try:
        yield cluster
    finally:
        cluster.down()


def drill(
    cluster: Cluster, fault: str, tmp_path: Path, *extra: str, duration: float = DURATION
) -> dict[str, Any]:
    wait_healthy(cluster)
    proc, report = fire_drill(
        cluster.dir / "cluster.json",
        fault,
        tmp_path / f"{fault}.json",
        "--heal-after",
        str(HEAL_AFTER),
        "--quiet",
        *extra,
        duration=duration,
        at=AT,
    )
    assert_drill_passed(proc, report, fault)
    assert report["recovered_at_s"] >= report["fault_at_s"] + HEAL_AFTER - 0.5
    wait_healthy(cluster, timeout=90)
    return report


@needs_netns
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_random_loss_on_a_sites_links(cluster: Cluster, tmp_path: Path) -> None:
    report = drill(cluster, "loss", tmp_path, "--loss-percent", "15")
    assert report["inflicted"] == {"site": report["site"], "loss_percent": 15}
    # The kernel really dropped route packets, and the rules are gone afterwards.
    assert report["recovery"]["packets_dropped"] > 0, report["recovery"]
    assert report["send_latency"]["during_fault"]["sends"] > 0
    again = drill(cluster, "loss", tmp_path, "--loss-percent", "5")
    assert again["recovery"]["packets_dropped"] > 0


@needs_netns
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_latency_spike_on_a_sites_links(cluster: Cluster, tmp_path: Path) -> None:
    report = drill(cluster, "spike", tmp_path, "--spike-ms", str(SPIKE_MS))
    victim = report["site"]
    inflicted = report["inflicted"]
    assert inflicted["extra_ms"] == SPIKE_MS
    others = [n for n in cluster.names if n != victim]
    assert sorted(inflicted["links"]) == sorted(
        [f"{victim}->{o}" for o in others] + [f"{o}->{victim}" for o in others]
    )
    # The victim leads streams (it leads the most): a write to one needs a round trip
    # over its delayed links to a follower, so some send took at least that long.
    during = report["send_latency"]["during_fault"]
    assert during["sends"] > 0 and during["max_ms"] >= 2 * SPIKE_MS, during


@needs_netns
@pytest.mark.slow
@pytest.mark.timeout(420)
def test_a_rebuild_while_another_site_is_partitioned(cluster: Cluster, tmp_path: Path) -> None:
    before = {name: cluster.site(name)["node"] for name in cluster.names}
    report = drill(cluster, "rebuild-partitioned", tmp_path, duration=REBUILD_DURATION)
    burned, cut = report["inflicted"]["burned"], report["inflicted"]["partitioned"]
    assert burned == report["site"] and cut != burned and cut in cluster.names
    rebuild = report["recovery"]["rebuild"]
    assert rebuild["ok"] is True and rebuild["error"] is None, rebuild
    assert rebuild["replaced"] == before[burned] and rebuild["node"] != before[burned]
    assert cluster.site(burned)["node"] == rebuild["node"]
    # One replica burned, one cut off: no quorum, so the rebuild cannot finish before
    # the heal, and no client is acknowledged until then.
    assert rebuild["finished_after_heal_s"] >= 0, rebuild
    assert report["write_gap"]["min"] >= HEAL_AFTER - 1.0, report["write_gap"]
    # Every site was read back after the heal and the rebuild: the rebuilt one too.
    assert report["verdict"]["ok"] is True


def test_loss_is_refused_on_a_loopback_cluster_and_outside_5_to_20(tmp_path: Path) -> None:
    """The user-space relays cannot drop packets: the drill says so before any load."""
    described = tmp_path / "cluster.json"
    described.write_text(json.dumps({"network": {"mode": "loopback"}, "sites": []}))
    proc = outlast("drill", "fire", "--cluster", str(described), "--fault", "loss", timeout=60)
    assert proc.returncode != 0
    assert "--fault loss needs a cluster started with `outlast cluster up --netns`" in proc.stderr
    proc = outlast("drill", "fire", "--fault", "loss", timeout=60)
    assert proc.returncode == 2 and "(pass it with --cluster)" in proc.stderr
    proc = outlast("drill", "fire", "--fault", "loss", "--loss-percent", "30", timeout=60)
    assert proc.returncode == 2 and "--loss-percent must be 5-20" in proc.stderr
