"""Typing notifications: ephemeral, in memory, shared between workers over plain NATS.

A typing notice is never written to a stream. The worker that accepts
``PUT /typing`` applies it at once and publishes it on the room's typing
subject; every worker subscribes to all typing subjects and applies what the
others publish (its own echo is recognised by an origin id and skipped). So
each worker holds the typing state of every room, each with an expiry.

Each change bumps the worker's ephemeral counter (carried in sync tokens) and
records it per room; /sync sends a room's ``m.typing`` when that room changed
after the token's counter, and on an initial sync when anyone is typing.
Expiry is checked lazily when /sync reads the state and by a sweeper task,
which also wakes the long-polls of a room whose typist timed out.

Known limit: a worker that starts (or reconnects) misses notices published
before; they are short-lived, so it converges within one timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Set as AbstractSet
from typing import Any

from outlast.accounts.service import Requester
from outlast.context import SiteContext
from outlast.core import ids
from outlast.core.errors import bad_json, forbidden
from outlast.log.client import Subscription
from outlast.sync.window import (
    EphemeralCounter,
    JoinedRoom,
    NothingOnTop,
    RoomExtras,
    SyncWindow,
)
from outlast.view import queries

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_MS = 30_000
MAX_TIMEOUT_MS = 120_000
SWEEP_SECONDS = 0.25


class Typing(NothingOnTop):
    def __init__(self, ctx: SiteContext, counter: EphemeralCounter) -> None:
        self.ctx = ctx
        self.counter = counter
        self.clock = ctx.clock
        self.origin = uuid.uuid4().hex
        self._typing: dict[str, dict[str, float]] = {}  # room -> user -> expiry (clock)
        # room -> ephemeral counter at its last change, oldest change first
        self._changed: dict[str, int] = {}
        self._sub: Subscription | None = None
        self._sweeper: asyncio.Task[None] | None = None

    # --- the endpoint ----------------------------------------------------------

    async def set_typing(
        self, who: Requester, room_id: str, user_id: str, body: dict[str, Any]
    ) -> None:
        """PUT /rooms/{roomId}/typing/{userId}: only for yourself, only in a room you joined."""
        if user_id != who.user_id:
            raise forbidden("you can only set your own typing state")
        typing = body.get("typing")
        if not isinstance(typing, bool):
            raise bad_json("typing must be true or false")
        timeout = body.get("timeout", DEFAULT_TIMEOUT_MS)
        if typing and (not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 0):
            raise bad_json("timeout must be a non-negative integer (milliseconds)")
        if queries.membership(self.ctx.conn, room_id, who.user_id) != "join":
            raise forbidden("you are not joined to this room")
        timeout_ms = min(int(timeout), MAX_TIMEOUT_MS) if typing else 0
        self._apply(room_id, who.user_id, typing, timeout_ms)
        notice = {
            "origin": self.origin,
            "room_id": room_id,
            "user_id": who.user_id,
            "typing": typing,
            "timeout": timeout_ms,
        }
        try:
            await self.ctx.log.publish_notice(self.ctx.names.typing_subject(room_id), notice)
        except Exception:  # typing is best effort; this worker already knows
            log.warning("could not publish a typing notice", exc_info=True)

    # --- state -------------------------------------------------------------------

    def _apply(self, room_id: str, user_id: str, typing: bool, timeout_ms: int) -> None:
        room = self._typing.setdefault(room_id, {})
        # An entry that expired but was not swept yet is still what clients were
        # last told, so removing it is a change and renewing it is not.
        was_typing = user_id in room
        if typing:
            room[user_id] = self.clock.monotonic() + timeout_ms / 1000
        else:
            room.pop(user_id, None)
        if not room:
            self._typing.pop(room_id, None)
        if typing != was_typing:
            self._changed_now(room_id)

    def _changed_now(self, room_id: str) -> None:
        self._changed.pop(room_id, None)  # re-inserted last: the dict stays in counter order
        self._changed[room_id] = self.counter.bump()
        self.ctx.notifier.notify(queries.joined_members(self.ctx.conn, room_id))

    def typing_in(self, room_id: str) -> list[str]:
        """Who is typing in a room now (expired entries are ignored even before the sweep)."""
        now = self.clock.monotonic()
        return sorted(u for u, expiry in self._typing.get(room_id, {}).items() if expiry > now)

    def sweep(self) -> None:
        """Drop expired entries; rooms that lost a typist count as changed."""
        now = self.clock.monotonic()
        for room_id in list(self._typing):
            room = self._typing[room_id]
            expired = [u for u, expiry in room.items() if expiry <= now]
            for user_id in expired:
                del room[user_id]
            if not room:
                del self._typing[room_id]
            if expired:
                self._changed_now(room_id)

    # --- /sync -----------------------------------------------------------------

    def room_extras(self, window: SyncWindow, room: JoinedRoom) -> RoomExtras | None:
        typing = self.typing_in(room.room_id)
        changed = self._changed.get(room.room_id, 0)
        since, now = window.since, window.now
        send = bool(typing) if since is None else since.ephemeral < changed <= now.ephemeral
        if not send:
            return None
        return RoomExtras(ephemeral=[{"type": "m.typing", "content": {"user_ids": typing}}])

    def touched(self, window: SyncWindow) -> AbstractSet[str] | None:
        """Rooms whose typing changed in the window: read from the newest change
        back, so the cost is the number of changes, not of rooms ever typed in."""
        if window.since is None:
            return None
        since, now = window.since.ephemeral, window.now.ephemeral
        rooms: set[str] = set()
        for room_id, changed in reversed(self._changed.items()):
            if changed <= since:
                break
            if changed <= now:
                rooms.add(room_id)
        return rooms

    # --- sharing between workers ----------------------------------------------------

    async def start(self) -> None:
        self._sub = await self.ctx.log.subscribe_notices(
            self.ctx.names.typing_wildcard, self._received
        )
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="typing-sweeper")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None

    async def _received(self, notice: Any) -> None:
        if not isinstance(notice, dict) or notice.get("origin") == self.origin:
            return
        room_id, user_id = notice.get("room_id"), notice.get("user_id")
        typing, timeout = notice.get("typing"), notice.get("timeout", 0)
        if not (isinstance(room_id, str) and ids.is_room_id(room_id) and ids.is_user_id(user_id)):
            return
        if not isinstance(typing, bool) or not isinstance(timeout, int):
            return
        self._apply(room_id, str(user_id), typing, max(0, min(timeout, MAX_TIMEOUT_MS)))

    async def _sweep_forever(self) -> None:
        while True:
            await self.clock.sleep(SWEEP_SECONDS)
            try:
                self.sweep()
            except Exception:  # keep sweeping; one bad pass is not fatal
                log.exception("typing sweep failed")
