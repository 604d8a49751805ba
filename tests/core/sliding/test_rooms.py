"""Room entries and the response: initial entries, deltas, invites and long-poll news."""

from __future__ import annotations

from typing import Any

from outlast.core.sliding.connection import RoomPlan
from outlast.core.sliding.lists import ListWindow
from outlast.core.sliding.request import RoomConfig, parse_required_state
from outlast.core.sliding.rooms import (
    RoomData,
    cut_timeline,
    is_empty,
    num_live,
    response,
    room_entry,
)

ME = "@me:hs"
CFG = RoomConfig(2, (parse_required_state([["m.room.member", "$LAZY"], ["m.room.name", ""]]),))


def member(user: str, membership: str = "join", ts: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "type": "m.room.member",
        "state_key": user,
        "sender": user,
        "origin_server_ts": ts,
        "content": {"membership": membership, **extra},
    }


STATE: dict[tuple[str, str], Any] = {
    ("m.room.member", ME): member(ME, ts=1),
    ("m.room.member", "@bob:hs"): member("@bob:hs", ts=2, displayname="Bob"),
}
MSG = {"type": "m.room.message", "sender": "@bob:hs", "event_id": "$m", "content": {"body": "hi"}}


def test_cut_timeline_and_num_live() -> None:
    events = [{"n": i} for i in range(5)]
    assert cut_timeline(events, 2, more_before=False) == ([{"n": 3}, {"n": 4}], True)
    assert cut_timeline(events, 9, more_before=False) == (events, False)
    assert cut_timeline(events, 9, more_before=True) == (events, True)
    assert cut_timeline(events, 0, more_before=False) == ([], True)
    assert num_live([5, 7, 9], 6) == 2 and num_live([5], None) == 0


def test_initial_entry_of_an_unnamed_room() -> None:
    plan = RoomPlan("!r:hs", CFG, ("all",), initial=True)
    data = RoomData(
        "join", STATE, [MSG], limited=True, prev_batch="t1_0", bump_stamp=99, is_dm=True
    )
    entry = room_entry(plan, data, ME)
    assert entry["initial"] is True and entry["lists"] == ["all"]
    assert "name" not in entry and "avatar" not in entry
    assert entry["heroes"] == [{"user_id": "@bob:hs", "displayname": "Bob"}]
    assert (entry["joined_count"], entry["invited_count"]) == (2, 0)
    assert [e["state_key"] for e in entry["required_state"]] == ["@bob:hs"]  # lazy
    assert entry["timeline"] == [MSG] and entry["limited"] is True
    assert entry["prev_batch"] == "t1_0" and entry["bump_stamp"] == 99 and entry["is_dm"] is True
    assert entry["num_live"] == 0 and entry["notification_count"] == 0


def test_delta_carries_only_changes_and_null_for_a_removed_name() -> None:
    plan = RoomPlan("!r:hs", CFG, (), initial=False, previous=CFG)
    quiet = room_entry(plan, RoomData("join", STATE, [MSG], num_live=1), ME)
    assert "initial" not in quiet and "joined_count" not in quiet and "heroes" not in quiet
    assert "name" not in quiet and "limited" not in quiet and quiet["num_live"] == 1
    renamed = room_entry(plan, RoomData("join", STATE, changed_state={("m.room.name", "")}), ME)
    assert renamed["name"] is None  # removed, not unchanged
    assert renamed["heroes"][0]["user_id"] == "@bob:hs"
    joined = dict(STATE) | {("m.room.member", "@eve:hs"): member("@eve:hs", ts=3)}
    grown = room_entry(
        plan, RoomData("join", joined, changed_state={("m.room.member", "@eve:hs")}), ME
    )
    assert grown["joined_count"] == 3


def test_named_room_has_no_heroes() -> None:
    named = dict(STATE) | {("m.room.name", ""): {"type": "m.room.name", "content": {"name": "Ops"}}}
    entry = room_entry(RoomPlan("!r:hs", CFG, (), initial=True), RoomData("join", named), ME)
    assert entry["name"] == "Ops" and "heroes" not in entry


def test_invite_entry_shows_only_stripped_state() -> None:
    stripped = [{"type": "m.room.name", "state_key": "", "sender": "@bob:hs", "content": {}}]
    plan = RoomPlan("!r:hs", CFG, ("all",), initial=True)
    entry = room_entry(plan, RoomData("invite", STATE, [MSG], invite_state=stripped), ME)
    assert entry == {
        "membership": "invite",
        "initial": True,
        "lists": ["all"],
        "invite_state": stripped,
    }


def test_response_and_emptiness() -> None:
    window = ListWindow(3, (((0, 1), ("!a:hs", "!b:hs")),))
    quiet = {"!a:hs": {"membership": "join", "num_live": 0, "bump_stamp": 5}}
    body = response("c0-s1", {"all": window}, quiet, {}, txn_id="t")
    assert body["lists"]["all"]["count"] == 3 and body["txn_id"] == "t"
    assert is_empty(body)
    assert not is_empty(response("p", {}, {"!a:hs": {"initial": True}}, {}))
    assert not is_empty(response("p", {}, {"!a:hs": {"limited": True, "num_live": 0}}, {}))
    assert is_empty(response("p", {}, {}, {"e2ee": {"device_one_time_keys_count": {"x": 1}}}))
    assert not is_empty(response("p", {}, {}, {"e2ee": {"device_lists": {"changed": [ME]}}}))
    assert not is_empty(response("p", {}, {}, {"to_device": {"events": [{}], "next_batch": "1"}}))
    assert not is_empty(response("p", {}, {}, {"typing": {"rooms": {"!a:hs": {}}}}))
