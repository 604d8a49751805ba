"""Room versions 10, 11 and 12: create content, capabilities, and the auth rules that differ."""

from __future__ import annotations

from typing import Any

import pytest

from outlast.core import auth, room_versions
from outlast.core.errors import MatrixError
from outlast.core.room_versions import CREATOR_LEVEL, VERSIONS

ALICE, BOB, CAROL = "@alice:a.test", "@bob:b.test", "@carol:c.test"


def ev(etype: str, sender: str, content: dict[str, Any], key: str | None = "") -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": etype,
        "sender": sender,
        "content": content,
        "room_id": "!r:a.test",
    }
    if key is not None:
        event["state_key"] = key
    return event


def room(version: str, preset: str = "private_chat", invitees: tuple[str, ...] = ()) -> Any:
    """A room as createRoom would start it in ``version``, the creator joined."""
    rules = VERSIONS[version]
    create_content = room_versions.create_content(
        ALICE, rules, {}, preset=preset, invitees=invitees
    )
    state: dict[tuple[str, str], dict[str, Any]] = {}
    for event in (
        ev("m.room.create", ALICE, create_content),
        ev("m.room.member", ALICE, {"membership": "join"}, ALICE),
        ev(
            "m.room.power_levels",
            ALICE,
            auth.initial_power_levels(ALICE, preset, list(invitees), None, version),
        ),
        ev("m.room.join_rules", ALICE, {"join_rule": "public"}),
    ):
        if event["type"] == "m.room.create":
            auth.check_create(event)
        else:
            auth.check_event(event, state)
        state[(event["type"], event["state_key"])] = event
    return state


def test_capability_lists_exactly_the_creatable_versions() -> None:
    assert room_versions.capability() == {
        "default": "10",
        "available": {"10": "stable", "11": "stable", "12": "stable"},
    }
    assert room_versions.check_creatable("12") is VERSIONS["12"]
    with pytest.raises(MatrixError) as err:
        room_versions.check_creatable("9")
    assert (err.value.status, err.value.errcode) == (400, "M_UNSUPPORTED_ROOM_VERSION")


def test_create_content_per_version() -> None:
    given = {"creator": "@mallory:x", "room_version": "1", "m.federate": False, "type": "m.space"}
    v10 = room_versions.create_content(ALICE, VERSIONS["10"], given, preset="", invitees=())
    assert v10 == {"creator": ALICE, "room_version": "10", "m.federate": False, "type": "m.space"}
    v11 = room_versions.create_content(ALICE, VERSIONS["11"], given, preset="", invitees=())
    assert "creator" not in v11 and v11["room_version"] == "11"
    v12 = room_versions.create_content(
        ALICE,
        VERSIONS["12"],
        {"additional_creators": [BOB, ALICE]},
        preset="trusted_private_chat",
        invitees=(BOB, CAROL),
    )
    assert v12 == {"room_version": "12", "additional_creators": [BOB, CAROL]}
    plain = room_versions.create_content(
        ALICE, VERSIONS["11"], {"additional_creators": [BOB]}, preset="", invitees=()
    )
    assert "additional_creators" not in plain


def test_v10_create_needs_a_creator() -> None:
    auth.check_create(ev("m.room.create", ALICE, {"room_version": "10", "creator": ALICE}))
    with pytest.raises(MatrixError):
        auth.check_create(ev("m.room.create", ALICE, {"room_version": "10"}))
    auth.check_create(ev("m.room.create", ALICE, {"room_version": "11"}))


def test_v10_first_join_is_the_content_creator() -> None:
    create = ev("m.room.create", BOB, {"room_version": "10", "creator": ALICE})
    state = {("m.room.create", ""): create}
    auth.check_event(ev("m.room.member", ALICE, {"membership": "join"}, ALICE), state)
    with pytest.raises(MatrixError):
        auth.check_event(ev("m.room.member", BOB, {"membership": "join"}, BOB), state)


@pytest.mark.parametrize("version", ["10", "11"])
def test_creators_are_listed_at_100_before_v12(version: str) -> None:
    state = room(version)
    assert state[("m.room.power_levels", "")]["content"]["users"] == {ALICE: 100}
    assert auth.power_levels(state).user_level(ALICE) == 100


def test_v12_creators_are_infinite_and_unlisted() -> None:
    state = room("12", preset="trusted_private_chat", invitees=(BOB,))
    content = state[("m.room.power_levels", "")]["content"]
    assert content["users"] == {} and content["events"]["m.room.tombstone"] == 150
    levels = auth.power_levels(state)
    assert levels.user_level(ALICE) == levels.user_level(BOB) == CREATOR_LEVEL
    # A creator may give anyone the highest real level, but nobody can list a creator.
    auth.check_event(ev("m.room.power_levels", ALICE, {"users": {CAROL: 2**53 - 1}}), state)
    with pytest.raises(MatrixError):
        auth.check_event(ev("m.room.power_levels", ALICE, {"users": {BOB: 100}}), state)
    # Creators cannot be kicked, even by someone at a very high level.
    state[("m.room.member", BOB)] = ev("m.room.member", BOB, {"membership": "join"}, BOB)
    state[("m.room.member", CAROL)] = ev("m.room.member", CAROL, {"membership": "join"}, CAROL)
    state[("m.room.power_levels", "")]["content"]["users"] = {CAROL: 2**53 - 1}
    with pytest.raises(MatrixError):
        auth.check_event(ev("m.room.member", CAROL, {"membership": "leave"}, ALICE), state)
    auth.check_event(ev("m.room.member", ALICE, {"membership": "ban"}, CAROL), state)


def test_v12_create_event_rules() -> None:
    hashed = ev("m.room.create", ALICE, {"room_version": "12"})
    hashed["room_id"] = "!abcdef"  # no server part to compare
    auth.check_create(hashed)
    bad = ev("m.room.create", ALICE, {"room_version": "12", "additional_creators": ["nobody"]})
    with pytest.raises(MatrixError):
        auth.check_create(bad)
    with pytest.raises(MatrixError):
        auth.check_create(
            ev("m.room.create", ALICE, {"room_version": "12", "additional_creators": BOB})
        )
    other = ev("m.room.create", ALICE, {"room_version": "11"})
    other["room_id"] = "!abc:elsewhere.test"
    with pytest.raises(MatrixError):
        auth.check_create(other)


def test_v12_room_id_is_the_create_hash() -> None:
    create = {"type": "m.room.create", "sender": ALICE, "state_key": "", "content": {}}
    event_id = room_versions.create_event_id(create)
    assert event_id.startswith("$") and len(event_id) == 44
    assert room_versions.room_id_for(create) == "!" + event_id[1:]
    with_ids = dict(create, event_id=event_id, room_id="!x", unsigned={"age": 1})
    assert room_versions.create_event_id(with_ids) == event_id
    assert room_versions.create_event_id(dict(create, origin_server_ts=1)) != event_id


def test_unknown_versions_fall_back() -> None:
    assert room_versions.get("3") is VERSIONS["10"]
    assert room_versions.get(None) is VERSIONS["11"]
    assert room_versions.version_of({}) is VERSIONS["11"]
