"""Notification and highlight counts from evaluated push actions, and their reset by receipts.

Spec: Client-Server API, "Receiving notifications" (counts come from the push
rules: an event counts when its actions ``notify``, and is highlighted when
they also set the highlight tweak), "Marking notifications as read" (a receipt
marks its event and every earlier one read; ``m.read`` and ``m.read.private``
both count and the furthest wins) and "Threaded read receipts" (counts are
partitioned per thread, the main timeline being the thread ``main``; an
unthreaded receipt reads every thread, a threaded one only its own).

Positions are ``(seq, idx)`` in the room's total order, as in ``unread.py``.
These functions define the semantics; the view may keep the same numbers
incrementally, and its tests can compare against them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from outlast.core.paths import lookup
from outlast.core.push_eval import Outcome
from outlast.core.unread import READ_TYPES, Position

MAIN = "main"  # the thread id of the main timeline
MAX_THREAD_HOPS = 3  # spec: "a maximum of 3 hops is recommended"
THREAD_REL = "m.thread"


def thread_of(
    event: Mapping[str, Any],
    parent: Callable[[str], Mapping[str, Any] | None],
    max_hops: int = MAX_THREAD_HOPS,
) -> str:
    """The thread root an event belongs to, or ``MAIN``.

    Follows ``m.relates_to`` (``parent`` looks an event up by id) until an
    ``m.thread`` relation names the root, for at most ``max_hops`` relations:
    a reaction to a threaded reply is in that thread; a thread root, and
    anything related to it by a non-thread relation, is in the main timeline.
    """
    current: Mapping[str, Any] | None = event
    for _ in range(max_hops):
        relation = lookup(current or {}, ("content", "m.relates_to"))
        if not isinstance(relation, Mapping) or not isinstance(relation.get("event_id"), str):
            return MAIN
        target: str = relation["event_id"]
        if relation.get("rel_type") == THREAD_REL:
            return target
        current = parent(target)
        if current is None:
            return MAIN
    return MAIN


@dataclass(frozen=True)
class Notification:
    """An event that notified one user: its place in the room, its thread, whether it highlights."""

    position: Position
    thread_id: str
    highlight: bool


def notification(outcome: Outcome, position: Position, thread_id: str) -> Notification | None:
    """What an evaluated event adds to the counts: nothing unless its actions notify."""
    if not outcome.notify:
        return None
    return Notification(position, thread_id, outcome.highlight)


@dataclass(frozen=True)
class ReadUpTo:
    """How far a user has read a room: unthreaded, and per thread (``MAIN`` included)."""

    unthreaded: Position | None = None
    threads: Mapping[str, Position] = field(default_factory=dict)

    def has_read(self, position: Position, thread_id: str) -> bool:
        """Read if an unthreaded receipt, or one in the event's own thread, is at or after it."""
        if self.unthreaded is not None and self.unthreaded >= position:
            return True
        mark = self.threads.get(thread_id)
        return mark is not None and mark >= position


def read_up_to(receipts: Iterable[tuple[str, str, Position]]) -> ReadUpTo:
    """Fold a user's receipts in a room, as (receipt type, thread id or "", position).

    Only ``m.read`` and ``m.read.private`` clear notifications (not
    ``m.fully_read``); for each thread, and for unthreaded receipts, the
    furthest of them counts.
    """
    unthreaded: Position | None = None
    threads: dict[str, Position] = {}
    for receipt_type, thread_id, position in receipts:
        if receipt_type not in READ_TYPES:
            continue
        if not thread_id:
            unthreaded = position if unthreaded is None else max(unthreaded, position)
        elif thread_id not in threads or position > threads[thread_id]:
            threads[thread_id] = position
    return ReadUpTo(unthreaded, threads)


@dataclass(frozen=True)
class Counts:
    notification_count: int = 0
    highlight_count: int = 0

    def add(self, item: Notification) -> Counts:
        return Counts(self.notification_count + 1, self.highlight_count + int(item.highlight))

    def as_json(self) -> dict[str, int]:
        return {
            "notification_count": self.notification_count,
            "highlight_count": self.highlight_count,
        }


@dataclass(frozen=True)
class RoomCounts:
    """``unread_notifications`` and ``unread_thread_notifications`` of one room in /sync."""

    room: Counts
    threads: Mapping[str, Counts] = field(default_factory=dict)

    def sync_fields(self, threaded: bool) -> dict[str, Any]:
        """The room's fields in /sync; thread counts only when the filter asked for them."""
        out: dict[str, Any] = {"unread_notifications": self.room.as_json()}
        if threaded:  # present, if empty, so the client knows counts are per thread
            out["unread_thread_notifications"] = {
                root: counts.as_json() for root, counts in self.threads.items()
            }
        return out


def room_counts(
    notifications: Iterable[Notification], read: ReadUpTo, threaded: bool = False
) -> RoomCounts:
    """Counts of the notifications not yet read.

    Without ``threaded`` (the filter's ``unread_thread_notifications``) the
    room's counts cover every thread. With it they cover the main timeline
    only, and each thread root with unread notifications gets its own entry
    (threads with none are omitted, as the spec allows).
    """
    room = Counts()
    threads: dict[str, Counts] = {}
    for item in notifications:
        if read.has_read(item.position, item.thread_id):
            continue
        if threaded and item.thread_id != MAIN:
            threads[item.thread_id] = threads.get(item.thread_id, Counts()).add(item)
        else:
            room = room.add(item)
    return RoomCounts(room, threads)


def badge(rooms: Iterable[RoomCounts]) -> int:
    """The push gateway's ``counts.unread``: unread notifications across all the user's rooms."""
    return sum(
        r.room.notification_count + sum(t.notification_count for t in r.threads.values())
        for r in rooms
    )
