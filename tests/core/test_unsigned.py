"""prev_content / replaces_state and unsigned.membership on served events."""

from __future__ import annotations

from outlast.core.unsigned import with_membership, with_replaced_state

OLD = {
    "event_id": "$old",
    "sender": "@a:hs",
    "type": "m.room.member",
    "state_key": "@a:hs",
    "content": {"membership": "join", "displayname": "A"},
}
NEW = {
    **OLD,
    "event_id": "$new",
    "content": {"membership": "join", "displayname": "Alice"},
    "unsigned": {"age": 3},
}


def test_replaced_state_when_visible() -> None:
    out = with_replaced_state(NEW, OLD, may_see=True)
    assert out["unsigned"] == {
        "age": 3,
        "replaces_state": "$old",
        "prev_content": {"membership": "join", "displayname": "A"},
        "prev_sender": "@a:hs",
    }
    assert NEW["unsigned"] == {"age": 3}


def test_replaced_state_when_hidden_or_absent() -> None:
    assert with_replaced_state(NEW, OLD, may_see=False)["unsigned"] == {
        "age": 3,
        "replaces_state": "$old",
    }
    assert with_replaced_state(NEW, None, may_see=True) == NEW
    message = {"event_id": "$m", "type": "m.room.message", "content": {}}
    assert with_replaced_state(message, OLD, may_see=True) == message


def test_membership_of_the_reader() -> None:
    assert with_membership(NEW, "invite")["unsigned"] == {"age": 3, "membership": "invite"}
    assert with_membership({"event_id": "$m"}, None)["unsigned"] == {"membership": "leave"}
