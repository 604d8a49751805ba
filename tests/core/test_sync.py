"""Unit tests for the /sync response shape (outlast.core.sync)."""

from __future__ import annotations

from typing import Any

import pytest

from outlast.core.sync import (
    NARROW_MAX_POSITIONS,
    RoomSlice,
    Window,
    assemble,
    invite_state,
    is_empty,
    moved_windows,
    room_body,
    senders_members,
    state_delta,
    worth_narrowing,
)

ALICE = "@alice:example.test"
BOB = "@bob:example.test"
ROOM = "!room:example.test"


def ev(
    etype: str,
    content: dict[str, Any] | None = None,
    state_key: str | None = None,
    sender: str = ALICE,
    event_id: str | None = None,
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": etype,
        "sender": sender,
        "content": content or {},
        "room_id": ROOM,
        "event_id": event_id or f"${etype}/{state_key}",
        "origin_server_ts": 1,
    }
    if state_key is not None:
        event["state_key"] = state_key
    return event


def message(n: int) -> dict[str, Any]:
    return ev("m.room.message", {"body": str(n)}, event_id=f"$msg{n}")


# --- room_body --------------------------------------------------------------


def test_joined_room_body_shape() -> None:
    body = room_body(
        RoomSlice(ROOM, "join", timeline=[message(1)], limited=True, prev_batch="t1_0")
    )
    assert body == {
        "timeline": {"events": [message(1)], "limited": True, "prev_batch": "t1_0"},
        "state": {"events": []},
        "account_data": {"events": []},
        "ephemeral": {"events": []},
        "unread_notifications": {"notification_count": 0, "highlight_count": 0},
        "summary": {},
    }


def test_joined_room_keeps_given_unread_counts() -> None:
    unread = {"notification_count": 3, "highlight_count": 1}
    body = room_body(RoomSlice(ROOM, "join", unread={"unread_notifications": unread}))
    assert body["unread_notifications"] == unread
    assert "unread_thread_notifications" not in body


def test_joined_room_carries_thread_counts_when_given() -> None:
    threads = {"$root": {"notification_count": 2, "highlight_count": 0}}
    fields = {"unread_notifications": {"notification_count": 1, "highlight_count": 1}}
    body = room_body(
        RoomSlice(ROOM, "join", unread={**fields, "unread_thread_notifications": threads})
    )
    assert body["unread_thread_notifications"] == threads


def test_timeline_without_prev_batch_omits_it() -> None:
    assert "prev_batch" not in room_body(RoomSlice(ROOM, "join"))["timeline"]


def test_left_room_body_has_no_join_only_sections() -> None:
    leave = ev("m.room.member", {"membership": "leave"}, ALICE)
    body = room_body(RoomSlice(ROOM, "leave", timeline=[leave]))
    assert set(body) == {"timeline", "state", "account_data"}
    assert body["timeline"]["events"] == [leave]


def test_invited_room_body_is_only_invite_state() -> None:
    stripped_invite = {"type": "m.room.member", "state_key": BOB, "content": {}, "sender": ALICE}
    body = room_body(RoomSlice(ROOM, "invite", invite_state=[stripped_invite]))
    assert body == {"invite_state": {"events": [stripped_invite]}}


def test_knocked_room_body_is_only_knock_state() -> None:
    knock = {"type": "m.room.member", "state_key": BOB, "content": {}, "sender": BOB}
    body = room_body(RoomSlice(ROOM, "knock", invite_state=[knock]))
    assert body == {"knock_state": {"events": [knock]}}


# --- assemble / is_empty ----------------------------------------------------


def test_assemble_files_rooms_under_their_sections() -> None:
    response = assemble(
        "s1_2",
        [
            RoomSlice("!j:x", "join"),
            RoomSlice("!i:x", "invite"),
            RoomSlice("!k:x", "knock"),
            RoomSlice("!l:x", "leave"),
        ],
    )
    assert response["next_batch"] == "s1_2"
    assert {s: list(r) for s, r in response["rooms"].items()} == {
        "join": ["!j:x"],
        "invite": ["!i:x"],
        "knock": ["!k:x"],
        "leave": ["!l:x"],
    }
    for key in ("account_data", "presence", "to_device"):
        assert response[key] == {"events": []}
    assert response["device_lists"] == {"changed": [], "left": []}
    assert response["device_one_time_keys_count"] == {}


def test_assemble_merges_extra_keys() -> None:
    assert assemble("s0", [], extra={"org.example": 1})["org.example"] == 1


def test_nothing_is_empty() -> None:
    assert is_empty(assemble("s0", []))


@pytest.mark.parametrize(
    "response",
    [
        assemble("s0", [RoomSlice(ROOM, "join")]),
        assemble("s0", [RoomSlice(ROOM, "invite")]),
        assemble("s0", [RoomSlice(ROOM, "knock")]),
        assemble("s0", [RoomSlice(ROOM, "leave")]),
        assemble("s0", [], account_data=[{"type": "m.push_rules", "content": {}}]),
        assemble("s0", [], presence=[{"type": "m.presence", "content": {}}]),
        assemble("s0", [], to_device=[{"type": "m.x", "content": {}}]),
        assemble("s0", [], extra={"device_lists": {"changed": [BOB], "left": []}}),
        assemble("s0", [], extra={"device_lists": {"changed": [], "left": [BOB]}}),
    ],
)
def test_anything_is_not_empty(response: dict[str, Any]) -> None:
    assert not is_empty(response)


# --- invite_state -----------------------------------------------------------


def test_invite_state_holds_only_stripped_types_and_the_invite() -> None:
    state = [
        ev("m.room.create", {"room_version": "11"}, ""),
        ev("m.room.member", {"membership": "join"}, ALICE),
        ev("m.room.power_levels", {"users": {ALICE: 100}}, ""),
        ev("m.room.join_rules", {"join_rule": "invite"}, ""),
        ev("m.room.history_visibility", {"history_visibility": "shared"}, ""),
        ev("m.room.name", {"name": "Room"}, ""),
        ev("m.room.topic", {"topic": "T"}, ""),
        ev("m.room.name", {"name": "not the room name"}, "odd"),
        ev("m.room.encryption", {"algorithm": "m.megolm.v1.aes-sha2"}, ""),
    ]
    invite = ev("m.room.member", {"membership": "invite"}, BOB)
    out = invite_state(state, invite)
    assert [(e["type"], e["state_key"]) for e in out] == [
        ("m.room.create", ""),
        ("m.room.join_rules", ""),
        ("m.room.name", ""),
        ("m.room.topic", ""),
        ("m.room.encryption", ""),
        ("m.room.member", BOB),
    ]
    assert out[-1] == {
        "type": "m.room.member",
        "state_key": BOB,
        "content": {"membership": "invite"},
        "sender": ALICE,
    }
    for stripped in out:
        assert set(stripped) == {"type", "state_key", "content", "sender"}


# --- state_delta ------------------------------------------------------------


def test_state_delta_drops_state_the_timeline_carries() -> None:
    name = ev("m.room.name", {"name": "A"}, "")
    topic = ev("m.room.topic", {"topic": "T"}, "")
    assert state_delta([name, topic], [message(1), topic]) == [name]
    assert state_delta([name, topic], []) == [name, topic]
    assert state_delta([], [message(1)]) == []


# --- which rooms an incremental sync visits ------------------------------------


def test_moved_windows_keep_only_streams_that_moved_in_token_order() -> None:
    windows = moved_windows(("users", "rooms0", "rooms1", "rooms2"), (5, 7, 9, 3), (5, 8, 12, 3))
    assert windows == [Window("rooms0", 7, 8), Window("rooms1", 9, 12)]


def test_moved_windows_ignore_a_token_ahead_of_now() -> None:
    # A token from a site whose view was ahead: nothing is new here for that stream.
    assert moved_windows(("a", "b"), (10, 4), (8, 6)) == [Window("b", 4, 6)]


def test_no_moved_windows_when_nothing_moved() -> None:
    assert moved_windows(("a", "b"), (1, 2), (1, 2)) == []


def test_moved_windows_need_one_position_per_stream() -> None:
    with pytest.raises(ValueError):
        moved_windows(("a", "b"), (1,), (1, 2))


def test_short_windows_are_worth_narrowing() -> None:
    assert worth_narrowing([])
    assert worth_narrowing([Window("a", 0, 1), Window("b", 100, 150)])
    assert worth_narrowing([Window("a", 0, NARROW_MAX_POSITIONS)])


def test_long_windows_are_not_worth_narrowing() -> None:
    # Counted over every moved stream together.
    half = NARROW_MAX_POSITIONS // 2
    assert not worth_narrowing([Window("a", 0, half + 1), Window("b", 0, half)])
    assert not worth_narrowing([Window("a", 0, NARROW_MAX_POSITIONS + 1)])


def test_senders_members_names_each_sender_once() -> None:
    def member(user: str) -> dict[str, Any]:
        return {"type": "m.room.member", "state_key": user, "content": {"membership": "join"}}

    state = {("m.room.member", u): member(u) for u in ("@a:hs", "@b:hs", "@c:hs")}
    events = [{"sender": "@b:hs"}, {"sender": "@a:hs"}, {"sender": "@b:hs"}, {"sender": "@z:hs"}]
    assert senders_members(state, events) == [member("@b:hs"), member("@a:hs")]
    assert senders_members(state, []) == []
