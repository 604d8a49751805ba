"""Whose presence an incremental /sync must send although it did not change.

A presence change reaches the users sharing a room at the time. Someone who
comes to share a room later has not seen it: a new joiner needs the presence
of the members already there, and those members need the joiner's (as Synapse
sends them). Given the joins a sync window holds, in the rooms the syncing user
is joined to, this names both.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class NewlyMet:
    """``rooms``: joined by the user in the window (all their members are new to them);
    ``joiners``: others who joined one of the user's rooms in the window."""

    rooms: frozenset[str]
    joiners: frozenset[str]


def newly_met(user_id: str, joins: Iterable[tuple[str, str]]) -> NewlyMet:
    """Split ``(room_id, joiner)`` pairs into the user's own joins and everyone else's."""
    rooms: set[str] = set()
    joiners: set[str] = set()
    for room_id, joiner in joins:
        if joiner == user_id:
            rooms.add(room_id)
        else:
            joiners.add(joiner)
    return NewlyMet(frozenset(rooms), frozenset(joiners))
