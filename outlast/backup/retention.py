"""Which backups a schedule keeps, and which period a moment belongs to: plain functions.

Retention never leaves the deployment without a verified backup: the newest
verified one is always kept, whatever ``keep`` and ``max_age`` say, and when no
backup is known to verify nothing is deleted at all.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Held:
    """A finished backup in the target: its name and when it was created (epoch seconds)."""

    name: str
    created: float


def period_of(now: float, every: float) -> int:
    """The schedule's period a moment falls in: one backup is due per period."""
    return math.floor(now / every)


def to_delete(
    backups: Iterable[Held],
    *,
    keep: int,
    max_age: float,
    now: float,
    verified: set[str],
) -> list[str]:
    """Names to delete, oldest first: all but the newest ``keep``, and (``max_age`` > 0)
    those older than ``max_age`` seconds; never the newest verified backup."""
    newest_first = sorted(backups, key=lambda b: (b.created, b.name), reverse=True)
    anchor = next((b.name for b in newest_first if b.name in verified), None)
    if anchor is None:
        return []
    doomed = []
    for index, backup in enumerate(newest_first):
        too_many = index >= keep
        too_old = max_age > 0 and now - backup.created > max_age
        if (too_many or too_old) and backup.name != anchor:
            doomed.append(backup.name)
    return list(reversed(doomed))
