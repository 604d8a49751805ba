"""Current room state kept decoded in memory, invalidated by the projector.

Every send checks the room's rules against its current state; loading and
decoding every state event from SQLite per send was the largest cost on the
write path. The projector drops a room's entry whenever it applies a state
event or a redaction in that room, so a cached state is never older than the
view.
"""

from __future__ import annotations

import sqlite3
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from outlast.view import queries
from outlast.view.queries import StateMap

MAX_ROOMS = 4096


class StateCache:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._rooms: OrderedDict[str, StateMap] = OrderedDict()
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
                self._rooms.popitem(last=False)
        return state

    def invalidate(self, room_ids: Iterable[str]) -> None:
        for room_id in room_ids:
            self._rooms.pop(room_id, None)


def rooms_changing_state(data: dict[str, Any]) -> set[str]:
    """Rooms whose state a log message may change: state events and redactions."""
    if data.get("op") != "events":
        return set()
    return {
        str(e.get("room_id"))
        for e in data.get("events", [])
        if "state_key" in e or e.get("type") == "m.room.redaction"
    }
