"""Scheduled backups: two sites compete, one backup per period, takeover, retention.

Two real ``outlast backup schedule`` processes (sites a and b) against one real
nats-server: each period's backup is taken by exactly one of them; after the
lease holder is killed with SIGKILL the other takes the next backups; retention
keeps the newest ``keep`` backups and deletes the older ones.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from outlast.backup.target import DirectoryTarget, backups_in
from outlast.backup.verify import verify
from outlast.config import LogConfig
from outlast.log.client import LogClient
from outlast.log.engine import NatsNode
from outlast.log.facts.control import HealthProbe
from outlast.log.lease import KeyBucket
from outlast.log.names import Names
from tests.backup.schedule_watch import Seen
from tests.testrig import start_shared_nats

pytestmark = pytest.mark.slow

EVERY = 3.0  # seconds per period
LEASE = 3.0
KEEP = 3


@pytest.fixture
def nats_node(tmp_path: Path) -> Iterator[NatsNode]:
    node = start_shared_nats(tmp_path / "nats")
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture
async def admin(nats_node: NatsNode) -> AsyncIterator[LogClient]:
    """The admin step: streams, and the schedule's bucket, exist before the schedulers run."""
    client = LogClient([nats_node.url], name="admin")
    await client.connect()
    names = Names()
    await client.ensure_streams(
        [*names.streams(), *names.control_streams()],
        replicas=1,
        duplicate_window=float(LogConfig().duplicate_window_seconds),
    )
    await KeyBucket(client, names.backup_bucket).ensure(1)
    for i in range(5):
        await client.append(f"outlast.users.u{i}", HealthProbe(report={"n": i}))
    try:
        yield client
    finally:
        await client.close()


def start_scheduler(tmp_path: Path, site: str, url: str, target: Path) -> subprocess.Popen[bytes]:
    config = tmp_path / f"{site}.toml"
    config.write_text(
        f'[server]\nsite = "{site}"\ndata_dir = "{tmp_path / site}"\n\n'
        f'[log]\nnats_urls = ["{url}"]\n\n'
        f'[backup]\nschedule_seconds = {EVERY}\ntarget = "{target}"\nkeep = {KEEP}\n'
        f"lease_seconds = {LEASE}\n"
    )
    log = open(tmp_path / f"{site}.log", "wb")  # noqa: SIM115 - closed after Popen
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "outlast", "backup", "schedule", "--config", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    finally:
        log.close()


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


async def test_one_backup_per_period_takeover_and_retention(
    tmp_path: Path, nats_node: NatsNode, admin: LogClient
) -> None:
    target = tmp_path / "backups"
    procs = {site: start_scheduler(tmp_path, site, nats_node.url, target) for site in ("a", "b")}
    seen = Seen(target, EVERY)
    try:
        await seen.wait_for("four scheduled backups", lambda: len(seen.backups) >= 4)
        periods = seen.periods()
        assert len(periods) == len(set(periods)), f"two backups in one period: {seen.backups}"

        # Kill the lease holder outright: no goodbye, its lease must lapse by TTL.
        lease = await KeyBucket(admin, Names().backup_bucket).read("lease")
        assert lease is not None
        holder_pid = int(lease[1].decode().rsplit(":", 1)[1])
        holder = next(p for p in procs.values() if p.pid == holder_pid)
        survivor = next(p for p in procs.values() if p.pid != holder_pid)
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)
        killed_at = time.time()

        def after_kill_by_survivor() -> int:
            return sum(seen.backups[n][0] > killed_at for n in seen.by(survivor.pid))

        await seen.wait_for("two backups by the survivor", lambda: after_kill_by_survivor() >= 2)
        periods = seen.periods()
        assert len(periods) == len(set(periods)), f"two backups in one period: {seen.backups}"
        assert not [n for n in seen.by(holder_pid) if seen.backups[n][0] > killed_at]

        # Retention: once the survivor has pruned, the newest KEEP of all taken are left.
        def newest_left() -> bool:
            left = sorted(p.name for p in backups_in(target))
            newest = sorted(seen.backups, key=lambda n: seen.backups[n][0])[-KEEP:]
            return left == sorted(newest)

        await seen.wait_for("retention to leave the newest three", newest_left)
        assert len(seen.backups) > KEEP
        for path in backups_in(target):
            assert verify(DirectoryTarget(path)) == []
    finally:
        for proc in procs.values():
            stop(proc)
