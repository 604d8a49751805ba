"""What /sync asks of the capabilities that add to it, and what they answer.

One /sync pass covers the positions between two tokens: :class:`SyncWindow`.
Each :class:`SyncSource` is asked once per joined room (ephemeral events,
room account data, unread counts) and once for the top level (account data,
presence, to-device messages, device lists, key counts). On an incremental
sync each is first asked which rooms it may add to (:meth:`SyncSource.touched`),
so that the rooms where nothing happened cost nothing. The composition
root (outlast/site.py) hands /sync its sources as an explicit, ordered list;
nothing registers itself.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any, Protocol

from outlast.core.tokens import SyncToken


@dataclass(frozen=True)
class SyncWindow:
    """One /sync pass: who asks, and the positions it covers, ``(since, now]``.

    ``streams`` names the streams in token order; ``since`` is None on an
    initial sync. ``evented`` holds the rooms (the user's and others) with a room
    event in the window (None: not known, any may have one), so that a source need
    not read every room of the user."""

    user_id: str
    device_id: str
    since: SyncToken | None
    now: SyncToken
    streams: tuple[str, ...]
    threaded: bool = False  # the filter's room.timeline.unread_thread_notifications
    evented: frozenset[str] | None = None

    def after(self, stream: str) -> int | None:
        """The token's position in ``stream`` (None: an initial sync)."""
        if self.since is None:
            return None
        return self.since.positions[self.streams.index(stream)]

    def upto(self, stream: str) -> int:
        return self.now.positions[self.streams.index(stream)]

    def moved(self, stream: str) -> bool:
        """Whether anything in ``stream`` can be new to this sync."""
        after = self.after(stream)
        return after is None or after < self.upto(stream)


@dataclass(frozen=True)
class JoinedRoom:
    """A room the user is joined to, and the partition stream holding it."""

    room_id: str
    stream: str


@dataclass
class RoomExtras:
    """What one source adds to a joined room's entry."""

    ephemeral: list[dict[str, Any]] = field(default_factory=list)
    account_data: list[dict[str, Any]] = field(default_factory=list)
    # The room's count fields for /sync (``push_counts.RoomCounts.sync_fields``).
    unread: dict[str, Any] = field(default_factory=dict)

    def empty(self) -> bool:
        return not (self.ephemeral or self.account_data)


class SyncSource(Protocol):
    """A capability that adds to /sync (receipts, typing, presence, account data, e2ee,
    push rules)."""

    def room_extras(self, window: SyncWindow, room: JoinedRoom) -> RoomExtras | None:
        """What this source adds to one joined room's entry (None: nothing)."""
        ...

    def touched(self, window: SyncWindow) -> AbstractSet[str] | None:
        """On an incremental sync, every room ``room_extras`` may add something to
        (more is harmless, fewer loses data); None: cannot tell, ask every room."""
        ...

    def top_extras(self, window: SyncWindow) -> dict[str, Any]:
        """Top-level keys to merge into the response (lists are concatenated)."""
        ...


class NothingPerRoom:
    """For a source that adds only top-level keys."""

    def room_extras(self, window: SyncWindow, room: JoinedRoom) -> RoomExtras | None:
        return None

    def touched(self, window: SyncWindow) -> AbstractSet[str] | None:
        return frozenset()


class NothingOnTop:
    """For a source that adds only to rooms."""

    def top_extras(self, window: SyncWindow) -> dict[str, Any]:
        return {}


# Adds to ``unsigned`` of events the given user is about to receive (/sync, /messages,
# /event): the per-message unread number.
EventDecorator = Callable[[str, list[dict[str, Any]]], None]


def no_decoration(user_id: str, events: list[dict[str, Any]]) -> None:
    """An EventDecorator that adds nothing."""


def chain(*decorators: EventDecorator) -> EventDecorator:
    """One EventDecorator that runs ``decorators`` in order."""

    def decorate(user_id: str, events: list[dict[str, Any]]) -> None:
        for each in decorators:
            each(user_id, events)

    return decorate


class EphemeralCounter:
    """A worker-local counter for in-memory data (typing), carried in sync tokens."""

    def __init__(self) -> None:
        self.value = 0

    def bump(self) -> int:
        self.value += 1
        return self.value
