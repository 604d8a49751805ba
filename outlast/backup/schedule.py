"""Scheduled backups: every site may run the schedule, exactly one takes each backup.

Two primitives of the log decide who does the work (outlast/log/lease.py):

- the **lease** (key ``lease`` of the ``<PREFIX>_BACKUPS`` bucket, written with
  a TTL of ``lease_seconds``): only its holder takes backups; it renews it every
  third of the TTL, and when it dies the key lapses and a survivor takes it;
- one **claim per period** (key ``period.<n>``, created once): even while a lease
  changes hands (an old holder that stalled and does not know it yet), at most
  one process takes period ``n``'s backup.

After its backup verified, the holder applies retention (outlast/backup/retention.py)
to the target: the manifest of a doomed backup is removed first, so a backup is
either whole and listed or ignored, never half deleted and trusted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from datetime import datetime
from pathlib import Path

from outlast.backup.create import create_backup
from outlast.backup.manifest import Deployment
from outlast.backup.retention import Held, period_of, to_delete
from outlast.backup.source import Source
from outlast.backup.target import MANIFEST, DirectoryTarget, backups_in
from outlast.backup.verify import read_manifest
from outlast.config import BackupConfig
from outlast.log.client import LogClient, LogUnavailable
from outlast.log.lease import KeyBucket, Lease, claim

log = logging.getLogger(__name__)

LEASE_KEY = "lease"


class BackupScheduler:
    """Run the backup schedule for one process until stopped."""

    def __init__(
        self,
        log_client: LogClient,
        settings: BackupConfig,
        deployment: Deployment,
        bucket: str,
        holder: str,
    ) -> None:
        self.log = log_client
        self.settings = settings
        self.deployment = deployment
        self.holder = holder
        self.bucket = KeyBucket(log_client, bucket)
        self.lease = Lease(self.bucket, LEASE_KEY, holder, settings.lease_seconds)
        self.last_period: int | None = None
        self.taken: list[Path] = []  # manifests of the backups this process took
        self._task: asyncio.Task[None] | None = None

    @property
    def tick(self) -> float:
        """How often the lease is renewed and the schedule looked at."""
        return max(0.2, min(self.settings.lease_seconds / 3, self.settings.schedule_seconds / 4))

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self) -> None:
        """Stop, and hand the lease on at once (a dead process's lapses by its TTL)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        await self.lease.release()

    async def run(self) -> None:
        renewing = asyncio.get_running_loop().create_task(self._renew())
        try:
            while True:
                if self.lease.held:
                    await self._maybe_take()
                await asyncio.sleep(self.tick)
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing

    async def _renew(self) -> None:
        was = False
        while True:
            held = await self.lease.hold()
            if held != was:
                log.info(
                    "backup schedule: %s the lease (%s)", "took" if held else "lost", self.holder
                )
                was = held
            await asyncio.sleep(self.tick)

    async def _maybe_take(self) -> None:
        period = period_of(time.time(), self.settings.schedule_seconds)
        if period == self.last_period:
            return
        try:
            mine = await claim(
                self.bucket,
                f"period.{period}",
                self.holder,
                ttl=2 * self.settings.schedule_seconds + self.settings.lease_seconds,
            )
        except LogUnavailable as exc:
            log.warning("backup schedule: cannot claim period %d yet: %s", period, exc)
            return
        self.last_period = period
        if not mine:
            return
        try:
            manifest = await self.take(period)
        except Exception:  # a failed backup is logged; the next period tries again
            log.exception("scheduled backup of period %d FAILED", period)
            return
        self.taken.append(manifest)
        log.info("scheduled backup of period %d: %s", period, manifest)
        await asyncio.get_running_loop().run_in_executor(None, self.prune, manifest.parent)

    async def take(self, period: int) -> Path:
        # The period is named: the manifest's creation time is stamped later than the
        # claim and may already fall in the next period.
        label = f"scheduled by {self.holder} for period {period}"
        source = Source(self.log, self.deployment, label)
        path, _ = await create_backup(source, Path(self.settings.target), progress=log.debug)
        return path

    def prune(self, newest: Path) -> list[Path]:
        """Apply retention to the target; ``newest`` has just verified. Returns what went."""
        held = []
        for path in backups_in(Path(self.settings.target)):
            try:
                created = datetime.fromisoformat(read_manifest(DirectoryTarget(path)).created)
            except (OSError, ValueError, KeyError, TypeError):
                continue  # unreadable: not ours to judge, never deleted here
            held.append(Held(path.name, created.timestamp()))
        doomed = to_delete(
            held,
            keep=self.settings.keep,
            max_age=self.settings.max_age_seconds,
            now=time.time(),
            verified={newest.name},
        )
        gone = []
        for name in doomed:
            path = Path(self.settings.target) / name
            try:
                (path / MANIFEST).unlink()  # from here on it is no backup
                shutil.rmtree(path)
            except OSError as exc:
                log.warning("backup retention: could not delete %s: %s", path, exc)
                continue
            gone.append(path)
            log.info("backup retention: deleted %s", path)
        return gone
