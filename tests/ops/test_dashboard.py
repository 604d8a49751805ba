"""How the dashboard folds a site's worker reports into one (outlast.ops.dashboard)."""

from __future__ import annotations

from typing import Any

from outlast.ops.dashboard import FORGET_SECONDS, STALE_SECONDS, merge_worker_reports

NOW = 1_000_000.0


def report(pid: int, age: float, *, ready: bool = True, **extra: Any) -> dict[str, Any]:
    return {
        "site": "a",
        "worker": pid,
        "time": NOW - age,
        "ready": ready,
        "write_rate": 10.0,
        "sync_waiters": 3,
        "view_lag": 0,
        **extra,
    }


def test_two_ready_workers_add_up() -> None:
    site = merge_worker_reports([report(1, 0.5), report(2, 1.0, view_lag=4)], NOW)
    assert site["ready"] is True
    assert (site["write_rate"], site["sync_waiters"], site["view_lag"]) == (20.0, 6, 4)
    assert [w["pid"] for w in site["workers"]] == [1, 2]
    assert site["time"] == NOW - 0.5  # the freshest report dates the site


def test_one_worker_not_ready_makes_the_site_not_ready_and_explains_why() -> None:
    stalled = report(2, 1.0, ready=False, view_stalled=True)
    site = merge_worker_reports([report(1, 0.2), stalled], NOW)
    assert site["ready"] is False
    assert site["view_stalled"] is True
    assert [w["ready"] for w in site["workers"]] == [True, False]


def test_a_silent_worker_stops_counting_then_is_forgotten() -> None:
    quiet = report(2, STALE_SECONDS + 1, ready=False)
    site = merge_worker_reports([report(1, 0.3), quiet], NOW)
    assert site["ready"] is True and site["write_rate"] == 10.0  # only the live one counts
    assert len(site["workers"]) == 2  # still listed for a while
    gone = report(2, FORGET_SECONDS + 1, ready=False)
    assert [w["pid"] for w in merge_worker_reports([report(1, 0.3), gone], NOW)["workers"]] == [1]


def test_a_site_whose_workers_all_went_quiet_is_not_ready() -> None:
    site = merge_worker_reports([report(1, STALE_SECONDS + 2), report(2, STALE_SECONDS + 3)], NOW)
    assert site["ready"] is False
    assert site["time"] == NOW - STALE_SECONDS - 2
