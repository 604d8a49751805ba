"""Push rule evaluation: which rule an event matches for one recipient, and what it asks for.

Spec: Client-Server API, "Push Notifications" → "Push Rules". Kinds are checked
in the order override, content, room, sender, underride (``pushrules.ruleset``
already lists them so, ``.m.rule.master`` first); disabled rules never match;
the first enabled rule whose conditions all hold decides the actions; if none
matches, or the recipient sent the event, nothing notifies.

The rules are exactly what ``outlast/core/pushrules.py`` stores and serves:
``compile_rules(user_id, doc)`` once per rules document (cache it by the
document's log sequence), then ``evaluate(rules, event, recipient)`` per event.

One event is evaluated for every member of its room, each with their own
compiled rules, yet almost every rule is the same for all of them and its
conditions read only the event and the room (member count, power levels, the
same for every recipient of the event). ``evaluate`` takes a ``memo`` the caller
keeps for one event: a rule's result is stored under its ``shared`` key (its
conditions, written out) and reused for the next recipient with an equal rule.
Rules that read the recipient (``contains_display_name``) have no key. Without
it, evaluating was 85 % of applying a message in a room of 16 (bench/RESULTS.md).

Legacy mention rules: ``.m.rule.contains_display_name``, ``.m.rule.roomnotif``
and ``.m.rule.contains_user_name`` were deprecated by v1.7 ("should only be
enabled if the event does not have an ``m.mentions`` property") and dropped
from the default list by v1.17. Outlast still lists them, as many clients
still send bodies without ``m.mentions``, and applies them only to events
without that property, so intentional mentions are never doubled by names.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from outlast.core import pushrules
from outlast.core.auth import PowerLevels
from outlast.core.paths import ABSENT, lookup, split_path
from outlast.core.push_match import compile_glob, is_simple, same_value

Event = Mapping[str, Any]
LEGACY_ACTIONS = frozenset({"dont_notify", "coalesce"})
LEGACY_MENTION_RULES = frozenset(
    {".m.rule.contains_display_name", ".m.rule.roomnotif", ".m.rule.contains_user_name"}
)
DEFAULT_NOTIFICATION_LEVEL = 50  # m.room.power_levels: "notifications" entries default to 50
_MEMBER_COUNT_OPS: dict[str, Callable[[int, int], bool]] = {
    "==": lambda a, b: a == b,
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
}


@dataclass(frozen=True)
class Recipient:
    """The facts about the recipient and the room that conditions need, beyond the event.

    ``display_name`` is the recipient's in this room; ``member_count`` the
    room's joined members; ``levels`` its effective power levels (from
    ``auth.power_levels(state)``, which fills the spec defaults in).
    """

    user_id: str
    display_name: str | None
    member_count: int
    levels: PowerLevels


Condition = Callable[[Event, Recipient], bool]


@dataclass(frozen=True)
class Outcome:
    """The actions of the rule that matched (legacy actions stripped), and which rule."""

    actions: tuple[Any, ...] = ()
    rule_id: str | None = None
    kind: str | None = None

    @property
    def notify(self) -> bool:
        return "notify" in self.actions

    @property
    def tweaks(self) -> dict[str, Any]:
        """``set_tweak`` actions as a dict; ``highlight`` without a value means true."""
        out: dict[str, Any] = {}
        for action in self.actions:
            if isinstance(action, Mapping) and isinstance(action.get("set_tweak"), str):
                name = action["set_tweak"]
                default = True if name == "highlight" else None
                out[name] = action.get("value", default)
        return out

    @property
    def highlight(self) -> bool:
        """A highlighted notification: ``notify`` and a highlight tweak that is not false."""
        return self.notify and self.tweaks.get("highlight", False) is True


NOTHING = Outcome()


@dataclass(frozen=True)
class CompiledRule:
    kind: str
    rule_id: str
    actions: tuple[Any, ...]
    conditions: tuple[Condition, ...]  # all must hold
    event_type: str | None = None  # a literal ``type`` condition, lowercased: checked first
    legacy_mention: bool = False
    shared: str | None = None  # equal keys: equal results for one event in one room state

    def matches(self, event: Event, recipient: Recipient, event_type: str) -> bool:
        """All conditions hold; ``event_type`` is the event's type, lowercased."""
        if self.event_type is not None and self.event_type != event_type:
            return False
        if self.legacy_mention and _has_mentions(event):
            return False
        for condition in self.conditions:  # noqa: SIM110 - a loop beats all() on this hot path
            if not condition(event, recipient):
                return False
        return True


def _has_mentions(event: Event) -> bool:
    content = event.get("content")
    return isinstance(content, dict) and "m.mentions" in content


def _never(event: Event, recipient: Recipient) -> bool:
    return False


def event_match(key: Any, pattern: Any) -> Condition:
    """Glob on a string property; on ``content.body`` any word-bounded substring matches."""
    if not isinstance(key, str) or not isinstance(pattern, str):
        return _never
    path, glob = split_path(key), compile_glob(pattern)
    words = key == "content.body"

    def condition(event: Event, recipient: Recipient) -> bool:
        value = lookup(event, path)
        if not isinstance(value, str):
            return False  # absent or not a string: no match, even for "*"
        return glob.search_words(value) if words else glob.fullmatch(value)

    return condition


def event_property_is(key: Any, value: Any) -> Condition:
    if not isinstance(key, str) or not is_simple(value):
        return _never
    path = split_path(key)
    return lambda event, recipient: same_value(lookup(event, path), value)


def event_property_contains(key: Any, value: Any) -> Condition:
    if not isinstance(key, str) or not is_simple(value):
        return _never
    path = split_path(key)

    def condition(event: Event, recipient: Recipient) -> bool:
        found = lookup(event, path)
        return isinstance(found, list) and any(same_value(item, value) for item in found)

    return condition


def contains_display_name(event: Event, recipient: Recipient) -> bool:
    """The recipient's display name in the room, as whole words of ``content.body``."""
    name = (recipient.display_name or "").strip()
    body = lookup(event, ("content", "body"))
    if not name or not isinstance(body, str):
        return False
    return compile_glob(name, wildcards=False).search_words(body)


def room_member_count(spec: Any) -> Condition:
    """``is``: a decimal count, optionally prefixed by ==, <, >, <= or >= (default ==)."""
    if not isinstance(spec, str):
        return _never
    op = next((o for o in ("==", "<=", ">=", "<", ">") if spec.startswith(o)), "")
    number = spec[len(op) :]
    if not number.isascii() or not number.isdigit() or len(number) > 18:
        return _never
    compare, wanted = _MEMBER_COUNT_OPS[op or "=="], int(number)
    return lambda event, recipient: compare(recipient.member_count, wanted)


def sender_notification_permission(key: Any) -> Condition:
    """The sender's power level reaches ``notifications[key]`` of the room's power levels."""
    if not isinstance(key, str):
        return _never

    def condition(event: Event, recipient: Recipient) -> bool:
        sender = event.get("sender")
        if not isinstance(sender, str):
            return False
        levels = recipient.levels
        needed = levels.notifications.get(key, DEFAULT_NOTIFICATION_LEVEL)
        return levels.user_level(sender) >= needed

    return condition


def compile_condition(condition: Any) -> Condition:
    """One condition; an unrecognised or malformed one never matches (spec)."""
    if not isinstance(condition, Mapping):
        return _never
    kind = condition.get("kind")
    if kind == "event_match":
        return event_match(condition.get("key"), condition.get("pattern"))
    if kind == "event_property_is":
        return event_property_is(condition.get("key"), condition.get("value", ABSENT))
    if kind == "event_property_contains":
        return event_property_contains(condition.get("key"), condition.get("value", ABSENT))
    if kind == "contains_display_name":
        return contains_display_name
    if kind == "room_member_count":
        return room_member_count(condition.get("is"))
    if kind == "sender_notification_permission":
        return sender_notification_permission(condition.get("key"))
    return _never


def _equals(path: tuple[str, ...], wanted: str) -> Condition:
    return lambda event, recipient: lookup(event, path) == wanted


def compile_rule(kind: str, rule: Mapping[str, Any]) -> CompiledRule:
    """A rule of any kind as a list of conditions; room and sender rules key on their id."""
    rule_id = str(rule.get("rule_id", ""))
    conditions: tuple[Condition, ...]
    if kind == "content":
        conditions = (event_match("content.body", rule.get("pattern")),)
    elif kind == "room":
        conditions = (_equals(("room_id",), rule_id),)
    elif kind == "sender":
        conditions = (_equals(("sender",), rule_id),)
    else:
        raw = rule.get("conditions", [])
        items = raw if isinstance(raw, list) else [None]  # malformed: never matches
        conditions = tuple(compile_condition(c) for c in items)
    raw_actions = rule.get("actions", [])
    listed = raw_actions if isinstance(raw_actions, list) else []
    actions = tuple(a for a in listed if not (isinstance(a, str) and a in LEGACY_ACTIONS))
    legacy = rule_id in LEGACY_MENTION_RULES
    return CompiledRule(
        kind, rule_id, actions, conditions, _literal_type(rule), legacy, _shared_key(kind, rule)
    )


def _shared_key(kind: str, rule: Mapping[str, Any]) -> str | None:
    """What the rule's match depends on besides the event and the room, written out; None
    when it reads the recipient. The rule id counts where it is a condition (room and
    sender rules) and where it makes a rule a legacy mention rule."""
    rule_id = rule.get("rule_id")
    if kind == "content":
        parts: list[Any] = [kind, rule.get("pattern")]
    elif kind in ("room", "sender"):
        parts = [kind, rule_id]
    else:
        conditions = rule.get("conditions", [])
        if isinstance(conditions, list) and any(
            isinstance(c, Mapping) and c.get("kind") == "contains_display_name" for c in conditions
        ):
            return None
        parts = ["conditions", conditions]
    parts.append(rule_id in LEGACY_MENTION_RULES)
    try:
        return json.dumps(parts, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return None  # not JSON (never from a stored document): evaluated each time


def _literal_type(rule: Mapping[str, Any]) -> str | None:
    """The event type a rule requires by a wildcard-free ``event_match`` on ``type``, if any.

    Most default rules start so; checking it before anything else skips them
    cheaply for the events they cannot match (a rule costs a dict lookup then).
    """
    conditions = rule.get("conditions")
    for condition in conditions if isinstance(conditions, list) else []:
        if not isinstance(condition, Mapping) or condition.get("kind") != "event_match":
            continue
        pattern = condition.get("pattern")
        if condition.get("key") == "type" and isinstance(pattern, str):
            literal = compile_glob(pattern).literal
            if literal is not None:
                return literal
    return None


def compile_ruleset(ruleset: Mapping[str, Sequence[Mapping[str, Any]]]) -> tuple[CompiledRule, ...]:
    """The enabled rules of a ruleset (as GET /pushrules/ shows it), in evaluation order."""
    return tuple(
        compile_rule(kind, rule)
        for kind in pushrules.KINDS
        for rule in ruleset.get(kind, [])
        if rule.get("enabled", True) is True
    )


def compile_rules(user_id: str, doc: pushrules.Document | None) -> tuple[CompiledRule, ...]:
    """The user's effective rules: the defaults merged with their stored document."""
    return compile_ruleset(pushrules.ruleset(user_id, doc))


def evaluate(
    rules: Sequence[CompiledRule],
    event: Event,
    recipient: Recipient,
    memo: dict[str, bool] | None = None,
) -> Outcome:
    """The actions for ``recipient`` of ``event``: the first matching rule's, or none.

    ``memo``: results of shared rules for this event, to pass again for its other
    recipients in the same room state (same ``member_count`` and ``levels``).
    """
    if event.get("sender") == recipient.user_id:
        return NOTHING  # spec: never notify users of events they sent themselves
    raw_type = event.get("type")
    event_type = raw_type.lower() if isinstance(raw_type, str) else ""
    for rule in rules:
        key = rule.shared
        if memo is None or key is None:
            hit = rule.matches(event, recipient, event_type)
        else:
            found = memo.get(key)
            if found is None:
                found = memo[key] = rule.matches(event, recipient, event_type)
            hit = found
        if hit:
            return Outcome(rule.actions, rule.rule_id, rule.kind)
    return NOTHING
