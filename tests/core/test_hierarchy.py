"""Unit tests for the space tree walk in outlast.core.hierarchy."""

from __future__ import annotations

from typing import Any

import pytest

from outlast.core import hierarchy
from outlast.core.errors import MatrixError
from outlast.core.hierarchy import Request, SpaceRoom


def child(room_id: str, ts: int = 0, **content: Any) -> dict[str, Any]:
    return {
        "type": "m.space.child",
        "state_key": room_id,
        "sender": "@alice:x",
        "origin_server_ts": ts,
        "content": {"via": ["x"], **content},
    }


def space(room_id: str, *kids: dict[str, Any], visible: bool = True) -> SpaceRoom:
    return SpaceRoom({"room_id": room_id, "room_type": "m.space"}, kids, visible)


def room(room_id: str, visible: bool = True) -> SpaceRoom:
    return SpaceRoom({"room_id": room_id}, (), visible)


def walk(rooms: dict[str, SpaceRoom], **query: str) -> dict[str, Any]:
    return hierarchy.page("!root", rooms.get, hierarchy.parse(query))


def ids(body: dict[str, Any]) -> list[str]:
    return [r["room_id"] for r in body["rooms"]]


def test_depth_first_in_spec_order() -> None:
    rooms = {
        "!root": space("!root", child("!c", ts=1), child("!b", order="b"), child("!a", ts=2)),
        "!b": space("!b", child("!b1")),
        "!a": room("!a"),
        "!c": room("!c"),
        "!b1": room("!b1"),
    }
    # "order" first, then by timestamp; !b's subtree before its next sibling.
    assert ids(walk(rooms)) == ["!root", "!b", "!b1", "!c", "!a"]
    root = walk(rooms)["rooms"][0]
    assert [c["state_key"] for c in root["children_state"]] == ["!b", "!c", "!a"]
    assert set(root["children_state"][0]) == {
        "type",
        "state_key",
        "content",
        "sender",
        "origin_server_ts",
    }


def test_invalid_order_and_timestamp_ties_fall_back_to_room_id() -> None:
    rooms = {
        "!root": space("!root", child("!z", order="\x01bad"), child("!y"), child("!x", order="a")),
        "!x": room("!x"),
        "!y": room("!y"),
        "!z": room("!z"),
    }
    assert ids(walk(rooms)) == ["!root", "!x", "!y", "!z"]


def test_max_depth_limits_descent_but_not_children_state() -> None:
    rooms = {"!root": space("!root", child("!s")), "!s": space("!s", child("!r")), "!r": room("!r")}
    assert ids(walk(rooms, max_depth="0")) == ["!root"]
    assert len(walk(rooms, max_depth="0")["rooms"][0]["children_state"]) == 1
    assert ids(walk(rooms, max_depth="1")) == ["!root", "!s"]
    assert ids(walk(rooms)) == ["!root", "!s", "!r"]


def test_invisible_unknown_and_removed_children_are_skipped_with_their_subtrees() -> None:
    removed = {**child("!gone"), "content": {}}
    rooms = {
        "!root": space("!root", child("!hidden"), child("!unknown"), removed, child("!ok")),
        "!hidden": space("!hidden", child("!below"), visible=False),
        "!below": room("!below"),
        "!gone": room("!gone"),
        "!ok": room("!ok"),
    }
    body = walk(rooms)
    assert ids(body) == ["!root", "!ok"]
    # The removed child (no via) is not in children_state either.
    assert "!gone" not in [c["state_key"] for c in body["rooms"][0]["children_state"]]


def test_loops_visit_each_room_once() -> None:
    rooms = {"!root": space("!root", child("!a")), "!a": space("!a", child("!root"), child("!a"))}
    assert ids(walk(rooms)) == ["!root", "!a"]


def test_a_room_that_is_not_a_space_has_no_children() -> None:
    rooms = {"!root": SpaceRoom({"room_id": "!root"}, (child("!a"),), True), "!a": room("!a")}
    body = walk(rooms)
    assert ids(body) == ["!root"] and body["rooms"][0]["children_state"] == []


def test_suggested_only() -> None:
    rooms = {
        "!root": space("!root", child("!a", suggested=True), child("!b")),
        "!a": room("!a"),
        "!b": room("!b"),
    }
    body = walk(rooms, suggested_only="true")
    assert ids(body) == ["!root", "!a"]
    assert [c["state_key"] for c in body["rooms"][0]["children_state"]] == ["!a"]


def test_pages_follow_on_without_gaps_or_repeats() -> None:
    rooms = {"!root": space("!root", *(child(f"!r{n}", ts=n) for n in range(7)))}
    rooms.update({f"!r{n}": room(f"!r{n}") for n in range(7)})
    seen: list[str] = []
    query = {"limit": "3", "max_depth": "2"}
    for _ in range(10):
        body = walk(rooms, **query)
        seen += ids(body)
        if "next_batch" not in body:
            break
        query["from"] = body["next_batch"]
    assert seen == ["!root", *(f"!r{n}" for n in range(7))]


@pytest.mark.parametrize(
    "query",
    [
        {"limit": "0"},
        {"limit": "-1"},
        {"limit": "x"},
        {"max_depth": "-1"},
        {"suggested_only": "yes"},
        {"from": "nonsense"},
        {"from": "h3_10_0", "max_depth": "2"},
        {"from": "h3_10_0", "suggested_only": "true"},
    ],
)
def test_bad_queries_are_invalid_params(query: dict[str, str]) -> None:
    with pytest.raises(MatrixError) as caught:
        hierarchy.parse(query)
    assert (caught.value.status, caught.value.errcode) == (400, "M_INVALID_PARAM")


def test_defaults_and_maxima() -> None:
    assert hierarchy.parse({}) == Request(hierarchy.MAX_DEPTH, False, hierarchy.DEFAULT_LIMIT, 0)
    clamped = hierarchy.parse({"limit": "100000", "max_depth": "999"})
    assert (clamped.limit, clamped.max_depth) == (hierarchy.MAX_LIMIT, hierarchy.MAX_DEPTH)
