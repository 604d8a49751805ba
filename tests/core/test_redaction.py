"""Unit tests for the room version 11 redaction algorithm (outlast.core.redaction)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from outlast.core.redaction import redact, redacted_by, redacted_content, redaction_target


def make_event(event_type: str, content: dict[str, Any], **extra: Any) -> dict[str, Any]:
    event = {
        "event_id": "$e",
        "room_id": "!r:localhost",
        "sender": "@alice:localhost",
        "type": event_type,
        "content": content,
        "origin_server_ts": 1,
    }
    event.update(extra)
    return event


def test_message_loses_all_content_and_unknown_top_level_keys() -> None:
    event = make_event(
        "m.room.message",
        {"msgtype": "m.text", "body": "secret"},
        unsigned={"age": 5},
        origin="localhost",
        membership="join",
        prev_state=[],
        depth=3,
        hashes={"sha256": "x"},
    )
    out = redact(event)
    assert out == {
        "event_id": "$e",
        "room_id": "!r:localhost",
        "sender": "@alice:localhost",
        "type": "m.room.message",
        "content": {},
        "origin_server_ts": 1,
        "depth": 3,
        "hashes": {"sha256": "x"},
    }


def test_state_key_survives() -> None:
    out = redact(make_event("m.room.topic", {"topic": "old"}, state_key=""))
    assert out["state_key"] == ""
    assert out["content"] == {}


@pytest.mark.parametrize(
    ("event_type", "content", "kept"),
    [
        (
            "m.room.member",
            {
                "membership": "join",
                "displayname": "A",
                "avatar_url": "mxc://x/y",
                "join_authorised_via_users_server": "@b:localhost",
                "reason": "hi",
            },
            {"membership": "join", "join_authorised_via_users_server": "@b:localhost"},
        ),
        (
            "m.room.join_rules",
            {"join_rule": "restricted", "allow": [{"type": "m.room_membership"}], "x": 1},
            {"join_rule": "restricted", "allow": [{"type": "m.room_membership"}]},
        ),
        (
            "m.room.power_levels",
            {
                "ban": 50,
                "events": {"m.room.name": 50},
                "events_default": 0,
                "invite": 0,
                "kick": 50,
                "redact": 50,
                "state_default": 50,
                "users": {"@a:localhost": 100},
                "users_default": 0,
                "notifications": {"room": 50},
                "historical": 100,
            },
            {
                "ban": 50,
                "events": {"m.room.name": 50},
                "events_default": 0,
                "invite": 0,
                "kick": 50,
                "redact": 50,
                "state_default": 50,
                "users": {"@a:localhost": 100},
                "users_default": 0,
            },
        ),
        (
            "m.room.history_visibility",
            {"history_visibility": "shared", "other": True},
            {"history_visibility": "shared"},
        ),
        ("m.room.redaction", {"redacts": "$x", "reason": "spam"}, {"redacts": "$x"}),
        ("m.room.name", {"name": "Room"}, {}),
        ("m.room.canonical_alias", {"alias": "#a:localhost"}, {}),
    ],
)
def test_allowed_content_keys_per_type(
    event_type: str, content: dict[str, Any], kept: dict[str, Any]
) -> None:
    assert redact(make_event(event_type, content, state_key=""))["content"] == kept


def test_create_keeps_all_content() -> None:
    content = {"room_version": "11", "m.federate": False, "type": "m.space", "custom": [1]}
    assert redact(make_event("m.room.create", content, state_key=""))["content"] == content


def test_third_party_invite_keeps_only_signed() -> None:
    content = {
        "membership": "invite",
        "third_party_invite": {"display_name": "x", "signed": {"mxid": "@b:localhost"}},
    }
    assert redacted_content("m.room.member", content) == {
        "membership": "invite",
        "third_party_invite": {"signed": {"mxid": "@b:localhost"}},
    }
    assert redacted_content(
        "m.room.member", {"membership": "invite", "third_party_invite": {"display_name": "x"}}
    ) == {"membership": "invite"}


def test_malformed_content_becomes_empty() -> None:
    assert redacted_content("m.room.member", "nonsense") == {}
    assert redacted_content("m.room.create", None) == {}


def test_input_is_not_modified_and_output_is_independent() -> None:
    event = make_event("m.room.power_levels", {"users": {"@a:localhost": 100}}, state_key="")
    before = copy.deepcopy(event)
    out = redact(event)
    out["content"]["users"]["@b:localhost"] = 1
    assert event == before


def test_redacting_twice_is_the_same() -> None:
    event = make_event("m.room.member", {"membership": "join", "displayname": "A"}, state_key="@a")
    assert redact(redact(event)) == redact(event)


def test_redacted_by_sets_redacted_because_only() -> None:
    cause = make_event(
        "m.room.redaction", {"redacts": "$e", "reason": "r"}, event_id="$r", redacts="$e"
    )
    out = redacted_by(make_event("m.room.message", {"body": "x"}, unsigned={"age": 1}), cause)
    assert out["unsigned"] == {"redacted_because": cause}
    assert out["content"] == {}


def test_redaction_target_prefers_content() -> None:
    assert redaction_target({"content": {"redacts": "$a"}, "redacts": "$b"}) == "$a"
    assert redaction_target({"content": {}, "redacts": "$b"}) == "$b"
    assert redaction_target({"content": {"redacts": 5}}) is None
    assert redaction_target({}) is None
