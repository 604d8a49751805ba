"""Unit tests for restricted joins (outlast.core.restricted)."""

from __future__ import annotations

from typing import Any

from outlast.core import auth, restricted
from tests.core.test_auth import ALICE, BOB, CAROL, DAVE, ev, make_room, member

SPACE = "!space:a.test"


def restricted_room(rule: str = "restricted", version: str = "11", **members: Any) -> auth.State:
    state = make_room(join_rule=None, users={BOB: 50}, members={BOB: "join", **members})
    allow = [{"type": "m.room_membership", "room_id": SPACE}, {"type": "m.other"}, "junk"]
    content = {"join_rule": rule, "allow": allow}
    create = ev("m.room.create", ALICE, {"room_version": version, "creator": ALICE}, "")
    return {
        **state,
        ("m.room.create", ""): create,
        ("m.room.join_rules", ""): ev("m.room.join_rules", ALICE, content, ""),
    }


def test_allowed_rooms_reads_only_membership_conditions() -> None:
    assert restricted.allowed_rooms(restricted_room()) == [SPACE]
    assert restricted.allowed_rooms(make_room(join_rule="invite")) == []


def test_a_member_of_an_allowed_room_is_vouched_for_by_the_highest_member() -> None:
    state = restricted_room()
    who = restricted.authoriser(state, DAVE, [SPACE, "!elsewhere:a.test"])
    assert who == ALICE  # level 100 beats Bob's 50
    join = member(DAVE, DAVE, "join", join_authorised_via_users_server=who)
    auth.check_event(join, state)


def test_no_vouch_when_not_needed_or_not_possible() -> None:
    state = restricted_room(**{CAROL: "invite"})
    assert restricted.authoriser(state, DAVE, ["!elsewhere:a.test"]) is None
    assert restricted.authoriser(state, CAROL, [SPACE]) is None  # invited: joins anyway
    assert restricted.authoriser(state, BOB, [SPACE]) is None  # already joined
    assert restricted.authoriser(make_room(join_rule="public"), DAVE, [SPACE]) is None


def test_knock_restricted_needs_room_version_10() -> None:
    assert restricted.authoriser(restricted_room("knock_restricted", "10"), DAVE, [SPACE])
    assert restricted.authoriser(restricted_room("knock_restricted", "9"), DAVE, [SPACE]) is None


def test_nobody_who_may_invite_means_no_vouch() -> None:
    state = restricted_room()
    levels = dict(state[("m.room.power_levels", "")])
    levels["content"] = {**levels["content"], "invite": 200}
    state = {**state, ("m.room.power_levels", ""): levels}
    assert restricted.authoriser(state, DAVE, [SPACE]) is None
