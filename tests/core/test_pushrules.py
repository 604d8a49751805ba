"""The default push ruleset and edits to it, without a server."""

from __future__ import annotations

import pytest

from outlast.core import pushrules
from outlast.core.errors import MatrixError

ALICE = "@alice:example.org"
SPEC_OVERRIDE = [
    ".m.rule.master",
    ".m.rule.suppress_notices",
    ".m.rule.invite_for_me",
    ".m.rule.member_event",
    ".m.rule.is_user_mention",
    ".m.rule.contains_display_name",
    ".m.rule.is_room_mention",
    ".m.rule.roomnotif",
    ".m.rule.tombstone",
    ".m.rule.reaction",
    ".m.rule.room.server_acl",
    ".m.rule.suppress_edits",
]
SPEC_UNDERRIDE = [
    ".m.rule.call",
    ".m.rule.encrypted_room_one_to_one",
    ".m.rule.room_one_to_one",
    ".m.rule.message",
    ".m.rule.encrypted",
]


def ids(rules: list[dict[str, object]]) -> list[object]:
    return [r["rule_id"] for r in rules]


def test_defaults_are_the_spec_ruleset_for_the_user() -> None:
    rules = pushrules.ruleset(ALICE, None)
    assert set(rules) == {"override", "content", "room", "sender", "underride"}
    assert ids(rules["override"]) == SPEC_OVERRIDE
    assert ids(rules["underride"]) == SPEC_UNDERRIDE
    assert ids(rules["content"]) == [".m.rule.contains_user_name"]
    assert rules["content"][0]["pattern"] == "alice"
    assert rules["room"] == [] and rules["sender"] == []
    master = rules["override"][0]
    assert master == {
        "rule_id": ".m.rule.master",
        "default": True,
        "enabled": False,
        "conditions": [],
        "actions": [],
    }
    invite = next(r for r in rules["override"] if r["rule_id"] == ".m.rule.invite_for_me")
    assert {"kind": "event_match", "key": "state_key", "pattern": ALICE} in invite["conditions"]
    mention = next(r for r in rules["override"] if r["rule_id"] == ".m.rule.is_user_mention")
    assert mention["conditions"][0]["value"] == ALICE
    assert mention["conditions"][0]["key"] == "content.m\\.mentions.user_ids"
    for kind in rules.values():
        for rule in kind:
            assert rule["default"] is True and isinstance(rule["actions"], list)


def test_new_user_rule_is_most_important_of_its_kind_but_after_master() -> None:
    doc = pushrules.put_rule(
        ALICE, None, "override", "mine", {"actions": ["notify"], "conditions": []}
    )
    doc = pushrules.put_rule(ALICE, doc, "override", "newer", {"actions": []})
    rules = pushrules.ruleset(ALICE, doc)
    assert ids(rules["override"])[:4] == [
        ".m.rule.master",
        "newer",
        "mine",
        ".m.rule.suppress_notices",
    ]
    mine = pushrules.find(ALICE, doc, "override", "mine")
    assert mine == {
        "rule_id": "mine",
        "actions": ["notify"],
        "enabled": True,
        "conditions": [],
        "default": False,
    }


def test_before_and_after_place_the_rule() -> None:
    doc = None
    for name in ("a", "b", "c"):
        doc = pushrules.put_rule(ALICE, doc, "room", f"!{name}:x", {"actions": []})
    assert ids(pushrules.ruleset(ALICE, doc)["room"]) == ["!c:x", "!b:x", "!a:x"]
    doc = pushrules.put_rule(ALICE, doc, "room", "!a:x", {"actions": []}, before="!c:x")
    assert ids(pushrules.ruleset(ALICE, doc)["room"]) == ["!a:x", "!c:x", "!b:x"]
    doc = pushrules.put_rule(ALICE, doc, "room", "!d:x", {"actions": []}, after="!c:x")
    assert ids(pushrules.ruleset(ALICE, doc)["room"]) == ["!a:x", "!c:x", "!d:x", "!b:x"]
    with pytest.raises(MatrixError) as err:
        pushrules.put_rule(ALICE, doc, "room", "!e:x", {"actions": []}, before="!nope:x")
    assert err.value.status == 400


def test_update_keeps_place_and_enabled_state() -> None:
    doc = pushrules.put_rule(ALICE, None, "content", "cake", {"pattern": "cake", "actions": []})
    doc = pushrules.put_rule(ALICE, doc, "content", "pie", {"pattern": "pie", "actions": []})
    doc = pushrules.set_attribute(ALICE, doc, "content", "cake", "enabled", False)
    doc = pushrules.put_rule(
        ALICE, doc, "content", "cake", {"pattern": "cake*lie", "actions": ["notify"]}
    )
    content = pushrules.ruleset(ALICE, doc)["content"]
    assert ids(content) == ["pie", "cake", ".m.rule.contains_user_name"]
    assert content[1]["pattern"] == "cake*lie" and content[1]["enabled"] is False


def test_server_rules_can_be_disabled_and_given_actions_but_not_replaced() -> None:
    doc = pushrules.set_attribute(ALICE, None, "override", ".m.rule.master", "enabled", True)
    bing = {"set_tweak": "sound", "value": "bing"}
    doc = pushrules.set_attribute(
        ALICE, doc, "underride", ".m.rule.message", "actions", ["notify", bing, "dont_notify"]
    )
    assert pushrules.find(ALICE, doc, "override", ".m.rule.master")["enabled"] is True
    message = pushrules.find(ALICE, doc, "underride", ".m.rule.message")
    assert message["actions"] == ["notify", {"set_tweak": "sound", "value": "bing"}]
    assert message["default"] is True
    for bad_id in (".m.rule.message", "a/b", "a\\b", ""):
        with pytest.raises(MatrixError):
            pushrules.put_rule(ALICE, doc, "underride", bad_id, {"actions": []})
    with pytest.raises(MatrixError) as err:
        pushrules.delete_rule(doc, "underride", ".m.rule.message")
    assert err.value.status == 400


def test_errors() -> None:
    with pytest.raises(MatrixError) as err:
        pushrules.find(ALICE, None, "override", "missing")
    assert (err.value.status, err.value.errcode) == (404, "M_NOT_FOUND")
    with pytest.raises(MatrixError) as err:
        pushrules.find(ALICE, None, "override", ".m.rule.message")  # wrong kind
    assert err.value.status == 404
    with pytest.raises(MatrixError) as err:
        pushrules.delete_rule(None, "room", "!gone:x")
    assert err.value.status == 404
    with pytest.raises(MatrixError) as err:
        pushrules.check_kind("global")
    assert err.value.status == 400
    for body in ({}, {"actions": "notify"}, {"actions": [42]}):
        with pytest.raises(MatrixError) as err:
            pushrules.put_rule(ALICE, None, "sender", "@bob:x", body)
        assert err.value.status == 400
    with pytest.raises(MatrixError):
        pushrules.put_rule(ALICE, None, "content", "nopattern", {"actions": []})
    with pytest.raises(MatrixError):
        pushrules.put_rule(ALICE, None, "override", "x", {"actions": [], "conditions": [1]})
    with pytest.raises(MatrixError):
        pushrules.set_attribute(ALICE, None, "override", ".m.rule.master", "enabled", "yes")


def test_delete_removes_only_that_rule() -> None:
    doc = pushrules.put_rule(ALICE, None, "sender", "@bob:x", {"actions": []})
    doc = pushrules.put_rule(ALICE, doc, "sender", "@carol:x", {"actions": []})
    doc = pushrules.delete_rule(doc, "sender", "@bob:x")
    assert ids(pushrules.ruleset(ALICE, doc)["sender"]) == ["@carol:x"]
