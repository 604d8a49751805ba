"""Sliding sync lists: who is in the server list, filters, order and windows."""

from __future__ import annotations

from typing import Any

from outlast.core.sliding.lists import (
    RoomListEntry,
    bump_stamp,
    cut_window,
    extension_rooms,
    in_server_list,
    matches,
    select_rooms,
    sort_rooms,
)
from outlast.core.sliding.request import ListConfig, ListFilters, RoomConfig, parse_request


def room(room_id: str, activity: int, membership: str = "join", **kw: Any) -> RoomListEntry:
    return RoomListEntry(room_id, membership, activity, **kw)


def test_server_list_membership_rules() -> None:
    assert in_server_list(room("!a", 1), sent_before=False)
    assert in_server_list(room("!a", 1, membership="invite"), sent_before=False)
    assert in_server_list(room("!a", 1, membership="leave", by_self=False), sent_before=False)
    assert not in_server_list(room("!a", 1, membership="leave"), sent_before=False)
    assert in_server_list(room("!a", 1, membership="leave"), sent_before=True)
    assert in_server_list(room("!a", 1, membership="ban", by_self=False), sent_before=False)
    assert not in_server_list(
        room("!a", 1, membership="ban", by_self=False, ever_joined=False), sent_before=True
    )


def test_filters() -> None:
    dm = room("!dm", 1, is_dm=True, is_encrypted=True, tags=frozenset({"m.favourite"}))
    space = room("!sp", 1, room_type="m.space", name="Project Space")
    invite = room("!in", 1, membership="invite", spaces=frozenset({"!sp"}))
    assert matches(dm, ListFilters(is_dm=True)) and not matches(space, ListFilters(is_dm=True))
    assert matches(space, ListFilters(is_dm=False))
    assert matches(dm, ListFilters(is_encrypted=True))
    assert not matches(space, ListFilters(is_encrypted=True))
    assert matches(invite, ListFilters(is_invite=True)) and not matches(
        dm, ListFilters(is_invite=True)
    )
    assert matches(space, ListFilters(room_types=("m.space",)))
    assert matches(dm, ListFilters(room_types=(None,))) and not matches(
        space, ListFilters(room_types=(None,))
    )
    both = ListFilters(room_types=("m.space",), not_room_types=("m.space",))
    assert not matches(space, both)  # not_room_types wins
    assert matches(dm, ListFilters(tags=("m.favourite", "u.work")))
    assert not matches(dm, ListFilters(tags=("m.favourite",), not_tags=("m.favourite",)))
    assert not matches(space, ListFilters(tags=("m.favourite",)))
    assert matches(invite, ListFilters(spaces=("!sp",))) and not matches(
        dm, ListFilters(spaces=("!sp",))
    )
    assert matches(space, ListFilters(room_name_like="project"))
    assert not matches(dm, ListFilters(room_name_like="project"))


def test_order_is_recent_first_with_room_id_ties() -> None:
    ordered = sort_rooms([room("!b", 5), room("!c", 9), room("!a", 5)])
    assert [e.room_id for e in ordered] == ["!c", "!a", "!b"]


def test_windows_and_ops() -> None:
    ordered = sort_rooms(room(f"!{i:02}", 100 - i) for i in range(30))
    config = ListConfig(RoomConfig(1), ranges=((0, 4), (28, 40)))
    window = cut_window(config, ordered)
    assert window.count == 30
    assert window.room_ids() == ["!00", "!01", "!02", "!03", "!04", "!28", "!29"]
    assert window.body()["ops"][1] == {"op": "SYNC", "range": [28, 40], "room_ids": ["!28", "!29"]}
    whole = cut_window(ListConfig(RoomConfig(1)), ordered)
    assert len(whole.room_ids()) == 30
    assert cut_window(ListConfig(RoomConfig(1)), []).body() == {
        "count": 0,
        "ops": [{"op": "SYNC", "range": [0, 0], "room_ids": []}],
    }


def test_select_rooms_combines_lists_and_subscriptions() -> None:
    request = parse_request(
        {
            "lists": {
                "top": {"ranges": [[0, 1]], "timeline_limit": 1},
                "dms": {"ranges": [[0, 9]], "timeline_limit": 3, "filters": {"is_dm": True}},
            },
            "room_subscriptions": {
                "!old:hs": {"timeline_limit": 20},
                "!stranger:hs": {"timeline_limit": 20},
                "!gone:hs": {"timeline_limit": 20},
            },
        }
    )
    rooms = [
        room("!new:hs", 30),
        room("!dm:hs", 20, is_dm=True),
        room("!old:hs", 10),
        room("!gone:hs", 5, membership="leave"),  # left by self, never shown here
    ]
    selection = select_rooms(request, rooms)
    assert selection.windows["top"].room_ids() == ["!new:hs", "!dm:hs"]
    assert selection.configs["!dm:hs"].timeline_limit == 3
    assert selection.lists_of["!dm:hs"] == ("top", "dms")
    assert selection.configs["!old:hs"].timeline_limit == 20
    assert "!stranger:hs" not in selection.configs and "!gone:hs" not in selection.configs
    again = select_rooms(request, rooms, sent_before={"!gone:hs"})
    assert "!gone:hs" in again.configs  # so the client learns it left
    assert extension_rooms(("*",), ("*",), selection, request.subscriptions) == {
        "!new:hs",
        "!dm:hs",
        "!old:hs",
    }
    assert extension_rooms(("dms",), (), selection, request.subscriptions) == {"!dm:hs"}


def test_bump_stamp_counts_only_bumping_types() -> None:
    events = [
        {"type": "m.room.message", "origin_server_ts": 10},
        {"type": "m.reaction", "origin_server_ts": 50},
        {"type": "m.room.encrypted", "origin_server_ts": 20},
        {"type": "m.room.topic", "state_key": "", "origin_server_ts": 60},
    ]
    assert bump_stamp(events) == 20
    assert bump_stamp([{"type": "m.room.member", "origin_server_ts": 1}]) is None
