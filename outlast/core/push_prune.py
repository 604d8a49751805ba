"""Which stored notifications a view may forget: the pruning rule for ``push_actions``.

A user's notifications in a room are kept for three readers: the /sync counts
(only unread ones matter, and only the newest ``MAX_COUNTED`` of them, as the
counts saturate there), ``GET /notifications`` (a history with ``read``
flags; the spec sets no retention, Synapse keeps about a month) and push
delivery (the rows of a message until the push consumer has delivered it).

The rule is a function of log facts only: the rows (their events' places and
``origin_server_ts``), the user's read receipts in the room, and ``now``, the
``origin_server_ts`` of the room event being applied. All of those are in the
room's own partition, so every site, and a view rebuilt from the log, forgets
the same rows at the same place in the log. Nothing younger than
``min_age_ms`` (in that log time) is ever forgotten: that is delivery's
margin and the recent history /notifications always shows.

Among the older rows, newest first, a user keeps:

- unread ones: the newest ``keep_unread`` (the counts cannot see past them);
- read ones: the newest ``keep_read``, and none older than ``max_age_ms``.

Ranking only among the older rows keeps a superset of "the newest N overall",
so the counts are unchanged by pruning while ``keep_unread`` is at least the
counts' saturation point.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from outlast.core.push_counts import ReadUpTo
from outlast.core.unread import Position


@dataclass(frozen=True)
class PrunePolicy:
    """How much notification history each (user, room) keeps. ``every`` 0: never prune."""

    min_age_ms: int = 86_400_000  # one day
    max_age_ms: int = 30 * 86_400_000  # thirty days
    keep_read: int = 100
    keep_unread: int = 1000
    every: int = 16  # prune a (user, room) on log messages whose seq is a multiple of this

    @property
    def enabled(self) -> bool:
        return self.every > 0

    def due(self, seq: int) -> bool:
        """Whether a notification written at this log sequence triggers pruning.

        Pruning scans the user's older rows in the room; doing it on one message in
        ``every`` (chosen by sequence, so the same ones at every site) spreads that cost.
        """
        return self.enabled and seq % self.every == 0


DEFAULT = PrunePolicy()


@dataclass(frozen=True)
class Stored:
    """One stored notification of a user in a room: where its event is, its thread, its time."""

    position: Position
    thread_id: str
    ts: int


def doomed(rows: Iterable[Stored], read: ReadUpTo, now: int, policy: PrunePolicy) -> set[Position]:
    """The positions of the rows the policy forgets at log time ``now`` (milliseconds)."""
    old = sorted(
        (r for r in rows if r.ts <= now - policy.min_age_ms),
        key=lambda r: r.position,
        reverse=True,
    )
    seen = [r for r in old if read.has_read(r.position, r.thread_id)]
    unseen = [r for r in old if not read.has_read(r.position, r.thread_id)]
    out = {r.position for r in unseen[policy.keep_unread :]}
    out |= {
        r.position
        for rank, r in enumerate(seen)
        if rank >= policy.keep_read or r.ts < now - policy.max_age_ms
    }
    return out
