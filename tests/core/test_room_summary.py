"""Room names, avatars, counts and heroes from state."""

from __future__ import annotations

from typing import Any

from outlast.core.room_summary import (
    counts,
    hero_ids,
    heroes,
    room_avatar,
    room_name,
    sync_summary,
)

ME = "@me:hs"


def member(user: str, membership: str, ts: int, **extra: Any) -> dict[str, Any]:
    content = {"membership": membership, **extra}
    return {"type": "m.room.member", "state_key": user, "origin_server_ts": ts, "content": content}


def state(*events: dict[str, Any]) -> dict[tuple[str, str], Any]:
    return {(e["type"], e["state_key"]): e for e in events}


def test_name_and_avatar_need_non_empty_strings() -> None:
    assert (
        room_name(state({"type": "m.room.name", "state_key": "", "content": {"name": ""}})) is None
    )
    assert (
        room_name(state({"type": "m.room.name", "state_key": "", "content": {"name": 5}})) is None
    )
    named = state({"type": "m.room.name", "state_key": "", "content": {"name": "Ops"}})
    assert room_name(named) == "Ops"
    avatar = state({"type": "m.room.avatar", "state_key": "", "content": {"url": "mxc://hs/a"}})
    assert room_avatar(avatar) == "mxc://hs/a" and room_avatar({}) is None


def test_heroes_are_current_members_in_join_order_without_me() -> None:
    s = state(
        member(ME, "join", 1),
        *(member(f"@u{i}:hs", "join", 10 - i) for i in range(6)),
        member("@inv:hs", "invite", 20, displayname="Inv", avatar_url="mxc://hs/i"),
        member("@gone:hs", "leave", 0),
    )
    assert hero_ids(s, ME) == ["@u5:hs", "@u4:hs", "@u3:hs", "@u2:hs", "@u1:hs"]
    assert counts(s) == (7, 1)
    assert heroes(s, ME, limit=7)[-1] == {
        "user_id": "@inv:hs",
        "displayname": "Inv",
        "avatar_url": "mxc://hs/i",
    }


def test_heroes_fall_back_to_former_members() -> None:
    s = state(member(ME, "join", 1), member("@gone:hs", "leave", 2), member("@b:hs", "ban", 3))
    assert hero_ids(s, ME) == ["@gone:hs", "@b:hs"]


def test_sync_summary() -> None:
    s = state(member(ME, "join", 1), member("@bob:hs", "invite", 2))
    assert sync_summary(s, ME) == {
        "m.joined_member_count": 1,
        "m.invited_member_count": 1,
        "m.heroes": ["@bob:hs"],
    }
    aliased = dict(s) | state(
        {"type": "m.room.canonical_alias", "state_key": "", "content": {"alias": "#a:hs"}}
    )
    assert "m.heroes" not in sync_summary(aliased, ME)
