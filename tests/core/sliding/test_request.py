"""Sliding sync request parsing: both dialects, limits and errors."""

from __future__ import annotations

from typing import Any

import pytest

from outlast.core.errors import MatrixError
from outlast.core.sliding.request import (
    MAX_TIMELINE_LIMIT,
    RequiredState,
    RoomConfig,
    StateMatcher,
    parse_request,
    parse_required_state,
)

ALICE = "@alice:hs"

# Close to what matrix-rust-sdk's room list service sends (tuple required_state).
RUST_SDK_BODY: dict[str, Any] = {
    "conn_id": "room-list",
    "lists": {
        "all_rooms": {
            "ranges": [[0, 19]],
            "timeline_limit": 1,
            "required_state": [
                ["m.room.encryption", ""],
                ["m.room.member", "$LAZY"],
                ["m.room.member", "$ME"],
                ["m.room.name", ""],
                ["m.room.power_levels", ""],
            ],
            "filters": {"not_room_types": ["m.space"]},
        }
    },
    "room_subscriptions": {
        "!open:hs": {"timeline_limit": 20, "required_state": [["*", "*"]]},
    },
    "extensions": {
        "to_device": {"enabled": True, "since": "12"},
        "e2ee": {"enabled": True},
        "account_data": {"enabled": True},
        "receipts": {"enabled": True, "rooms": ["*"]},
        "typing": {"enabled": True},
        "org.example.unknown": {"enabled": True},
    },
}


def test_rust_sdk_body() -> None:
    request = parse_request(RUST_SDK_BODY, {"pos": "c0-s1_2", "timeout": "30000"})
    assert request.conn_id == "room-list"
    assert request.pos == "c0-s1_2" and request.timeout_ms == 30000
    rooms = request.lists["all_rooms"]
    assert rooms.ranges == ((0, 19),)
    assert rooms.filters.not_room_types == ("m.space",)
    assert rooms.room.timeline_limit == 1 and rooms.room.lazy_members
    assert rooms.room.wants("m.room.member", ALICE, ALICE)  # $ME
    assert not rooms.room.wants("m.room.member", "@bob:hs", ALICE)  # lazy, not listed
    assert rooms.room.wants("m.room.name", "", ALICE)
    assert not rooms.room.wants("m.room.topic", "", ALICE)
    open_room = request.subscriptions["!open:hs"]
    assert open_room.wants("m.room.topic", "", ALICE) and not open_room.lazy_members
    assert set(request.extensions) == {"to_device", "e2ee", "account_data", "receipts", "typing"}
    to_device = request.extension("to_device")
    assert to_device is not None and to_device.since == "12"


def test_msc_body_dialect() -> None:
    body = {
        "pos": "c3-s9",
        "timeout": 1000,
        "lists": {
            "dms": {
                "range": [0, 9],
                "timeline_limit": 5,
                "required_state": {
                    "include": [{}],
                    "exclude": [{"type": "m.room.create", "state_key": ""}],
                    "lazy_members": True,
                },
                "filters": {"is_invited": False, "is_dm": True},
            }
        },
    }
    request = parse_request(body)
    assert request.pos == "c3-s9" and request.timeout_ms == 1000
    dms = request.lists["dms"]
    assert dms.ranges == ((0, 9),)
    assert dms.filters.is_invite is False and dms.filters.is_dm is True
    assert dms.room.wants("m.room.topic", "", ALICE)
    assert not dms.room.wants("m.room.create", "", ALICE)
    assert dms.room.lazy_members


def test_query_wins_over_body_and_defaults() -> None:
    request = parse_request({"pos": "body", "timeout": 5}, {"pos": "query"})
    assert request.pos == "query" and request.timeout_ms == 5
    empty = parse_request({})
    assert empty.pos is None and empty.timeout_ms == 0 and empty.set_presence == "online"
    assert not empty.lists and not empty.subscriptions and empty.extension("e2ee") is None


def test_absent_ranges_mean_whole_list_and_empty_means_none() -> None:
    whole = parse_request({"lists": {"a": {"timeline_limit": 1}}})
    assert whole.lists["a"].ranges is None
    none = parse_request({"lists": {"a": {"timeline_limit": 1, "ranges": []}}})
    assert none.lists["a"].ranges == ()


def test_wildcards_and_lazy_on_wildcard_type() -> None:
    required = parse_required_state([["*", ""], ["m.space.child", "*"], ["*", "$LAZY"]])
    assert required.lazy_members
    assert required.include == (StateMatcher(None, ""), StateMatcher("m.space.child", None))
    assert required.wants("m.room.name", "", ALICE)
    assert required.wants("m.space.child", "!x:hs", ALICE)
    assert not required.wants("m.room.member", "@bob:hs", ALICE)


def test_combined_config_takes_the_superset() -> None:
    a = RoomConfig(1, (RequiredState((StateMatcher("m.room.name", ""),)),))
    b = RoomConfig(10, (RequiredState((StateMatcher("m.room.topic", ""),), (), True),))
    both = a.combine(b)
    assert both.timeline_limit == 10 and both.lazy_members
    assert both.wants("m.room.name", "", ALICE) and both.wants("m.room.topic", "", ALICE)
    assert a.combine(a) == a


def test_timeline_limit_is_clamped() -> None:
    request = parse_request({"room_subscriptions": {"!r:hs": {"timeline_limit": 10**6}}})
    assert request.subscriptions["!r:hs"].timeline_limit == MAX_TIMELINE_LIMIT


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"lists": []},
        {"lists": {"a": {"timeline_limit": -1}}},
        {"lists": {"a": {"timeline_limit": True}}},
        {"lists": {"a": {"timeline_limit": 1, "ranges": [[5, 1]]}}},
        {"lists": {"a": {"timeline_limit": 1, "ranges": [[0]]}}},
        {"lists": {"a": {"timeline_limit": 1, "ranges": [[-1, 3]]}}},
        {"lists": {"a": {"timeline_limit": 1, "required_state": [["only-type"]]}}},
        {"lists": {"a": {"timeline_limit": 1, "required_state": {"include": [{"type": 3}]}}}},
        {"lists": {"a": {"timeline_limit": 1, "filters": {"is_dm": "yes"}}}},
        {"lists": {"a": {"timeline_limit": 1, "filters": {"tags": [1]}}}},
        {"lists": {"x" * 65: {"timeline_limit": 1}}},
        {"lists": {str(i): {"timeline_limit": 1} for i in range(101)}},
        {"room_subscriptions": {"#alias:hs": {"timeline_limit": 1}}},
        {"extensions": {"to_device": {"enabled": "true"}}},
        {"extensions": {"to_device": {"enabled": True, "limit": -5}}},
        {"conn_id": 7},
    ],
)
def test_bad_bodies_are_400(body: Any) -> None:
    with pytest.raises(MatrixError) as err:
        parse_request(body)
    assert err.value.status == 400 and err.value.errcode == "M_BAD_JSON"


@pytest.mark.parametrize(
    "query", [{"timeout": "-1"}, {"timeout": "soon"}, {"set_presence": "busy"}]
)
def test_bad_query_values_are_invalid_param(query: dict[str, str]) -> None:
    with pytest.raises(MatrixError) as err:
        parse_request({}, query)
    assert err.value.status == 400 and err.value.errcode == "M_INVALID_PARAM"
