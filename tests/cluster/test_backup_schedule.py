"""Scheduled backups on a real three-site cluster: the workers of every site run the
schedule with the least-privileged credential, in the bucket `cluster up` made;
exactly one backup per period, and another site's worker takes over when the
holder is killed."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from outlast.backup.target import DirectoryTarget, backups_in
from outlast.backup.verify import verify
from tests.backup.schedule_watch import FOR_PERIOD, Seen, taker
from tests.cluster.harness import start_cluster

pytestmark = pytest.mark.slow

EVERY = 4.0
KEEP = 4


async def test_sites_share_the_schedule_and_a_survivor_takes_over(tmp_path: Path) -> None:
    target = tmp_path / "backups"
    cluster = start_cluster(
        tmp_path / "cluster",
        site_toml=f'\n[backup]\nschedule_seconds = {EVERY}\ntarget = "{target}"\n'
        f"keep = {KEEP}\nlease_seconds = 3\n",
    )
    seen = Seen(target, EVERY)
    try:
        await seen.wait_for("three scheduled backups", lambda: len(seen.backups) >= 3, 120)
        periods = seen.periods()
        assert len(periods) == len(set(periods)), f"two backups in one period: {seen.backups}"
        assert all(
            who.startswith("scheduled by ") and FOR_PERIOD.search(who)
            for _, who in seen.backups.values()
        ), seen.backups

        newest = max(seen.backups, key=lambda n: seen.backups[n][0])
        holder = taker(seen.backups[newest][1])
        holder_pid = int(holder.rsplit(":", 1)[1])
        holder_site = holder.removeprefix("scheduled by ").split("@", 1)[0]
        os.kill(holder_pid, signal.SIGKILL)
        killed_at = time.time()

        def taken_over() -> bool:
            theirs = set(seen.by(holder_pid))
            return any(
                created > killed_at and name not in theirs
                for name, (created, _) in seen.backups.items()
            )

        await seen.wait_for("a backup after the holder was killed", taken_over, 90)
        periods = seen.periods()
        assert len(periods) == len(set(periods)), f"two backups in one period: {seen.backups}"
        assert holder_site in {"a", "b", "c"}
        await seen.wait_for("retention", lambda: len(seen.backups) > KEEP, 90)
        for path in backups_in(target):
            assert verify(DirectoryTarget(path)) == []
    finally:
        cluster.down()
    assert len(backups_in(target)) <= KEEP + 1  # pruned after each backup but maybe the last
