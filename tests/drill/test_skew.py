"""The skew drill through the real CLI, on a real local cluster: one site's workers
run 5 minutes fast; tokens, refresh, expiry and event stamps must be judged as if
its clock were right, and no acknowledged message may be lost."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from outlast.clock import SKEW_ENV
from tests.cluster.harness import Cluster, start_cluster
from tests.drill.test_fire import HEAL_AFTER, assert_drill_passed, fire_drill, wait_healthy

VICTIM = "a"
# Short enough that the drill waits for a token to expire while the clock is off.
LIFETIME_TOML = "refreshable_access_token_lifetime_ms = 15000\n"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = start_cluster(
        tmp_path_factory.mktemp("drill-skew") / "cluster", auth_toml=LIFETIME_TOML
    )
    try:
        yield cluster
    finally:
        cluster.down()


def _environ(pid: int) -> str:
    return Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_skewed_site_judges_tokens_and_stamps_by_the_logs_clock(
    cluster: Cluster, tmp_path: Path
) -> None:
    wait_healthy(cluster)
    proc, report = fire_drill(
        cluster.dir / "cluster.json",
        "skew",
        tmp_path / "skew.json",
        "--site",
        VICTIM,
        "--heal-after",
        str(HEAL_AFTER),
        "--skew-seconds",
        "300",
        "--quiet",
        duration=40,
    )
    skew = report["skew"]
    for check in skew["checks"]:
        print(check)
    assert_drill_passed(proc, report, "skew")
    assert report["inflicted"]["skew_s"] == 300
    assert "clock 300.0s off:" in proc.stdout and "failed: none" in proc.stdout
    assert skew["ok"] is True and skew["failed"] == [], skew["failed"]
    names = [c["check"] for c in skew["checks"]]
    # Both directions, a refresh each way, the stamp, and the expiry really waited for.
    assert f"token from {VICTIM} works at b" in names and "token from b works at a" in names
    assert sum(n.startswith("refresh of") for n in names) == 2, names
    assert any(n.startswith(f"{VICTIM} stamps events") for n in names), names
    assert "skipped" not in skew["expiry"], skew["expiry"]
    assert sum(n.startswith("expired token") for n in names) == 2 * len(cluster.names), names
    # Undone: the site's workers run without the offset again.
    wait_healthy(cluster, timeout=60)
    workers = cluster.site(VICTIM)["pids"][1:]
    assert workers and all(SKEW_ENV not in _environ(pid) for pid in workers)
