"""Current room state kept decoded in memory, invalidated by the projector.

Every send checks the room's rules against its current state, and the
projector checks every message again when it applies it; loading and
decoding every state event from SQLite each time was the largest cost on the
write path. The projector drops a room's entry whenever it applies a state
event or a redaction in that room, so a cached state is never older than the
view.
"""

from __future__ import annotations

import sqlite3
from collections import OrderedDict
from collections.abc import Iterable

from outlast.view import queries
from outlast.view.queries import StateMap

MAX_ROOMS = 4096

# Members whose /sync can show a room's new events: the projector wakes them.
AUDIENCE = frozenset({"join", "invite"})


def audience_of(state: StateMap) -> frozenset[str]:
    return frozenset(
        key
        for (event_type, key), event in state.items()
        if event_type == "m.room.member" and event.get("content", {}).get("membership") in AUDIENCE
    )


class StateCache:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._rooms: OrderedDict[str, StateMap] = OrderedDict()
        self._audiences: dict[str, frozenset[str]] = {}
        self.hits = 0
        self.misses = 0

    def get(self, room_id: str) -> StateMap:
        """The room's current state. Callers must not mutate it."""
        state = self._rooms.get(room_id)
        if state is not None:
            self._rooms.move_to_end(room_id)
            self.hits += 1
            return state
        self.misses += 1
        state = queries.current_state(self.conn, room_id)
        if state:
            self._rooms[room_id] = state
            if len(self._rooms) > MAX_ROOMS:
                evicted, _ = self._rooms.popitem(last=False)
                self._audiences.pop(evicted, None)
        return state

    def audience(self, room_id: str) -> frozenset[str]:
        """Joined and invited users of the room (derived from the cached state)."""
        found = self._audiences.get(room_id)
        if found is None or room_id not in self._rooms:
            found = audience_of(self.get(room_id))
            if room_id in self._rooms:
                self._audiences[room_id] = found
        return found

    def clear(self) -> None:
        self._rooms.clear()
        self._audiences.clear()

    def invalidate(self, room_ids: Iterable[str]) -> None:
        for room_id in room_ids:
            self._rooms.pop(room_id, None)
            self._audiences.pop(room_id, None)


class BatchStates:
    """Room state as of the projector's current position inside its transaction.

    Rooms the batch has not changed are read through the cache (their committed
    state is still current); a room the batch has changed is read from the open
    transaction, memoised until the batch changes it again.
    """

    def __init__(self, conn: sqlite3.Connection, cache: StateCache | None) -> None:
        self.conn = conn
        self.cache = cache
        self.touched: set[str] = set()
        self._live: dict[str, StateMap] = {}

    def state(self, room_id: str) -> StateMap:
        if self.cache is not None and room_id not in self.touched:
            return self.cache.get(room_id)
        state = self._live.get(room_id)
        if state is None:
            state = self._live[room_id] = queries.current_state(self.conn, room_id)
        return state

    def audience(self, room_id: str) -> frozenset[str]:
        if self.cache is not None and room_id not in self.touched:
            return self.cache.audience(room_id)
        return audience_of(self.state(room_id))

    def changed(self, room_id: str) -> None:
        self.touched.add(room_id)
        self._live.pop(room_id, None)
