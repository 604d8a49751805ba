"""Sticky request parameters: what a js-sdk-style client leaves out is remembered."""

from __future__ import annotations

from outlast.core.sliding.request import parse_request
from outlast.core.sliding.sticky import applies, fill, remember

FIRST = {
    "lists": {
        "rooms": {
            "ranges": [[0, 9]],
            "timeline_limit": 5,
            "required_state": [["m.room.name", ""]],
            "filters": {"is_dm": False},
        }
    },
    "room_subscriptions": {"!a:x": {"timeline_limit": 20}},
    "extensions": {"to_device": {"enabled": True, "since": "12", "limit": 100}},
}


def test_a_list_sent_with_ranges_only_keeps_its_other_parameters() -> None:
    kept = remember(fill(FIRST, {}))
    later = fill({"lists": {"rooms": {"ranges": [[0, 19]]}}}, kept)
    request = parse_request(later)
    rooms = request.lists["rooms"]
    assert rooms.ranges == ((0, 19),)
    assert rooms.room.timeline_limit == 5
    assert rooms.filters.is_dm is False
    assert rooms.room.wants("m.room.name", "", "@u:x")
    assert "!a:x" in request.subscriptions
    assert request.extension("to_device") is not None


def test_the_client_overrides_and_since_and_ranges_are_never_remembered() -> None:
    kept = remember(fill(FIRST, {}))
    assert "ranges" not in kept["lists"]["rooms"]
    assert "since" not in kept["extensions"]["to_device"]
    later = fill(
        {"lists": {"rooms": {"ranges": [[0, 1]], "timeline_limit": 1}}, "extensions": {}}, kept
    )
    request = parse_request(later)
    assert request.lists["rooms"].room.timeline_limit == 1
    to_device = request.extension("to_device")
    assert to_device is not None and to_device.since is None


def test_unsubscribe_rooms_drops_a_remembered_subscription() -> None:
    kept = remember(fill(FIRST, {}))
    later = fill({"unsubscribe_rooms": ["!a:x"], "room_subscriptions": {"!b:x": {}}}, kept)
    assert set(parse_request(later).subscriptions) == {"!b:x"}


def test_lists_the_client_stops_sending_are_gone() -> None:
    kept = remember(fill(FIRST, {}))
    assert parse_request(fill({"lists": {}}, kept)).lists == {}


def test_malformed_parts_are_left_for_the_parser() -> None:
    assert fill({"lists": []}, {"lists": {"x": {}}})["lists"] == []
    assert fill({"lists": {"x": 5}}, {"lists": {"x": {"timeline_limit": 1}}})["lists"] == {"x": 5}


def test_only_a_request_without_conn_id_is_filled() -> None:
    assert applies({"lists": {}})
    assert applies({"conn_id": ""})
    assert not applies({"conn_id": "room-list"})
