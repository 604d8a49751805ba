"""Seams through which features add to /sync and to rendered events.

A feature (``outlast/service/<feature>.py``) has an ``install(services)``
function, listed in ``outlast/features.py``. There it may register:

- a :class:`SyncExtension`, asked for per-room extras (ephemeral events, room
  account data, unread counts) and top-level extras (account data, presence,
  to-device messages, device lists, one-time-key counts) on every /sync;
- an event decorator, which adds to ``unsigned`` of events returned by /sync,
  /messages and /event (e.g. the per-message unread count);
- start/stop hooks for background tasks (e.g. a typing subscription);
- its service object in ``services.features[name]`` for its HTTP handlers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from outlast.core.tokens import SyncToken


@dataclass
class RoomExtras:
    ephemeral: list[dict[str, Any]] = field(default_factory=list)
    account_data: list[dict[str, Any]] = field(default_factory=list)
    unread: dict[str, int] = field(default_factory=dict)

    def empty(self) -> bool:
        return not (self.ephemeral or self.account_data)


class SyncExtension(Protocol):
    def room_extras(
        self,
        user_id: str,
        device_id: str,
        room_id: str,
        stream: str,
        since: SyncToken | None,
        now: SyncToken,
    ) -> RoomExtras | None:
        """What this feature adds to one joined room's entry (None: nothing)."""
        ...

    def top_extras(
        self, user_id: str, device_id: str, since: SyncToken | None, now: SyncToken
    ) -> dict[str, Any]:
        """Top-level keys to merge into the response (lists are concatenated)."""
        ...


class SyncExtensionBase:
    """Adds nothing; a feature overrides only the half of /sync it contributes to."""

    def room_extras(
        self,
        user_id: str,
        device_id: str,
        room_id: str,
        stream: str,
        since: SyncToken | None,
        now: SyncToken,
    ) -> RoomExtras | None:
        return None

    def top_extras(
        self, user_id: str, device_id: str, since: SyncToken | None, now: SyncToken
    ) -> dict[str, Any]:
        return {}


# Adds to ``unsigned`` of events the given user is about to receive.
EventDecorator = Callable[[str, list[dict[str, Any]]], None]
Hook = Callable[[], Awaitable[None]]


@dataclass
class Extensions:
    sync: list[SyncExtension] = field(default_factory=list)
    decorators: list[EventDecorator] = field(default_factory=list)
    on_start: list[Hook] = field(default_factory=list)
    on_stop: list[Hook] = field(default_factory=list)
    ephemeral_serial: int = 0

    def bump_ephemeral(self) -> int:
        """A worker-local counter for in-memory data (typing), carried in sync tokens."""
        self.ephemeral_serial += 1
        return self.ephemeral_serial

    def decorate(self, user_id: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for decorator in self.decorators:
            decorator(user_id, events)
        return events
