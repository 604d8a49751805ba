"""Start a site's worker again when it dies while the rest of its site lives.

In a real site a process manager (systemd's ``Restart=on-failure``, a
container orchestrator) does this; in a local cluster the supervisor plays
that part, as ``outlast serve --workers N`` does for its own children
(outlast/workers.py). It is not a site restart: a site whose node (or
PostgreSQL) is dead — a fire, a power cut — stays dead, as a burned
datacenter would, until a rebuild or a drill's power-on. Only one worker
missing from a living site counts.

A worker must have been gone for ``GRACE_SECONDS`` first: a drill's fire kills
a site's processes one after another, and a worker killed a moment before its
node must not be brought back into a site that is about to be dead. A slot
that exits ``MAX_EXITS`` times within ``WINDOW_SECONDS`` is left down (a bad
configuration or a taken port would only fail again); ``given_up`` names it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

GRACE_SECONDS = 3.0
MAX_EXITS = 3
WINDOW_SECONDS = 60.0


@dataclass
class Slot:
    """One worker position of a site: when it was first seen gone, when it was revived."""

    gone_since: float | None = None
    revived: deque[float] = field(default_factory=deque)
    given_up: bool = False


class Revival:
    """Which dead workers to start again, and when; the supervisor does the starting."""

    def __init__(
        self,
        grace: float = GRACE_SECONDS,
        max_exits: int = MAX_EXITS,
        window: float = WINDOW_SECONDS,
    ) -> None:
        self.grace = grace
        self.max_exits = max_exits
        self.window = window
        self.slots: dict[tuple[str, int], Slot] = {}
        self.restarts = 0

    def due(self, site: str, exited: list[int], rest_alive: bool, now: float) -> list[int]:
        """The worker indexes of ``site`` to start now, given which have exited and
        whether the site's node (and database) still run."""
        for (name, index), slot in self.slots.items():
            if name == site and index not in exited:
                slot.gone_since = None  # running again (started by someone else)
        if not rest_alive:
            for index in exited:
                self.slots.pop((site, index), None)
            return []
        start = []
        for index in exited:
            slot = self.slots.setdefault((site, index), Slot())
            if slot.given_up:
                continue
            if slot.gone_since is None:
                slot.gone_since = now
                continue
            if now - slot.gone_since < self.grace:
                continue
            while slot.revived and slot.revived[0] < now - self.window:
                slot.revived.popleft()
            if len(slot.revived) >= self.max_exits:
                slot.given_up = True
                continue
            slot.revived.append(now)
            slot.gone_since = None
            self.restarts += 1
            start.append(index)
        return start

    def given_up(self, site: str) -> list[int]:
        return sorted(i for (name, i), s in self.slots.items() if name == site and s.given_up)

    def forget(self, site: str) -> None:
        """The site was started afresh (power-on, rebuild, restart): a clean slate."""
        for key in [k for k in self.slots if k[0] == site]:
            del self.slots[key]
