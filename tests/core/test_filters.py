"""Tests for outlast.core.filters (Client-Server API "Filtering")."""

from __future__ import annotations

from typing import Any

import pytest

from outlast.core.errors import MatrixError
from outlast.core.filters import (
    MAX_LIMIT,
    EventFilter,
    RoomFilter,
    SyncFilter,
    apply_event_fields,
    default_sync_filter,
    filter_id_for,
    parse_event_filter,
    parse_sync_filter,
)


def ev(
    type_: str = "m.room.message",
    sender: str = "@alice:hs",
    room_id: str | None = "!r:hs",
    content: dict[str, Any] | None = None,
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": type_,
        "sender": sender,
        "content": {"body": "hi"} if content is None else content,
        "event_id": "$e",
    }
    if room_id is not None:
        event["room_id"] = room_id
    return event


# --- matching ---------------------------------------------------------------


def test_empty_filter_matches_everything() -> None:
    f = EventFilter()
    assert f.matches(ev())
    assert f.matches({})


def test_type_wildcards() -> None:
    f = parse_event_filter({"types": ["m.room.*"]})
    assert f.matches(ev("m.room.message"))
    assert f.matches(ev("m.room.member"))
    assert not f.matches(ev("m.reaction"))
    # `.` is literal, not a regex metacharacter.
    assert not parse_event_filter({"types": ["m.room.message"]}).matches(ev("m.roomXmessage"))
    # `*` in the middle and a lone `*`.
    assert parse_event_filter({"types": ["m.*.member"]}).matches(ev("m.room.member"))
    assert parse_event_filter({"types": ["*"]}).matches(ev("anything"))
    # Other glob characters are literal.
    assert not parse_event_filter({"types": ["m.room.?"]}).matches(ev("m.room.x"))


def test_not_types_win_over_types() -> None:
    f = parse_event_filter({"types": ["m.room.*"], "not_types": ["m.room.member"]})
    assert f.matches(ev("m.room.message"))
    assert not f.matches(ev("m.room.member"))
    g = parse_event_filter({"types": ["m.room.member"], "not_types": ["*"]})
    assert not g.matches(ev("m.room.member"))


def test_empty_types_list_matches_nothing() -> None:
    assert not parse_event_filter({"types": []}).matches(ev())
    assert parse_event_filter({"not_types": []}).matches(ev())


def test_senders_and_not_senders() -> None:
    f = parse_event_filter({"senders": ["@alice:hs", "@bob:hs"], "not_senders": ["@bob:hs"]})
    assert f.matches(ev(sender="@alice:hs"))
    assert not f.matches(ev(sender="@bob:hs"))
    assert not f.matches(ev(sender="@carol:hs"))
    assert not f.matches({"type": "m.typing", "content": {}})  # no sender
    g = parse_event_filter({"not_senders": ["@spam:hs"]})
    assert g.matches(ev(sender="@alice:hs"))
    assert not g.matches(ev(sender="@spam:hs"))


def test_rooms_match_room_id_when_present() -> None:
    f = parse_event_filter({"rooms": ["!a:hs", "!b:hs"], "not_rooms": ["!b:hs"]})
    assert f.matches(ev(room_id="!a:hs"))
    assert not f.matches(ev(room_id="!b:hs"))
    assert not f.matches(ev(room_id="!c:hs"))
    # Sync-format events carry no room_id: the room clauses do not apply.
    assert f.matches(ev(room_id=None))


def test_lazy_load_members_is_read_from_a_room_event_filter() -> None:
    assert parse_event_filter({"lazy_load_members": True}).lazy_load_members is True
    assert parse_event_filter({}).lazy_load_members is False


def test_contains_url() -> None:
    with_url = ev(content={"url": "mxc://hs/abc", "body": "x"})
    without = ev(content={"body": "x"})
    only = parse_event_filter({"contains_url": True})
    never = parse_event_filter({"contains_url": False})
    either = parse_event_filter({})
    assert only.matches(with_url) and not only.matches(without)
    assert never.matches(without) and not never.matches(with_url)
    assert either.matches(with_url) and either.matches(without)


def test_unread_thread_notifications_is_read_from_the_timeline_filter() -> None:
    asked = parse_sync_filter({"room": {"timeline": {"unread_thread_notifications": True}}})
    assert asked.room.timeline.unread_thread_notifications is True
    assert parse_sync_filter({}).room.timeline.unread_thread_notifications is False
    with pytest.raises(MatrixError):
        parse_sync_filter({"room": {"timeline": {"unread_thread_notifications": "yes"}}})


def test_apply_filters_without_cutting_to_limit() -> None:
    f = parse_event_filter({"types": ["m.room.message"], "limit": 1})
    events = [ev("m.room.message"), ev("m.room.member"), ev("m.room.message")]
    out = f.apply(events)
    assert out == [events[0], events[2]]
    assert f.limit == 1


def test_room_filter_room_allowed() -> None:
    rf = RoomFilter(rooms=("!a:hs", "!b:hs"), not_rooms=("!b:hs",))
    assert rf.room_allowed("!a:hs")
    assert not rf.room_allowed("!b:hs")
    assert not rf.room_allowed("!c:hs")
    assert RoomFilter().room_allowed("!anything:hs")
    assert not RoomFilter(not_rooms=("!x:hs",)).room_allowed("!x:hs")


# --- parsing ----------------------------------------------------------------

SPEC_EXAMPLE: dict[str, Any] = {
    "room": {
        "state": {"types": ["m.room.*"], "not_rooms": ["!726s6s6q:example.com"]},
        "timeline": {
            "limit": 10,
            "types": ["m.room.message"],
            "not_rooms": ["!726s6s6q:example.com"],
            "not_senders": ["@spam:example.com"],
        },
        "ephemeral": {
            "types": ["m.receipt", "m.typing"],
            "not_rooms": ["!726s6s6q:example.com"],
            "not_senders": ["@spam:example.com"],
        },
    },
    "presence": {"types": ["m.presence"], "not_senders": ["@alice:example.com"]},
    "event_format": "client",
    "event_fields": ["type", "content", "sender"],
}


def test_parse_spec_example() -> None:
    f = parse_sync_filter(SPEC_EXAMPLE)
    assert f.room.timeline.limit == 10
    assert f.room.timeline.types == ("m.room.message",)
    assert f.room.timeline.not_senders == ("@spam:example.com",)
    assert f.room.state.types == ("m.room.*",)
    assert f.room.state.not_rooms == ("!726s6s6q:example.com",)
    assert f.room.ephemeral.types == ("m.receipt", "m.typing")
    assert f.room.account_data == EventFilter()
    assert f.room.rooms is None and f.room.not_rooms == ()
    assert f.room.include_leave is False
    assert f.presence.types == ("m.presence",)
    assert f.presence.not_senders == ("@alice:example.com",)
    assert f.event_fields == ("type", "content", "sender")
    assert f.event_format == "client"


def test_parse_room_level_keys_and_unknown_keys() -> None:
    f = parse_sync_filter(
        {
            "room": {
                "rooms": ["!a:hs"],
                "not_rooms": ["!b:hs"],
                "include_leave": True,
                "timeline": {"lazy_load_members": True, "unread_thread_notifications": True},
                "state": {"lazy_load_members": True, "include_redundant_members": False},
                "org.example.future": 1,
            },
            "account_data": {"types": ["m.push_rules"]},
            "org.example.future": {"anything": [1, 2]},
            "event_format": "federation",
        }
    )
    assert f.room.rooms == ("!a:hs",)
    assert f.room.not_rooms == ("!b:hs",)
    assert f.room.include_leave is True
    assert f.room.timeline.unread_thread_notifications is True
    assert f.account_data.types == ("m.push_rules",)
    assert f.event_format == "federation"
    assert f.event_fields is None


def test_default_and_empty_filter_agree() -> None:
    d = default_sync_filter()
    assert d == parse_sync_filter({}) == SyncFilter()
    assert d.room.timeline.limit is None
    assert d.event_fields is None
    assert d.event_format == "client"
    assert d.room.include_leave is False
    assert d.room.timeline.unread_thread_notifications is False


def test_null_values_count_as_absent() -> None:
    f = parse_sync_filter({"room": None, "presence": None, "event_fields": None})
    assert f == default_sync_filter()
    assert parse_event_filter({"types": None, "limit": None}) == EventFilter()


def test_limit_clamping_and_validation() -> None:
    assert parse_event_filter({"limit": 5}).limit == 5
    assert parse_event_filter({"limit": 0}).limit == 0
    assert parse_event_filter({"limit": MAX_LIMIT}).limit == MAX_LIMIT
    assert parse_event_filter({"limit": 10**9}).limit == MAX_LIMIT
    big = parse_sync_filter({"room": {"timeline": {"limit": 50_000}}})
    assert big.room.timeline.limit == MAX_LIMIT
    for bad in (-1, 1.5, "10", True, [10]):
        with pytest.raises(MatrixError) as info:
            parse_event_filter({"limit": bad})
        assert info.value.errcode == "M_BAD_JSON"
        assert info.value.status == 400


@pytest.mark.parametrize(
    "bad",
    [
        [],
        "not an object",
        42,
        {"room": []},
        {"room": "x"},
        {"room": {"rooms": "!a:hs"}},
        {"room": {"not_rooms": [1]}},
        {"room": {"include_leave": "yes"}},
        {"room": {"timeline": []}},
        {"room": {"timeline": {"types": "m.room.message"}}},
        {"room": {"timeline": {"types": [None]}}},
        {"room": {"state": {"not_types": [{"a": 1}]}}},
        {"room": {"ephemeral": {"senders": "@a:hs"}}},
        {"room": {"account_data": {"not_senders": [1]}}},
        {"room": {"timeline": {"contains_url": 1}}},
        {"room": {"timeline": {"limit": -5}}},
        {"presence": "x"},
        {"presence": {"types": [1]}},
        {"account_data": {"limit": "1"}},
        {"event_fields": "content.body"},
        {"event_fields": [1]},
        {"event_format": "raw"},
        {"event_format": 1},
    ],
)
def test_bad_shapes_are_bad_json(bad: Any) -> None:
    with pytest.raises(MatrixError) as info:
        parse_sync_filter(bad)
    assert info.value.errcode == "M_BAD_JSON"
    assert info.value.status == 400


@pytest.mark.parametrize(
    "bad",
    [None, [], "x", {"types": "m.room.message"}, {"rooms": [1]}, {"contains_url": "true"}],
)
def test_bad_event_filter_is_bad_json(bad: Any) -> None:
    with pytest.raises(MatrixError) as info:
        parse_event_filter(bad)
    assert info.value.errcode == "M_BAD_JSON"


def test_error_names_the_offending_key() -> None:
    with pytest.raises(MatrixError) as info:
        parse_sync_filter({"room": {"timeline": {"types": "x"}}})
    assert "room.timeline.types" in info.value.error


def test_presence_filter_ignores_room_keys() -> None:
    f = parse_sync_filter({"presence": {"rooms": ["!a:hs"], "contains_url": True}})
    assert f.presence.rooms is None
    assert f.presence.contains_url is None


def test_parsed_filters_are_immutable_and_hashable() -> None:
    f = parse_sync_filter(SPEC_EXAMPLE)
    assert hash(f) == hash(parse_sync_filter(SPEC_EXAMPLE))
    with pytest.raises(AttributeError):
        f.event_format = "federation"  # type: ignore[misc]


# --- filter ids -------------------------------------------------------------


def test_filter_id_is_deterministic() -> None:
    a = {"room": {"timeline": {"limit": 10, "types": ["m.room.message"]}}, "event_format": "client"}
    b = {"event_format": "client", "room": {"timeline": {"types": ["m.room.message"], "limit": 10}}}
    fid = filter_id_for(a)
    assert fid == filter_id_for(b)
    assert len(fid) == 16
    assert all(c in "0123456789abcdef" for c in fid)
    assert not fid.startswith("{")
    assert fid != filter_id_for({"room": {"timeline": {"limit": 11}}})
    assert filter_id_for({}) != filter_id_for({"room": {}})


def test_filter_id_uses_canonical_utf8_json() -> None:
    import hashlib

    obj = {"b": "日本", "a": [1, 2]}
    expected = hashlib.sha256('{"a":[1,2],"b":"日本"}'.encode()).hexdigest()[:16]
    assert filter_id_for(obj) == expected


# --- event_fields -----------------------------------------------------------


def full_event() -> dict[str, Any]:
    return {
        "type": "m.room.message",
        "sender": "@alice:hs",
        "event_id": "$e",
        "room_id": "!r:hs",
        "origin_server_ts": 5,
        "content": {
            "body": "hello",
            "msgtype": "m.text",
            "m.relates_to": {"rel_type": "m.thread", "event_id": "$root"},
            "m\\foo": 1,
        },
        "unsigned": {"age": 10},
    }


def test_event_fields_none_or_empty_returns_event() -> None:
    e = full_event()
    assert apply_event_fields(e, None) is e
    assert apply_event_fields(e, []) is e


def test_event_fields_top_level_and_dotted() -> None:
    e = full_event()
    out = apply_event_fields(e, ["type", "content.body", "sender"])
    assert out == {"type": "m.room.message", "sender": "@alice:hs", "content": {"body": "hello"}}
    # The source is untouched.
    assert e == full_event()


def test_event_fields_escaped_dots_and_backslashes() -> None:
    e = full_event()
    out = apply_event_fields(e, ["content.m\\.relates_to.rel_type"])
    assert out == {"content": {"m.relates_to": {"rel_type": "m.thread"}}}
    out = apply_event_fields(e, ["content.m\\\\foo"])
    assert out == {"content": {"m\\foo": 1}}
    # Unescaped, `m.relates_to` is a path through a missing `m` key.
    assert apply_event_fields(e, ["content.m.relates_to"]) == {}
    # Other escapes stay literal: `\x` is backslash then x.
    odd = {"content": {"a\\x": 2}}
    assert apply_event_fields(odd, ["content.a\\x"]) == {"content": {"a\\x": 2}}


def test_event_fields_missing_paths_and_merging() -> None:
    e = full_event()
    out = apply_event_fields(
        e, ["content.body", "content.msgtype", "content.nope", "nope", "type.deeper"]
    )
    assert out == {"content": {"body": "hello", "msgtype": "m.text"}}
    # A whole object plus one of its parts, in either order, gives the whole.
    both = apply_event_fields(e, ["content.body", "content"])
    assert both == {"content": e["content"]}
    assert apply_event_fields(e, ["content", "content.body"]) == {"content": e["content"]}


def test_event_fields_copies_leaf_values() -> None:
    e = full_event()
    out = apply_event_fields(e, ["content"])
    out["content"]["body"] = "changed"
    assert e["content"]["body"] == "hello"
