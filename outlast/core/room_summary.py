"""A room's name, avatar, member counts and "heroes", read from its current state.

Both ``/sync`` (``summary``) and sliding sync (``name``, ``avatar``,
``heroes``, ``joined_count``, ``invited_count``) describe a room this way so
that a client can title it without loading every member. Heroes follow the
``/sync`` RoomSummary rule: up to five joined or invited members other than
the requesting user, in the order they got that membership; only when there
are none, members who left or were banned.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

StateMap = Mapping[tuple[str, str], Mapping[str, Any]]

MAX_HEROES: Final = 5
MEMBER: Final = "m.room.member"


def _content(event: Mapping[str, Any] | None) -> Mapping[str, Any]:
    content = None if event is None else event.get("content")
    return content if isinstance(content, Mapping) else {}


def room_name(state: StateMap) -> str | None:
    """``m.room.name``'s ``name`` when it is a non-empty string (else the room has none)."""
    name = _content(state.get(("m.room.name", ""))).get("name")
    return name if isinstance(name, str) and name else None


def room_avatar(state: StateMap) -> str | None:
    url = _content(state.get(("m.room.avatar", ""))).get("url")
    return url if isinstance(url, str) and url else None


def canonical_alias(state: StateMap) -> str | None:
    alias = _content(state.get(("m.room.canonical_alias", ""))).get("alias")
    return alias if isinstance(alias, str) and alias else None


def members(state: StateMap) -> list[tuple[str, str, Mapping[str, Any]]]:
    """(user ID, membership, member event) for every member event, in the order they happened."""
    rows = []
    for (etype, user_id), event in state.items():
        membership = _content(event).get("membership")
        if etype == MEMBER and isinstance(membership, str):
            rows.append((user_id, membership, event))
    ts = "origin_server_ts"
    rows.sort(key=lambda r: (r[2].get(ts) if isinstance(r[2].get(ts), int) else 0, r[0]))
    return rows


def counts(state: StateMap) -> tuple[int, int]:
    """(joined, invited) member counts."""
    joined = invited = 0
    for _, membership, _ in members(state):
        joined += membership == "join"
        invited += membership == "invite"
    return joined, invited


def hero_ids(state: StateMap, user_id: str, limit: int = MAX_HEROES) -> list[str]:
    rows = [r for r in members(state) if r[0] != user_id]
    current = [r[0] for r in rows if r[1] in ("join", "invite")]
    if current:
        return current[:limit]
    return [r[0] for r in rows if r[1] in ("leave", "ban")][:limit]


def heroes(state: StateMap, user_id: str, limit: int = MAX_HEROES) -> list[dict[str, str]]:
    """Sliding sync's StrippedHero objects: user ID, and display name and avatar if set."""
    out = []
    for hero in hero_ids(state, user_id, limit):
        content = _content(state.get((MEMBER, hero)))
        entry = {"user_id": hero}
        for key in ("displayname", "avatar_url"):
            value = content.get(key)
            if isinstance(value, str) and value:
                entry[key] = value
        out.append(entry)
    return out


def sync_summary(state: StateMap, user_id: str) -> dict[str, Any]:
    """``/sync``'s ``summary`` for a joined room."""
    joined, invited = counts(state)
    summary: dict[str, Any] = {
        "m.joined_member_count": joined,
        "m.invited_member_count": invited,
    }
    if room_name(state) is None and canonical_alias(state) is None:
        summary["m.heroes"] = hero_ids(state, user_id)
    return summary


def public_chunk(room_id: str, joined: int, contents: Mapping[str, Any]) -> dict[str, Any]:
    """A room as ``/publicRooms`` and ``/hierarchy`` list it (the spec's PublicRoomsChunk),
    from the contents of its state events keyed by type (state key "" only)."""

    def text(event_type: str, key: str) -> str | None:
        content = contents.get(event_type)
        value = content.get(key) if isinstance(content, Mapping) else None
        return value if isinstance(value, str) and value else None

    entry: dict[str, Any] = {
        "room_id": room_id,
        "num_joined_members": joined,
        "world_readable": text("m.room.history_visibility", "history_visibility")
        == "world_readable",
        "guest_can_join": text("m.room.guest_access", "guest_access") == "can_join",
        "join_rule": text("m.room.join_rules", "join_rule") or "invite",
    }
    for key, value in (
        ("name", text("m.room.name", "name")),
        ("topic", text("m.room.topic", "topic")),
        ("canonical_alias", text("m.room.canonical_alias", "alias")),
        ("avatar_url", text("m.room.avatar", "url")),
        ("room_type", text("m.room.create", "type")),
    ):
        if value is not None:
            entry[key] = value
    return entry
