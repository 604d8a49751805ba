"""Restricted joins: who vouches for a user joining a ``restricted`` room.

A room whose join rule is ``restricted`` (room version 8+) or
``knock_restricted`` (10+) admits, beyond invitees, anyone joined to a room
its ``allow`` list names (``{"type": "m.room_membership", "room_id": ...}``).
The auth rules (step 4.3.5) ask that such a join name, in
``join_authorised_via_users_server``, a member of the room who may invite;
the resident server fills it in. Outlast is the only server of its rooms, so
every member is resident: it picks the member with the highest power level
(then the lowest user ID, so every site picks the same one).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Final

from outlast.core import auth, room_versions

MEMBERSHIP_CONDITION: Final = "m.room_membership"


def allowed_rooms(state: auth.State) -> list[str]:
    """The rooms whose members may join, from ``m.room.join_rules`` ``allow``."""
    content = (state.get((auth.JOIN_RULES, "")) or {}).get("content")
    allow = content.get("allow") if isinstance(content, Mapping) else None
    if not isinstance(allow, list):
        return []
    return [
        entry["room_id"]
        for entry in allow
        if isinstance(entry, Mapping)
        and entry.get("type") == MEMBERSHIP_CONDITION
        and isinstance(entry.get("room_id"), str)
    ]


def _restricted(state: auth.State) -> bool:
    rule = auth.join_rule(state)
    if rule == "knock_restricted":
        return rule in room_versions.knock_join_rules(room_versions.raw_version(state))
    return rule == "restricted"


def authoriser(state: auth.State, user_id: str, joined: Collection[str]) -> str | None:
    """Who authorises ``user_id``'s join, or None when the join needs no one (or no one
    can vouch: then the auth rules refuse it). ``joined`` is the rooms the user is in."""
    if not _restricted(state) or auth.membership(state, user_id) in ("invite", "join"):
        return None
    if not set(allowed_rooms(state)) & set(joined):
        return None
    levels = auth.power_levels(state)
    members: list[tuple[int, str]] = [
        (-levels.user_level(member), member)
        for (kind, member), event in state.items()
        if kind == auth.MEMBER and _membership(event) == "join"
    ]
    fit = sorted(m for m in members if -m[0] >= levels.invite)
    return fit[0][1] if fit else None


def _membership(event: Mapping[str, Any]) -> Any:
    content = event.get("content")
    return content.get("membership") if isinstance(content, Mapping) else None
