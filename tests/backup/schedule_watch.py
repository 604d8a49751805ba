"""Watch a backup target while schedulers run: every backup seen, when, and by whom."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from outlast.backup.retention import period_of
from outlast.backup.target import DirectoryTarget, backups_in
from outlast.backup.verify import read_manifest


class Seen:
    """Every finished backup that appeared in the target: name -> (created, taken by)."""

    def __init__(self, target: Path, every: float) -> None:
        self.target = target
        self.every = every
        self.backups: dict[str, tuple[float, str]] = {}

    def look(self) -> None:
        for path in backups_in(self.target):
            if path.name not in self.backups:
                try:
                    manifest = read_manifest(DirectoryTarget(path))
                except OSError:  # deleted by retention in between
                    continue
                created = datetime.fromisoformat(manifest.created).timestamp()
                self.backups[path.name] = (created, manifest.source)

    async def wait_for(self, what: str, probe: Callable[[], bool], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not probe():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; seen {self.backups}")
            await asyncio.sleep(0.2)
            self.look()

    def periods(self) -> list[int]:
        """The period each backup was taken for: as its label names it (the claim's),
        not by its creation time, which is stamped later and may fall in the next one."""
        out = []
        for created, who in self.backups.values():
            named = FOR_PERIOD.search(who)
            out.append(int(named.group(1)) if named else period_of(created, self.every))
        return out

    def by(self, pid: int) -> list[str]:
        return [name for name, (_, who) in self.backups.items() if taker(who).endswith(f":{pid}")]


FOR_PERIOD = re.compile(r" for period (\d+)$")


def taker(who: str) -> str:
    """A scheduled backup's label without its period: "scheduled by <site>@<host>:<pid>"."""
    return FOR_PERIOD.sub("", who)
