"""The v10 (v9-algorithm) redaction rules beside v11, and served redaction events."""

from __future__ import annotations

from outlast.core.redaction import redact, redacted_by, served_redaction

EXTRA = {"origin": "a.test", "membership": "join", "prev_state": [], "age_ts": 1}


def test_v10_keeps_the_older_top_level_keys() -> None:
    event = {"type": "m.room.message", "event_id": "$e", "content": {"body": "x"}, **EXTRA}
    assert redact(event, "10") == {
        "type": "m.room.message",
        "event_id": "$e",
        "content": {},
        "origin": "a.test",
        "membership": "join",
        "prev_state": [],
    }
    assert redact(event, "11") == {"type": "m.room.message", "event_id": "$e", "content": {}}


def test_v10_content_rules() -> None:
    create = {"type": "m.room.create", "content": {"creator": "@a:hs", "room_version": "10"}}
    assert redact(create, "10")["content"] == {"creator": "@a:hs"}
    assert redact(create, "11")["content"] == create["content"]
    levels = {"type": "m.room.power_levels", "content": {"invite": 0, "ban": 50, "x": 1}}
    assert redact(levels, "10")["content"] == {"ban": 50}
    assert redact(levels, "12")["content"] == {"invite": 0, "ban": 50}
    redaction = {"type": "m.room.redaction", "content": {"redacts": "$x", "reason": "r"}}
    assert redact(redaction, "10")["content"] == {}
    assert redact(redaction, "11")["content"] == {"redacts": "$x"}
    invite = {"signed": {"mxid": "@b:hs"}, "display_name": "B"}
    member = {
        "type": "m.room.member",
        "content": {"membership": "invite", "third_party_invite": invite},
    }
    assert redact(member, "10")["content"] == {"membership": "invite"}
    assert redact(member, "11")["content"]["third_party_invite"] == {"signed": {"mxid": "@b:hs"}}
    assert redacted_by(member, {"event_id": "$r"}, "10")["unsigned"] == {
        "redacted_because": {"event_id": "$r"}
    }


def test_redactions_are_served_with_redacts_in_both_places() -> None:
    v11 = {"type": "m.room.redaction", "content": {"redacts": "$x", "reason": "r"}}
    assert served_redaction(v11) == {
        "type": "m.room.redaction",
        "content": {"redacts": "$x", "reason": "r"},
        "redacts": "$x",
    }
    v10 = {"type": "m.room.redaction", "redacts": "$y", "content": {}}
    assert served_redaction(v10)["content"] == {"redacts": "$y"}
    assert served_redaction({"type": "m.room.redaction", "content": {}}) == {
        "type": "m.room.redaction",
        "content": {},
    }
