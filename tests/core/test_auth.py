"""Unit tests for the pure room authorization rules in outlast.core.auth."""

from __future__ import annotations

from typing import Any

import pytest

from outlast.core import auth
from outlast.core.auth import State
from outlast.core.errors import MatrixError

ALICE = "@alice:a.test"  # creator, level 100
BOB = "@bob:b.test"
CAROL = "@carol:c.test"
DAVE = "@dave:d.test"
ROOM = "!room:a.test"


def ev(
    etype: str, sender: str, content: dict[str, Any], state_key: str | None = None
) -> dict[str, Any]:
    event: dict[str, Any] = {"type": etype, "sender": sender, "content": content, "room_id": ROOM}
    if state_key is not None:
        event["state_key"] = state_key
    return event


def member(sender: str, target: str, membership: str, **extra: Any) -> dict[str, Any]:
    return ev("m.room.member", sender, {"membership": membership, **extra}, target)


def make_room(
    creator: str = ALICE,
    join_rule: str | None = "invite",
    users: dict[str, Any] | None = None,
    members: dict[str, str] | None = None,
    pl: dict[str, Any] | None = None,
) -> dict[tuple[str, str], dict[str, Any]]:
    """A room state: create, creator joined, power levels, join rules, members."""
    state: dict[tuple[str, str], dict[str, Any]] = {}

    def put(event: dict[str, Any]) -> None:
        state[(event["type"], event["state_key"])] = event

    put(ev("m.room.create", creator, {"room_version": "11"}, ""))
    put(member(creator, creator, "join"))
    content = auth.initial_power_levels(creator, "private_chat", [], None)
    content["users"].update(users or {})
    content.update(pl or {})
    put(ev("m.room.power_levels", creator, content, ""))
    if join_rule is not None:
        put(ev("m.room.join_rules", creator, {"join_rule": join_rule}, ""))
    for user, membership in (members or {}).items():
        put(member(user, user, membership))
    return state


def allowed(event: dict[str, Any], state: State) -> None:
    auth.check_event(event, state)


def denied(event: dict[str, Any], state: State) -> MatrixError:
    with pytest.raises(MatrixError) as info:
        auth.check_event(event, state)
    assert info.value.status == 403
    assert info.value.errcode == "M_FORBIDDEN"
    return info.value


def apply(state: dict[tuple[str, str], dict[str, Any]], event: dict[str, Any]) -> None:
    auth.check_event(event, state)
    state[(event["type"], event["state_key"])] = event


# --- create -----------------------------------------------------------------


def test_create_is_allowed_on_empty_state() -> None:
    allowed(ev("m.room.create", ALICE, {"room_version": "11"}, ""), {})


def test_create_rejected_when_room_exists() -> None:
    denied(ev("m.room.create", ALICE, {}, ""), make_room())


@pytest.mark.parametrize(
    "event",
    [
        ev("m.room.create", ALICE, {}, "x"),
        ev("m.room.create", ALICE, {}),
        {**ev("m.room.create", ALICE, {}, ""), "room_id": "!room:elsewhere.test"},
        ev("m.room.create", ALICE, {"room_version": "999"}, ""),
        ev("m.room.create", "not-a-user", {}, ""),
        {**ev("m.room.create", ALICE, {}, ""), "prev_events": ["$x"]},
    ],
)
def test_check_create_rejects_invalid(event: dict[str, Any]) -> None:
    with pytest.raises(MatrixError):
        auth.check_create(event)


def test_event_without_create_is_rejected() -> None:
    denied(ev("m.room.message", ALICE, {"body": "hi"}), {})
    denied(member(ALICE, ALICE, "join"), {})


def test_creator_first_join_after_create() -> None:
    state: dict[tuple[str, str], dict[str, Any]] = {}
    create = ev("m.room.create", ALICE, {}, "")
    apply(state, create)
    denied(member(BOB, BOB, "join"), state)  # only the creator gets the shortcut
    apply(state, member(ALICE, ALICE, "join"))
    apply(
        state, ev("m.room.power_levels", ALICE, auth.initial_power_levels(ALICE, "", [], None), "")
    )


def test_no_federate_room_rejects_other_servers() -> None:
    state = make_room(join_rule="public")
    state[("m.room.create", "")]["content"]["m.federate"] = False
    denied(member(BOB, BOB, "join"), state)
    allowed(member("@eve:a.test", "@eve:a.test", "join"), state)


# --- defaults and helpers ---------------------------------------------------


def test_defaults_without_power_levels_event() -> None:
    state = {("m.room.create", ""): ev("m.room.create", ALICE, {}, "")}
    levels = auth.power_levels(state)
    assert levels.user_level(ALICE) == 100
    assert levels.user_level(BOB) == 0
    assert levels.event_level("m.room.topic", True) == 0
    assert levels.event_level("m.room.message", False) == 0
    assert (levels.ban, levels.kick, levels.redact, levels.invite) == (50, 50, 50, 0)


def test_defaults_with_empty_power_levels_event() -> None:
    state = {
        ("m.room.create", ""): ev("m.room.create", ALICE, {}, ""),
        ("m.room.power_levels", ""): ev("m.room.power_levels", ALICE, {}, ""),
    }
    levels = auth.power_levels(state)
    assert levels.user_level(ALICE) == 0  # the event exists, so no creator bonus
    assert levels.state_default == 50
    assert levels.events_default == 0 and levels.users_default == 0
    assert (levels.ban, levels.kick, levels.redact, levels.invite) == (50, 50, 50, 0)
    assert levels.notifications["room"] == 50


def test_garbage_power_levels_do_not_crash() -> None:
    content = {
        "users": {ALICE: "75", BOB: "lots", CAROL: None, DAVE: True, 5: 10},
        "events": {"m.room.topic": " 20 ", "m.room.name": [1], "x": 1.5},
        "state_default": {"a": 1},
        "ban": "9" * 5000,
        "kick": "-3",
        "invite": False,
        "notifications": "nope",
        "users_default": "",
    }
    state = make_room()
    state[("m.room.power_levels", "")] = ev("m.room.power_levels", ALICE, content, "")
    levels = auth.power_levels(state)
    assert levels.user_level(ALICE) == 75
    assert levels.user_level(BOB) == levels.user_level(CAROL) == levels.user_level(DAVE) == 0
    assert levels.event_level("m.room.topic", True) == 20
    assert levels.event_level("m.room.name", True) == 50
    assert levels.event_level("x", False) == 0
    assert (levels.ban, levels.kick, levels.invite) == (50, -3, 0)
    assert levels.notifications == {"room": 50}
    # Whole-event garbage too.
    state[("m.room.power_levels", "")] = {"type": "m.room.power_levels", "content": "junk"}
    assert auth.power_levels(state).state_default == 50


def test_membership_and_join_rule_defaults() -> None:
    state = make_room(join_rule=None, members={BOB: "invite"})
    assert auth.membership(state, ALICE) == "join"
    assert auth.membership(state, BOB) == "invite"
    assert auth.membership(state, CAROL) == "leave"
    assert auth.join_rule(state) == "invite"
    assert auth.join_rule(make_room(join_rule="public")) == "public"


def test_stripped_state_types() -> None:
    assert set(auth.stripped_state_types()) == {
        "m.room.create",
        "m.room.name",
        "m.room.avatar",
        "m.room.topic",
        "m.room.join_rules",
        "m.room.canonical_alias",
        "m.room.encryption",
    }


# --- joins ------------------------------------------------------------------


def test_join_public_room() -> None:
    allowed(member(BOB, BOB, "join"), make_room(join_rule="public"))


def test_join_invite_only_room_needs_invite() -> None:
    denied(member(BOB, BOB, "join"), make_room())
    allowed(member(BOB, BOB, "join"), make_room(members={BOB: "invite"}))


def test_profile_change_while_joined() -> None:
    state = make_room(members={BOB: "join"})
    allowed(member(BOB, BOB, "join", displayname="Bobby"), state)


def test_cannot_join_for_someone_else() -> None:
    denied(member(ALICE, BOB, "join"), make_room(join_rule="public"))


@pytest.mark.parametrize("rule", ["public", "invite"])
def test_banned_user_cannot_rejoin(rule: str) -> None:
    denied(member(BOB, BOB, "join"), make_room(join_rule=rule, members={BOB: "ban"}))


def test_kicked_user_rejoins_public_but_not_invite_only() -> None:
    for rule, ok in (("public", True), ("invite", False)):
        state = make_room(join_rule=rule, members={BOB: "join"})
        apply(state, member(ALICE, BOB, "leave"))
        if ok:
            allowed(member(BOB, BOB, "join"), state)
        else:
            denied(member(BOB, BOB, "join"), state)


def test_private_or_unknown_join_rule_rejects() -> None:
    denied(member(BOB, BOB, "join"), make_room(join_rule="private"))
    denied(member(BOB, BOB, "join"), make_room(join_rule="weird"))


def test_restricted_join() -> None:
    state = make_room(join_rule="restricted")
    denied(member(BOB, BOB, "join"), state)
    via = {"join_authorised_via_users_server": ALICE}
    allowed(member(BOB, BOB, "join", **via), state)
    state = make_room(join_rule="restricted", pl={"invite": 50}, members={CAROL: "join"})
    denied(member(BOB, BOB, "join", join_authorised_via_users_server=CAROL), state)


# --- invites ----------------------------------------------------------------


def test_invite_by_member() -> None:
    allowed(member(ALICE, BOB, "invite"), make_room())


def test_invite_needs_invite_level() -> None:
    state = make_room(pl={"invite": 50}, members={BOB: "join"})
    denied(member(BOB, CAROL, "invite"), state)
    allowed(member(ALICE, CAROL, "invite"), state)


def test_invite_needs_sender_joined() -> None:
    denied(member(BOB, CAROL, "invite"), make_room(members={BOB: "invite"}))


def test_cannot_invite_joined_or_banned() -> None:
    state = make_room(members={BOB: "join", CAROL: "ban"})
    denied(member(ALICE, BOB, "invite"), state)
    denied(member(ALICE, CAROL, "invite"), state)


def test_third_party_invites_refused() -> None:
    denied(member(ALICE, BOB, "invite", third_party_invite={"signed": {}}), make_room())


# --- leave, kick, ban, unban ------------------------------------------------


@pytest.mark.parametrize("current", ["join", "invite"])
def test_self_leave_or_reject(current: str) -> None:
    allowed(member(BOB, BOB, "leave"), make_room(members={BOB: current}))


def test_banned_user_cannot_unban_by_leaving() -> None:
    denied(member(BOB, BOB, "leave"), make_room(members={BOB: "ban"}))


def test_cannot_leave_when_not_in_room() -> None:
    denied(member(BOB, BOB, "leave"), make_room())


def test_kick() -> None:
    state = make_room(users={BOB: 50}, members={BOB: "join", CAROL: "join"})
    allowed(member(BOB, CAROL, "leave"), state)  # 50 >= kick, target 0 < 50
    denied(member(CAROL, BOB, "leave"), state)  # 0 < kick
    denied(member(BOB, ALICE, "leave"), state)  # target above sender


def test_cannot_kick_equal_level() -> None:
    state = make_room(users={BOB: 50, CAROL: 50}, members={BOB: "join", CAROL: "join"})
    denied(member(BOB, CAROL, "leave"), state)


def test_kick_needs_sender_joined() -> None:
    state = make_room(users={BOB: 100}, members={BOB: "invite", CAROL: "join"})
    denied(member(BOB, CAROL, "leave"), state)


def test_ban() -> None:
    state = make_room(users={BOB: 50}, members={BOB: "join", CAROL: "join"})
    allowed(member(BOB, CAROL, "ban"), state)
    allowed(member(BOB, DAVE, "ban"), state)  # pre-emptive ban of a non-member
    denied(member(CAROL, BOB, "ban"), state)
    denied(member(BOB, ALICE, "ban"), state)
    denied(member(ALICE, ALICE, "ban"), state)  # never strictly above yourself


def test_unban_requires_ban_power() -> None:
    state = make_room(
        pl={"kick": 10, "ban": 60}, users={BOB: 50}, members={BOB: "join", CAROL: "ban"}
    )
    denied(member(BOB, CAROL, "leave"), state)  # can kick, cannot unban
    allowed(member(ALICE, CAROL, "leave"), state)
    state = make_room(
        pl={"kick": 60, "ban": 10}, users={BOB: 50}, members={BOB: "join", CAROL: "ban"}
    )
    denied(member(BOB, CAROL, "leave"), state)  # unban also needs the kick level


def test_unknown_membership_rejected() -> None:
    state = make_room(join_rule="knock")
    denied(member(BOB, BOB, "wander"), state)
    denied(ev("m.room.member", BOB, {}, BOB), state)
    denied(ev("m.room.member", BOB, {"membership": "join"}), state)


def _versioned(version: str, join_rule: str, **members: str) -> State:
    state = make_room(join_rule=join_rule, members={CAROL: "join", **members})
    create = ev("m.room.create", ALICE, {"room_version": version, "creator": ALICE}, "")
    return {**state, ("m.room.create", ""): create}


def test_knock_allowed_only_where_the_join_rule_and_room_version_say() -> None:
    allowed(member(BOB, BOB, "knock", reason="let me in"), make_room(join_rule="knock"))
    allowed(member(BOB, BOB, "knock"), make_room(join_rule="knock_restricted"))
    for rule in ("invite", "public", "restricted", None):
        denied(member(BOB, BOB, "knock"), make_room(join_rule=rule))  # step 4.7.1
    allowed(member(BOB, BOB, "knock"), _versioned("7", "knock"))
    denied(member(BOB, BOB, "knock"), _versioned("9", "knock_restricted"))  # v10 added it
    allowed(member(BOB, BOB, "knock"), _versioned("10", "knock_restricted"))
    denied(member(BOB, BOB, "knock"), _versioned("6", "knock"))  # unknown before v7 (4.8)


def test_knock_by_member_banned_invited_or_for_another_user_rejected() -> None:
    for current in ("join", "invite", "ban"):
        denied(member(BOB, BOB, "knock"), make_room(join_rule="knock", members={BOB: current}))
    allowed(member(BOB, BOB, "knock"), make_room(join_rule="knock", members={BOB: "leave"}))
    allowed(member(BOB, BOB, "knock"), make_room(join_rule="knock", members={BOB: "knock"}))
    denied(member(ALICE, BOB, "knock"), make_room(join_rule="knock"))  # step 4.7.2


def test_knock_accepted_by_invite_denied_by_kick_rescinded_by_leave() -> None:
    state = make_room(join_rule="knock", members={BOB: "knock"})
    allowed(member(ALICE, BOB, "invite"), state)  # accept: 4.4.3 allows knock -> invite
    allowed(member(ALICE, BOB, "leave"), state)  # deny: a kick of the knock
    allowed(member(BOB, BOB, "leave"), state)  # rescind: 4.5.1
    denied(member(BOB, BOB, "join"), state)  # a knock alone never admits (4.3.4)


def test_knock_restricted_join_rule_needs_room_version_10() -> None:
    via = {"join_authorised_via_users_server": ALICE}
    allowed(member(BOB, BOB, "join", **via), _versioned("10", "knock_restricted"))
    denied(member(BOB, BOB, "join", **via), _versioned("9", "knock_restricted"))


# --- ordinary events and state ----------------------------------------------


def test_non_member_cannot_send() -> None:
    state = make_room(join_rule="public", members={CAROL: "invite", DAVE: "leave"})
    for user in (BOB, CAROL, DAVE):
        denied(ev("m.room.message", user, {"body": "hi"}), state)


def test_member_can_send_message() -> None:
    allowed(ev("m.room.message", BOB, {"body": "hi"}), make_room(members={BOB: "join"}))


def test_state_event_needs_state_default() -> None:
    state = make_room(members={BOB: "join"})
    err = denied(ev("m.room.topic", BOB, {"topic": "x"}, ""), state)
    assert "m.room.topic" in err.error
    allowed(ev("m.room.topic", ALICE, {"topic": "x"}, ""), state)


def test_events_level_overrides_defaults() -> None:
    state = make_room(members={BOB: "join"}, pl={"events_default": 10})
    denied(ev("m.room.message", BOB, {}), state)
    state = make_room(members={BOB: "join"})
    state[("m.room.power_levels", "")]["content"]["events"]["m.room.topic"] = 0
    allowed(ev("m.room.topic", BOB, {"topic": "x"}, ""), state)


def test_user_keyed_state_belongs_to_that_user() -> None:
    state = make_room(members={BOB: "join"}, pl={"state_default": 0})
    allowed(ev("org.example.status", BOB, {}, BOB), state)
    denied(ev("org.example.status", BOB, {}, CAROL), state)
    denied(ev("org.example.status", ALICE, {}, BOB), state)  # even for admins


def test_third_party_invite_event_needs_invite_level() -> None:
    state = make_room(pl={"invite": 50}, members={BOB: "join"})
    denied(ev("m.room.third_party_invite", BOB, {}, "tok"), state)
    allowed(ev("m.room.third_party_invite", ALICE, {}, "tok"), state)


def test_malformed_events_rejected() -> None:
    state = make_room()
    denied({"type": "m.room.message", "sender": ALICE, "content": "x"}, state)
    denied({"type": "m.room.message", "content": {}}, state)
    denied({"type": "m.room.topic", "sender": ALICE, "content": {}, "state_key": 3}, state)


# --- power level changes ----------------------------------------------------


def pl_change(state: State, sender: str, **changes: Any) -> dict[str, Any]:
    content = dict(state[("m.room.power_levels", "")]["content"])
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(content.get(key), dict):
            merged = {**content[key], **value}
            content[key] = {k: v for k, v in merged.items() if v is not None}
        else:
            content[key] = value
    return ev("m.room.power_levels", sender, content, "")


def mod_room() -> dict[tuple[str, str], dict[str, Any]]:
    """Alice 100, Bob and Carol moderators at 50, Dave 0; power_levels needs 50."""
    state = make_room(
        users={BOB: 50, CAROL: 50},
        members={BOB: "join", CAROL: "join", DAVE: "join"},
    )
    state[("m.room.power_levels", "")]["content"]["events"]["m.room.power_levels"] = 50
    return state


def test_pl_first_event_may_set_anything() -> None:
    state = {("m.room.create", ""): ev("m.room.create", ALICE, {}, "")}
    apply(state, member(ALICE, ALICE, "join"))
    allowed(ev("m.room.power_levels", ALICE, {"users": {ALICE: 9000}, "ban": 9000}, ""), state)


def test_pl_sender_needs_event_level() -> None:
    denied(pl_change(mod_room(), DAVE, users={DAVE: 0}), mod_room())


def test_pl_can_promote_up_to_own_level() -> None:
    state = mod_room()
    allowed(pl_change(state, BOB, users={DAVE: 50}), state)


def test_pl_cannot_raise_someone_above_own_level() -> None:
    state = mod_room()
    denied(pl_change(state, BOB, users={DAVE: 51}), state)
    denied(pl_change(state, BOB, users={BOB: 51}), state)  # nor yourself


def test_pl_cannot_lower_someone_at_own_level_except_self() -> None:
    state = mod_room()
    denied(pl_change(state, BOB, users={CAROL: 0}), state)
    denied(pl_change(state, BOB, users={CAROL: None}), state)  # removal is a change too
    denied(pl_change(state, BOB, users={ALICE: 0}), state)
    allowed(pl_change(state, BOB, users={BOB: 10}), state)


def test_pl_can_demote_lower_users() -> None:
    state = mod_room()
    state[("m.room.power_levels", "")]["content"]["users"][DAVE] = 20
    allowed(pl_change(state, BOB, users={DAVE: None}), state)


def test_pl_top_level_keys_bounded_by_sender() -> None:
    state = mod_room()
    allowed(pl_change(state, BOB, kick=40), state)
    denied(pl_change(state, BOB, kick=60), state)  # new value too high
    state[("m.room.power_levels", "")]["content"]["ban"] = 80
    denied(pl_change(state, BOB, ban=10), state)  # old value too high
    content = dict(state[("m.room.power_levels", "")]["content"])
    del content["ban"]
    denied(ev("m.room.power_levels", BOB, content, ""), state)  # removing is changing


def test_pl_events_and_notifications_bounded_by_sender() -> None:
    state = mod_room()
    allowed(pl_change(state, BOB, events={"m.room.topic": 50}), state)
    denied(pl_change(state, BOB, events={"m.room.topic": 75}), state)
    denied(pl_change(state, BOB, events={"m.room.tombstone": 50}), state)  # old value 100
    denied(pl_change(state, BOB, events={"m.room.tombstone": None}), state)
    denied(pl_change(state, BOB, notifications={"room": 51}), state)
    allowed(pl_change(state, BOB, notifications={"room": 20}), state)
    allowed(pl_change(state, ALICE, notifications={"room": 100}), state)


def test_pl_unchanged_high_values_are_fine() -> None:
    state = mod_room()  # tombstone at 100 and Alice at 100 remain untouched
    allowed(pl_change(state, BOB, events={"m.room.topic": 40}), state)


@pytest.mark.parametrize(
    "changes",
    [
        {"ban": "50"},
        {"kick": 5.0},
        {"invite": True},
        {"users": {BOB: "50"}},
        {"users": {"bob": 0}},
        {"users": []},
        {"events": {"m.room.topic": None}},
        {"events": "all"},
        {"notifications": {"room": "50"}},
    ],
)
def test_pl_values_must_be_integers(changes: dict[str, Any]) -> None:
    state = mod_room()
    content = {**state[("m.room.power_levels", "")]["content"], **changes}
    denied(ev("m.room.power_levels", ALICE, content, ""), state)


# --- redactions -------------------------------------------------------------


def test_redact_own_event() -> None:
    state = make_room(members={BOB: "join"})
    auth.check_redaction(BOB, BOB, state)


def test_redact_others_needs_redact_level() -> None:
    state = make_room(members={BOB: "join", CAROL: "join"})
    with pytest.raises(MatrixError):
        auth.check_redaction(BOB, CAROL, state)
    with pytest.raises(MatrixError):
        auth.check_redaction(BOB, None, state)
    auth.check_redaction(ALICE, BOB, state)


def test_redaction_event_level_applies_to_own_events() -> None:
    state = make_room(members={BOB: "join"})
    state[("m.room.power_levels", "")]["content"]["events"]["m.room.redaction"] = 10
    with pytest.raises(MatrixError):
        auth.check_redaction(BOB, BOB, state)


def test_redaction_requires_membership() -> None:
    with pytest.raises(MatrixError):
        auth.check_redaction(BOB, BOB, make_room())


# --- initial power levels ---------------------------------------------------


def test_initial_power_levels_private_chat() -> None:
    content = auth.initial_power_levels(ALICE, "private_chat", [BOB], None)
    assert content["users"] == {ALICE: 100}
    assert content["invite"] == 0
    assert content["events"]["m.room.power_levels"] == 100
    assert content["events"]["m.room.name"] == 50
    assert (content["state_default"], content["events_default"], content["users_default"]) == (
        50,
        0,
        0,
    )
    assert (content["ban"], content["kick"], content["redact"]) == (50, 50, 50)


def test_initial_power_levels_presets_and_override() -> None:
    trusted = auth.initial_power_levels(ALICE, "trusted_private_chat", [BOB, CAROL], None)
    assert trusted["users"] == {ALICE: 100, BOB: 100, CAROL: 100}
    public = auth.initial_power_levels(ALICE, "public_chat", [BOB], None)
    assert public["users"] == {ALICE: 100} and public["invite"] == 50
    override = {"users": {BOB: 100}, "ban": 75}
    merged = auth.initial_power_levels(ALICE, "public_chat", [], override)
    assert merged["users"] == {BOB: 100}  # shallow: the override replaces whole keys
    assert merged["ban"] == 75 and merged["kick"] == 50
    merged["users"][CAROL] = 1
    assert override["users"] == {BOB: 100}  # the caller's dict is not aliased


def test_trusted_invitees_are_peers_of_the_creator() -> None:
    content = auth.initial_power_levels(ALICE, "trusted_private_chat", [BOB], None)
    state = make_room(users=content["users"], members={BOB: "join"})
    denied(pl_change(state, ALICE, users={BOB: 50}), state)  # equal level: untouchable
    allowed(pl_change(state, BOB, users={BOB: 50}), state)  # but Bob may step down
