"""required_state selection: initial, deltas, stubs, widened configs and lazy members."""

from __future__ import annotations

from typing import Any

from outlast.core.sliding.request import RoomConfig, parse_required_state
from outlast.core.sliding.state import expands, lazy_member_ids, select_state

ME = "@me:hs"


def ev(etype: str, key: str, sender: str = ME, **content: Any) -> dict[str, Any]:
    return {"type": etype, "state_key": key, "sender": sender, "content": content}


STATE = {
    ("m.room.create", ""): ev("m.room.create", "", room_version="11"),
    ("m.room.name", ""): ev("m.room.name", "", name="Lobby"),
    ("m.room.topic", ""): ev("m.room.topic", "", topic="hi"),
    ("m.room.member", ME): ev("m.room.member", ME, membership="join"),
    ("m.room.member", "@bob:hs"): ev("m.room.member", "@bob:hs", "@bob:hs", membership="join"),
    ("m.room.member", "@carol:hs"): ev(
        "m.room.member", "@carol:hs", "@carol:hs", membership="join"
    ),
}


def config(required: Any, limit: int = 5) -> RoomConfig:
    return RoomConfig(limit, (parse_required_state(required),))


def types(events: list[Any]) -> list[tuple[str, str]]:
    return sorted((e["type"], e["state_key"]) for e in events)


def test_initial_sends_everything_wanted() -> None:
    chosen = select_state(
        config([["m.room.name", ""], ["m.room.member", "$ME"]]), STATE, ME, initial=True
    )
    assert types(chosen) == [("m.room.member", ME), ("m.room.name", "")]
    everything = select_state(config([["*", "*"]]), STATE, ME, initial=True)
    assert len(everything) == len(STATE)


def test_delta_sends_changed_state_and_stubs() -> None:
    cfg = config([["m.room.name", ""], ["m.room.topic", ""], ["m.room.avatar", ""]])
    chosen = select_state(
        cfg,
        STATE,
        ME,
        initial=False,
        previous=cfg,
        changed={("m.room.name", ""), ("m.room.avatar", ""), ("m.room.member", "@bob:hs")},
    )
    assert chosen[0]["content"] == {"name": "Lobby"}
    assert {"type": "m.room.avatar", "state_key": ""} in chosen  # removed: a stub
    assert len(chosen) == 2  # bob's change is not wanted by this config


def test_widened_config_adds_newly_wanted_state() -> None:
    old = config([["m.room.name", ""]])
    new = config([["m.room.name", ""], ["m.room.topic", ""]])
    chosen = select_state(new, STATE, ME, initial=False, previous=old)
    assert types(chosen) == [("m.room.topic", "")]
    assert expands(new, old, STATE, ME) and not expands(old, new, STATE, ME)
    assert not expands(new, new, STATE, ME)


def test_lazy_members_for_senders_and_targets() -> None:
    timeline = [
        {"type": "m.room.message", "sender": "@bob:hs", "content": {}},
        {"type": "m.room.member", "state_key": "@carol:hs", "sender": ME, "content": {}},
    ]
    assert lazy_member_ids(timeline) == ["@bob:hs", ME, "@carol:hs"]
    cfg = config([["m.room.member", "$LAZY"], ["m.room.name", ""]])
    chosen = select_state(cfg, STATE, ME, initial=True, timeline=timeline, members_sent={ME})
    assert types(chosen) == [
        ("m.room.member", "@bob:hs"),
        ("m.room.member", "@carol:hs"),
        ("m.room.name", ""),
    ]


def test_lazy_members_on_a_gapless_delta_carry_every_membership_change() -> None:
    cfg = config([["m.room.member", "$LAZY"]])
    changed = {("m.room.member", "@carol:hs")}
    gapless = select_state(
        cfg, STATE, ME, initial=False, previous=cfg, changed=changed, limited=False
    )
    assert types(gapless) == [("m.room.member", "@carol:hs")]
    gappy = select_state(cfg, STATE, ME, initial=False, previous=cfg, changed=changed, limited=True)
    assert gappy == []


def test_exclude_in_the_msc_dialect() -> None:
    cfg = RoomConfig(
        1, (parse_required_state({"include": [{}], "exclude": [{"type": "m.room.member"}]}),)
    )
    chosen = select_state(cfg, STATE, ME, initial=True)
    assert types(chosen) == [("m.room.create", ""), ("m.room.name", ""), ("m.room.topic", "")]
