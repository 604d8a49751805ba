"""Push rule evaluation with the default ruleset, from the spec's rule definitions."""

from __future__ import annotations

import random
from typing import Any

import pytest

from outlast.core import auth, pushrules
from outlast.core.push_eval import (
    NOTHING,
    Outcome,
    Recipient,
    compile_rules,
    evaluate,
)

ALICE = "@alice:example.org"
BOB = "@bob:example.org"
ROOM = "!room:example.org"
LEVELS = auth.power_levels(
    {("m.room.power_levels", ""): {"content": {"users": {BOB: 50}, "users_default": 0}}}
)


def recipient(members: int = 5, name: str | None = "Alice Liddell") -> Recipient:
    return Recipient(ALICE, name, members, LEVELS)


def event(etype: str = "m.room.message", sender: Any = BOB, **content: Any) -> dict[str, Any]:
    return {
        "type": etype,
        "sender": sender,
        "room_id": ROOM,
        "event_id": "$e",
        "content": content,
    }


def message(body: str, sender: Any = BOB, **content: Any) -> dict[str, Any]:
    return event("m.room.message", sender, **{"msgtype": "m.text", "body": body, **content})


def outcome(ev: dict[str, Any], doc: Any = None, who: Recipient | None = None) -> Outcome:
    return evaluate(compile_rules(ALICE, doc), ev, who or recipient())


def rule_of(ev: dict[str, Any], doc: Any = None, who: Recipient | None = None) -> str | None:
    return outcome(ev, doc, who).rule_id


SOUND = {"set_tweak": "sound", "value": "default"}
HIGHLIGHT = {"set_tweak": "highlight"}


def test_plain_group_message_notifies_without_sound() -> None:
    got = outcome(message("hello"))
    assert (got.rule_id, got.kind, got.actions) == (".m.rule.message", "underride", ("notify",))
    assert got.notify and not got.highlight and got.tweaks == {}


def test_one_to_one_rooms_ring() -> None:
    got = outcome(message("hello"), who=recipient(members=2))
    assert got.rule_id == ".m.rule.room_one_to_one" and got.tweaks == {"sound": "default"}
    enc = event("m.room.encrypted", algorithm="m.megolm.v1.aes-sha2", ciphertext="x")
    assert rule_of(enc, who=recipient(members=2)) == ".m.rule.encrypted_room_one_to_one"
    assert rule_of(enc) == ".m.rule.encrypted"
    assert outcome(enc).actions == ("notify",)


def test_calls_ring() -> None:
    got = outcome(event("m.call.invite", call_id="c", version=1))
    assert got.rule_id == ".m.rule.call" and got.tweaks == {"sound": "ring"}


@pytest.mark.parametrize(
    ("ev", "rule_id"),
    [
        (message("fyi", msgtype="m.notice"), ".m.rule.suppress_notices"),
        (
            {**event("m.room.member", membership="join"), "state_key": BOB},
            ".m.rule.member_event",
        ),
        (event("m.reaction"), ".m.rule.reaction"),
        ({**event("m.room.server_acl", allow=["*"]), "state_key": ""}, ".m.rule.room.server_acl"),
        (
            message("* fixed", **{"m.relates_to": {"rel_type": "m.replace", "event_id": "$o"}}),
            ".m.rule.suppress_edits",
        ),
    ],
)
def test_suppressing_overrides(ev: dict[str, Any], rule_id: str) -> None:
    got = outcome(ev)
    assert got.rule_id == rule_id and not got.notify and got.actions == ()


def test_invite_for_me_but_not_for_others() -> None:
    invite = {**event("m.room.member", membership="invite"), "state_key": ALICE}
    got = outcome(invite)
    assert got.rule_id == ".m.rule.invite_for_me" and got.notify and not got.highlight
    assert rule_of({**invite, "state_key": "@carol:example.org"}) == ".m.rule.member_event"


def test_intentional_user_mention_highlights() -> None:
    ev = message("hi", **{"m.mentions": {"user_ids": [ALICE]}})
    got = outcome(ev)
    assert got.rule_id == ".m.rule.is_user_mention"
    assert got.highlight and got.tweaks == {"sound": "default", "highlight": True}
    other = message("hi", **{"m.mentions": {"user_ids": ["@carol:example.org"]}})
    assert rule_of(other) == ".m.rule.message"


def test_room_mention_needs_the_notifications_power_level() -> None:
    ev = message("all", **{"m.mentions": {"room": True}})
    assert rule_of(ev) == ".m.rule.is_room_mention"  # Bob has 50, room needs 50
    assert outcome(ev).highlight
    assert rule_of(
        message("all", sender="@carol:example.org", **{"m.mentions": {"room": True}})
    ) == (".m.rule.message")
    assert rule_of(message("all", **{"m.mentions": {"room": "true"}})) == ".m.rule.message"
    strict = Recipient(
        ALICE,
        None,
        5,
        auth.power_levels(
            {
                ("m.room.power_levels", ""): {
                    "content": {"users": {BOB: 50}, "notifications": {"room": 60}}
                }
            }
        ),
    )
    assert rule_of(ev, who=strict) == ".m.rule.message"


def test_legacy_body_mentions_apply_only_without_m_mentions() -> None:
    assert rule_of(message("Alice Liddell, lunch?")) == ".m.rule.contains_display_name"
    assert rule_of(message("lunch, alice?")) == ".m.rule.contains_user_name"
    assert outcome(message("lunch, alice?")).highlight
    assert rule_of(message("@room lunch!")) == ".m.rule.roomnotif"
    assert rule_of(message("@room lunch!", sender="@carol:example.org")) == ".m.rule.message"
    for body in ("Alice Liddell, lunch?", "lunch, alice?", "@room lunch!"):
        assert rule_of(message(body, **{"m.mentions": {}})) == ".m.rule.message"
    assert rule_of(message("malice aforethought")) == ".m.rule.message"
    assert rule_of(message("hi Liddell"), who=recipient(name=None)) == ".m.rule.message"
    assert rule_of(message("hi Liddell"), who=recipient(name=" ")) == ".m.rule.message"
    assert rule_of(message("hi Liddell")) == ".m.rule.message"  # the whole name is needed
    liddell = recipient(name="Liddell")
    assert rule_of(message("hi liddell!"), who=liddell) == ".m.rule.contains_display_name"


def test_tombstone_needs_the_empty_state_key() -> None:
    tomb = {**event("m.room.tombstone", replacement_room="!new:x", body="moved"), "state_key": ""}
    got = outcome(tomb)
    assert got.rule_id == ".m.rule.tombstone" and got.highlight
    assert rule_of({**tomb, "state_key": "x"}) is None
    assert rule_of(event("m.room.tombstone", replacement_room="!new:x")) is None  # not state


def test_no_rule_no_notification_and_own_events_never() -> None:
    assert outcome(event("m.room.topic", topic="t")) == NOTHING
    assert outcome(message("hi alice", sender=ALICE)) == NOTHING
    assert outcome(message("hi", **{"m.mentions": {"user_ids": [ALICE]}}), who=None).notify


def test_master_rule_silences_everything() -> None:
    doc = pushrules.set_attribute(ALICE, None, "override", ".m.rule.master", "enabled", True)
    got = outcome(message("hi", **{"m.mentions": {"user_ids": [ALICE]}}), doc)
    assert got.rule_id == ".m.rule.master" and not got.notify


def test_disabled_and_edited_default_rules() -> None:
    doc = pushrules.set_attribute(
        ALICE, None, "override", ".m.rule.suppress_notices", "enabled", False
    )
    assert rule_of(message("fyi", msgtype="m.notice"), doc) == ".m.rule.message"
    bing = {"set_tweak": "sound", "value": "bing"}
    doc = pushrules.set_attribute(
        ALICE, doc, "underride", ".m.rule.message", "actions", ["notify", bing]
    )
    assert outcome(message("x"), doc).tweaks == {"sound": "bing"}


def test_spec_api_examples() -> None:
    """The curl examples of the spec's "Push Rules: API" section, in order."""
    doc = pushrules.put_rule(ALICE, None, "room", ROOM, {"actions": []})
    assert rule_of(message("hi"), doc) == ROOM and not outcome(message("hi"), doc).notify
    doc = pushrules.put_rule(ALICE, doc, "sender", "@spambot:matrix.org", {"actions": []})
    assert rule_of(message("buy", sender="@spambot:matrix.org"), doc) == ROOM  # room wins
    doc = pushrules.delete_rule(doc, "room", ROOM)
    assert rule_of(message("buy", sender="@spambot:matrix.org"), doc) == "@spambot:matrix.org"
    cake_sound = {"set_tweak": "sound", "value": "cakealarm.wav"}
    doc = pushrules.put_rule(
        ALICE, doc, "content", "cake", {"pattern": "cake", "actions": ["notify", cake_sound]}
    )
    assert outcome(message("Cake is great"), doc).tweaks == {"sound": "cakealarm.wav"}
    doc = pushrules.put_rule(
        ALICE, doc, "content", "lie", {"pattern": "cake*lie", "actions": ["notify"]}, before="cake"
    )
    assert rule_of(message("the cake is a lie"), doc) == "lie"
    assert rule_of(message("cake"), doc) == "cake"
    beer = {"set_tweak": "sound", "value": "beeroclock.wav"}
    body = {
        "conditions": [
            {"kind": "event_match", "key": "content.body", "pattern": "beer"},
            {"kind": "room_member_count", "is": "<=10"},
        ],
        "actions": ["notify", beer],
    }
    doc = pushrules.put_rule(ALICE, doc, "override", "beer", body)
    assert outcome(message("beer and cake?"), doc).tweaks == {"sound": "beeroclock.wav"}
    assert rule_of(message("beer and cake?"), doc, recipient(members=11)) == "cake"


@pytest.mark.parametrize(
    ("spec", "count", "matches"),
    [
        ("2", 2, True),
        ("2", 3, False),
        ("==2", 2, True),
        ("<3", 2, True),
        ("<3", 3, False),
        (">3", 4, True),
        (">3", 3, False),
        ("<=3", 3, True),
        (">=3", 3, True),
        (">=3", 2, False),
        ("=2", 2, False),
        ("two", 2, False),
        ("", 0, False),
        ("<", 0, False),
        ("-1", 0, False),
    ],
)
def test_room_member_count(spec: str, count: int, matches: bool) -> None:
    rule = {"conditions": [{"kind": "room_member_count", "is": spec}], "actions": ["notify"]}
    doc = pushrules.put_rule(ALICE, None, "override", "count", rule)
    assert (rule_of(event("x.custom"), doc, recipient(members=count)) == "count") is matches


def override(*conditions: Any, actions: list[Any] | None = None) -> Any:
    body = {"conditions": list(conditions), "actions": actions or ["notify"]}
    return pushrules.put_rule(ALICE, None, "override", "mine", body)


def test_event_property_is_and_contains_examples() -> None:
    create = {
        **event("m.room.create", creator=BOB, room_version="1", **{"m.federate": True}),
        "state_key": "",
    }
    doc = override({"kind": "event_property_is", "key": "content.m\\.federate", "value": True})
    assert rule_of(create, doc) == "mine"
    for value in ("true", 1):
        other = {**create, "content": {"m.federate": value}}
        assert rule_of(other, doc) is None
    alias = event(
        "m.room.canonical_alias", alt_aliases=["#somewhere:example.org", "#myroom:example.com", 3]
    )
    contains = {"kind": "event_property_contains", "key": "content.alt_aliases"}
    assert rule_of(alias, override({**contains, "value": "#myroom:example.com"})) == "mine"
    assert rule_of(alias, override({**contains, "value": ":example.com"})) is None
    assert rule_of(alias, override({**contains, "value": 3})) == "mine"
    nulls = event("x.t", flag=None)
    assert (
        rule_of(
            nulls, override({"kind": "event_property_is", "key": "content.flag", "value": None})
        )
        == "mine"
    )
    assert (
        rule_of(
            nulls, override({"kind": "event_property_is", "key": "content.gone", "value": None})
        )
        is None
    )


def test_event_match_needs_a_string_even_for_star() -> None:
    doc = override({"kind": "event_match", "key": "content.n", "pattern": "*"})
    assert rule_of(event("x.t", n="1"), doc) == "mine"
    assert rule_of(event("x.t", n=1), doc) is None
    assert rule_of(event("x.t"), doc) is None


@pytest.mark.parametrize(
    "condition",
    [
        {"kind": "unknown_kind"},
        {"kind": "event_match", "key": "type"},
        {"kind": "event_match", "pattern": "x"},
        {"kind": "event_property_is", "key": "content.x", "value": [1]},
        {"kind": "event_property_contains", "key": "content.x"},
        {"kind": "sender_notification_permission"},
        {"kind": "room_member_count"},
    ],
)
def test_unrecognised_or_malformed_conditions_never_match(condition: dict[str, Any]) -> None:
    doc = override(condition)
    assert rule_of(message("hello", x=[1]), doc) == ".m.rule.message"


def test_legacy_actions_are_ignored() -> None:
    doc = {
        "rules": {"override": [{"rule_id": "old", "conditions": [], "actions": ["dont_notify"]}]}
    }
    got = outcome(message("hi"), doc)
    assert got.rule_id == "old" and got.actions == () and not got.notify
    doc = {
        "rules": {
            "override": [{"rule_id": "old", "conditions": [], "actions": ["notify", "coalesce"]}]
        }
    }
    assert outcome(message("hi"), doc).actions == ("notify",)


def test_highlight_tweak_values() -> None:
    assert Outcome(("notify", HIGHLIGHT)).highlight
    assert Outcome(("notify", {"set_tweak": "highlight", "value": True})).highlight
    assert not Outcome(("notify", {"set_tweak": "highlight", "value": False})).highlight
    assert not Outcome((HIGHLIGHT,)).highlight  # no notify, no notification at all
    assert Outcome(("notify", SOUND, {"set_tweak": "led", "value": "blue"})).tweaks == {
        "sound": "default",
        "led": "blue",
    }


def test_kinds_are_checked_in_spec_order() -> None:
    doc = None
    rules: list[tuple[str, str, dict[str, Any]]] = [
        ("underride", "u", {"conditions": [], "actions": ["notify"]}),
        ("sender", BOB, {"actions": []}),
        ("room", ROOM, {"actions": ["notify"]}),
        ("content", "c", {"pattern": "tea", "actions": ["notify", SOUND]}),
        (
            "override",
            "o",
            {
                "conditions": [{"kind": "event_match", "key": "content.body", "pattern": "time"}],
                "actions": [],
            },
        ),
    ]
    for kind, rule_id, body in rules:
        doc = pushrules.put_rule(ALICE, doc, kind, rule_id, body)
    assert rule_of(message("It's time for tea"), doc) == "o"
    assert rule_of(message("tea?"), doc) == "c"
    assert rule_of(message("coffee?"), doc) == ROOM
    assert rule_of({**message("coffee?"), "room_id": "!other:x"}, doc) == BOB
    assert rule_of({**event("x.custom"), "room_id": "!other:x", "sender": "@c:x"}, doc) == "u"
    assert rule_of(message("teapot"), doc) == ROOM  # content rules match whole words


def test_type_conditions_are_case_insensitive_globs() -> None:
    doc = override({"kind": "event_match", "key": "type", "pattern": "M.Room.Message"})
    assert rule_of(message("x"), doc) == "mine"
    doc = override({"kind": "event_match", "key": "type", "pattern": "m.room.*"})
    assert rule_of(message("x"), doc) == "mine"
    assert rule_of(event("m.call.invite"), doc) == ".m.rule.call"
    assert rule_of({**message("x"), "type": 7}) is None  # a non-string type matches no type rule


def test_a_memo_shared_by_an_events_recipients_changes_no_outcome() -> None:
    """The projector evaluates an event for every member with one memo; each outcome must
    be what evaluating that member alone gives, whatever their names and own rules."""
    rng = random.Random(7)
    users = [f"@u{i}:example.org" for i in range(6)]
    names = ["Ann", "Ben", None, "Ann", "Cy Young", ""]
    bing = {"set_tweak": "sound", "value": "bing"}
    docs: list[Any] = [None, None]
    docs.append(
        pushrules.set_attribute(
            users[2], None, "override", ".m.rule.suppress_notices", "enabled", False
        )
    )
    docs.append(
        pushrules.set_attribute(
            users[3], None, "underride", ".m.rule.message", "actions", ["notify", bing]
        )
    )
    docs.append(
        pushrules.put_rule(
            users[4], None, "content", "lunch", {"pattern": "lunch", "actions": ["notify", bing]}
        )
    )
    docs.append(pushrules.put_rule(users[5], None, "room", ROOM, {"actions": []}))
    rules = [compile_rules(u, d) for u, d in zip(users, docs, strict=True)]
    words = ["hi", "lunch", "Ann", "ben", "u3", "@room", "Cy Young", "young", "x"]
    for _ in range(400):
        body = " ".join(rng.choice(words) for _ in range(rng.randint(0, 4)))
        content: dict[str, Any] = {"body": body, "msgtype": rng.choice(["m.text", "m.notice"])}
        if rng.random() < 0.3:
            content["m.mentions"] = {"user_ids": rng.sample(users, rng.randint(0, 2))}
        kind = rng.choice(["m.room.message", "m.room.message", "m.reaction", "m.room.member"])
        ev = event(kind, rng.choice([BOB, *users]), **content)
        if kind == "m.room.member":
            ev["state_key"] = rng.choice(users)
            ev["content"] = {"membership": rng.choice(["invite", "join"])}
        members = rng.choice([2, 6])
        memo: dict[str, bool] = {}
        for i in rng.sample(range(len(users)), len(users)):
            who = Recipient(users[i], names[i], members, LEVELS)
            assert evaluate(rules[i], ev, who, memo) == evaluate(rules[i], ev, who), (ev, users[i])
    assert memo  # the shared rules were stored
