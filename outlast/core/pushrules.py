"""Push rules: the spec's server-default ruleset and the user's edits to it, as pure data.

A user's stored state is a small JSON document::

    {"rules": {kind: [rule, ...]},                 # user-defined rules, most important first
     "defaults": {rule_id: {"enabled": bool, "actions": [...]}}}  # edits to server rules

The ruleset a client sees is the defaults (with the user's id and localpart
filled in) merged with that document: ``.m.rule.master`` first, then user
override rules, then the other server override rules; user content, room and
sender rules before server ones of the same kind; user underride rules before
server underride rules.
"""

from __future__ import annotations

import copy
from typing import Any

from outlast.core.errors import MatrixError, bad_json, invalid_param, not_found

KINDS = ("override", "content", "room", "sender", "underride")
Rule = dict[str, Any]
Document = dict[str, Any]

SOUND = {"set_tweak": "sound", "value": "default"}
HIGHLIGHT = {"set_tweak": "highlight"}


def _match(key: str, pattern: str) -> dict[str, str]:
    return {"kind": "event_match", "key": key, "pattern": pattern}


def _rule(
    rule_id: str, conditions: list[dict[str, Any]], actions: list[Any], enabled: bool = True
) -> Rule:
    return {
        "rule_id": rule_id,
        "default": True,
        "enabled": enabled,
        "conditions": conditions,
        "actions": actions,
    }


def default_rules(user_id: str) -> dict[str, list[Rule]]:
    """The spec's predefined rules for one user, in priority order within each kind."""
    localpart = user_id[1:].split(":", 1)[0] if user_id.startswith("@") else user_id
    override = [
        _rule(".m.rule.master", [], [], enabled=False),
        _rule(".m.rule.suppress_notices", [_match("content.msgtype", "m.notice")], []),
        _rule(
            ".m.rule.invite_for_me",
            [
                _match("type", "m.room.member"),
                _match("content.membership", "invite"),
                _match("state_key", user_id),
            ],
            ["notify", SOUND],
        ),
        _rule(".m.rule.member_event", [_match("type", "m.room.member")], []),
        _rule(
            ".m.rule.is_user_mention",
            [
                {
                    "kind": "event_property_contains",
                    "key": "content.m\\.mentions.user_ids",
                    "value": user_id,
                }
            ],
            ["notify", SOUND, HIGHLIGHT],
        ),
        _rule(
            ".m.rule.contains_display_name",
            [{"kind": "contains_display_name"}],
            ["notify", SOUND, HIGHLIGHT],
        ),
        _rule(
            ".m.rule.is_room_mention",
            [
                {"kind": "event_property_is", "key": "content.m\\.mentions.room", "value": True},
                {"kind": "sender_notification_permission", "key": "room"},
            ],
            ["notify", HIGHLIGHT],
        ),
        _rule(
            ".m.rule.roomnotif",
            [
                _match("content.body", "@room"),
                {"kind": "sender_notification_permission", "key": "room"},
            ],
            ["notify", HIGHLIGHT],
        ),
        _rule(
            ".m.rule.tombstone",
            [_match("type", "m.room.tombstone"), _match("state_key", "")],
            ["notify", HIGHLIGHT],
        ),
        _rule(".m.rule.reaction", [_match("type", "m.reaction")], []),
        _rule(
            ".m.rule.room.server_acl",
            [_match("type", "m.room.server_acl"), _match("state_key", "")],
            [],
        ),
        _rule(
            ".m.rule.suppress_edits",
            [
                {
                    "kind": "event_property_is",
                    "key": "content.m\\.relates_to.rel_type",
                    "value": "m.replace",
                }
            ],
            [],
        ),
    ]
    content = [
        {
            "rule_id": ".m.rule.contains_user_name",
            "default": True,
            "enabled": True,
            "pattern": localpart,
            "actions": ["notify", SOUND, HIGHLIGHT],
        }
    ]
    one_to_one = {"kind": "room_member_count", "is": "2"}
    underride = [
        _rule(
            ".m.rule.call",
            [_match("type", "m.call.invite")],
            ["notify", {"set_tweak": "sound", "value": "ring"}],
        ),
        _rule(
            ".m.rule.encrypted_room_one_to_one",
            [one_to_one, _match("type", "m.room.encrypted")],
            ["notify", SOUND],
        ),
        _rule(
            ".m.rule.room_one_to_one",
            [one_to_one, _match("type", "m.room.message")],
            ["notify", SOUND],
        ),
        _rule(".m.rule.message", [_match("type", "m.room.message")], ["notify"]),
        _rule(".m.rule.encrypted", [_match("type", "m.room.encrypted")], ["notify"]),
    ]
    return {
        "override": override,
        "content": content,
        "room": [],
        "sender": [],
        "underride": underride,
    }


def empty_document() -> Document:
    return {"rules": {}, "defaults": {}}


def ruleset(user_id: str, doc: Document | None) -> dict[str, list[Rule]]:
    """What GET /pushrules/ returns under ``global``."""
    doc = doc or empty_document()
    defaults = default_rules(user_id)
    edits: dict[str, dict[str, Any]] = doc.get("defaults", {})
    for rules in defaults.values():
        for rule in rules:
            rule.update(copy.deepcopy(edits.get(rule["rule_id"], {})))
    user: dict[str, list[Rule]] = doc.get("rules", {})
    out: dict[str, list[Rule]] = {}
    for kind in KINDS:
        own = [_user_view(r) for r in user.get(kind, [])]
        server = defaults[kind]
        if kind == "override":
            out[kind] = server[:1] + own + server[1:]
        else:
            out[kind] = own + server
    return out


def _user_view(rule: Rule) -> Rule:
    view = copy.deepcopy(rule)
    view["default"] = False
    view.setdefault("enabled", True)
    return view


def find(user_id: str, doc: Document | None, kind: str, rule_id: str) -> Rule:
    check_kind(kind)
    for rule in ruleset(user_id, doc)[kind]:
        if rule["rule_id"] == rule_id:
            return rule
    raise not_found("push rule not found")


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise MatrixError(400, "M_INVALID_PARAM", f"unknown push rule kind {kind!r}")


def check_scope(scope: str) -> None:
    if scope != "global":
        raise MatrixError(400, "M_INVALID_PARAM", "only the global scope is supported")


def validate_actions(actions: Any) -> list[Any]:
    if not isinstance(actions, list):
        raise bad_json("actions must be a list")
    out: list[Any] = []
    for action in actions:
        if action in ("dont_notify", "coalesce"):
            continue  # historical actions are stripped (spec)
        if action == "notify" or (
            isinstance(action, dict) and isinstance(action.get("set_tweak"), str)
        ):
            out.append(action)
        else:
            raise MatrixError(400, "M_UNKNOWN", f"unrecognised action {action!r}")
    return out


def _validate_conditions(conditions: Any) -> list[dict[str, Any]]:
    if not isinstance(conditions, list) or not all(
        isinstance(c, dict) and isinstance(c.get("kind"), str) for c in conditions
    ):
        raise bad_json("conditions must be a list of objects with a kind")
    return conditions


def put_rule(
    user_id: str,
    doc: Document | None,
    kind: str,
    rule_id: str,
    body: dict[str, Any],
    before: str | None = None,
    after: str | None = None,
) -> Document:
    """Create or replace a user-defined rule; returns the new document."""
    check_kind(kind)
    if not rule_id or rule_id.startswith(".") or "/" in rule_id or "\\" in rule_id:
        raise invalid_param("rule ids may not start with '.' or contain slashes")
    rule: Rule = {
        "rule_id": rule_id,
        "actions": validate_actions(body.get("actions")),
        "enabled": True,
    }
    if kind in ("override", "underride"):
        rule["conditions"] = _validate_conditions(body.get("conditions", []))
    elif kind == "content":
        pattern = body.get("pattern")
        if not isinstance(pattern, str) or not pattern:
            raise MatrixError(400, "M_MISSING_PARAM", "content rules need a pattern")
        rule["pattern"] = pattern
    new = copy.deepcopy(doc or empty_document())
    rules: list[Rule] = new.setdefault("rules", {}).setdefault(kind, [])
    existing = next((i for i, r in enumerate(rules) if r["rule_id"] == rule_id), None)
    if existing is not None:
        rule["enabled"] = rules[existing].get("enabled", True)
        if before is None and after is None:
            rules[existing] = rule
            return new
        rules.pop(existing)
    anchor = before if before is not None else after
    if anchor is None:
        rules.insert(0, rule)  # a new rule is the most important of its kind
        return new
    at = next((i for i, r in enumerate(rules) if r["rule_id"] == anchor), None)
    if at is None:
        raise MatrixError(400, "M_UNKNOWN", f"before/after rule not found: {anchor}")
    rules.insert(at if before is not None else at + 1, rule)
    return new


def delete_rule(doc: Document | None, kind: str, rule_id: str) -> Document:
    check_kind(kind)
    if rule_id.startswith("."):
        raise MatrixError(400, "M_UNKNOWN", "server-default rules cannot be deleted")
    new = copy.deepcopy(doc or empty_document())
    rules: list[Rule] = new.setdefault("rules", {}).get(kind, [])
    kept = [r for r in rules if r["rule_id"] != rule_id]
    if len(kept) == len(rules):
        raise not_found("push rule not found")
    new["rules"][kind] = kept
    return new


def set_attribute(
    user_id: str, doc: Document | None, kind: str, rule_id: str, attr: str, value: Any
) -> Document:
    """Set ``enabled`` or ``actions`` of a user rule or a server-default rule."""
    find(user_id, doc, kind, rule_id)  # 404 for unknown rules
    if attr == "actions":
        value = validate_actions(value)
    elif not isinstance(value, bool):
        raise bad_json("enabled must be true or false")
    new = copy.deepcopy(doc or empty_document())
    if rule_id.startswith("."):
        new.setdefault("defaults", {}).setdefault(rule_id, {})[attr] = value
        return new
    for rule in new.setdefault("rules", {}).get(kind, []):
        if rule["rule_id"] == rule_id:
            rule[attr] = value
    return new


def rule_attribute(rule: Rule, attr: str) -> dict[str, Any]:
    """The body of GET .../enabled or .../actions."""
    if attr not in ("enabled", "actions"):
        raise MatrixError(404, "M_UNRECOGNIZED", "unrecognized push rule attribute")
    return {attr: rule[attr]}
