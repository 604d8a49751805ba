"""Room authorization rules (room versions 10, 11, 12) as pure functions over room state.

Every write path must agree on what is allowed, so the rules live here with no
I/O: callers pass the state *before* an event and get M_FORBIDDEN if it is not
allowed. "Step N" comments cite https://spec.matrix.org/v1.x/rooms/v11/ auth rules;
where versions differ (see :mod:`outlast.core.room_versions`) the comment says so.
Signature checks (step 4.2) and auth_events selection (steps 2.1-2.3) need keys
or the event graph, so callers accepting remote events must do those.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Final

from outlast.core import room_versions
from outlast.core.errors import MatrixError, forbidden

State = Mapping[tuple[str, str], dict[str, Any]]

CREATE: Final = "m.room.create"
MEMBER: Final = "m.room.member"
POWER_LEVELS: Final = "m.room.power_levels"
JOIN_RULES: Final = "m.room.join_rules"
THIRD_PARTY_INVITE: Final = "m.room.third_party_invite"
REDACTION: Final = "m.room.redaction"

# Versions a create event may name (step 1.3). Versions before 10 are judged by
# the v10 rules; refusing to *create* an unsupported version is createRoom's job.
RECOGNISED_ROOM_VERSIONS: Final = frozenset(str(v) for v in range(1, 13))

# Top-level integer keys of m.room.power_levels content (steps 9.1 and 9.5).
_PL_SCALARS: Final = tuple(
    ["users_default", "events_default", "state_default", "ban", "redact", "kick", "invite"]
)

# Old rooms stored levels as strings; cap the digits so a hostile value
# cannot make int() slow or raise (Python limits int/str conversion size).
_INT_STRING: Final = re.compile(r"\s*[+-]?[0-9]{1,18}\s*", re.ASCII)
_USER_ID: Final = re.compile(r"@[^:]+:.+", re.DOTALL)


@dataclass(frozen=True)
class PowerLevels:
    """The effective power levels of a room, with spec defaults filled in."""

    users: Mapping[str, int]
    users_default: int
    events: Mapping[str, int]
    events_default: int
    state_default: int
    ban: int
    kick: int
    invite: int
    redact: int
    notifications: Mapping[str, int]

    def user_level(self, user_id: str) -> int:
        """A user's level; users without an entry get ``users_default``."""
        return self.users.get(user_id, self.users_default)

    def event_level(self, event_type: str, is_state: bool) -> int:
        """Level needed to send ``event_type`` (the "required power level")."""
        level = self.events.get(event_type)
        if level is not None:
            return level
        return self.state_default if is_state else self.events_default


def _as_int(value: Any) -> int | None:
    """Read a stored level leniently: ints or numeric strings, else None."""
    if _is_strict_int(value):
        return int(value)
    if isinstance(value, str) and _INT_STRING.fullmatch(value):
        return int(value)
    return None


def _is_strict_int(value: Any) -> bool:
    """New power level events must hold real JSON integers (v10+ rule)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _int_map(value: Any) -> dict[str, int]:
    """The usable entries of a level map; garbage entries are dropped."""
    if not isinstance(value, Mapping):
        return {}
    return {k: n for k, v in value.items() if isinstance(k, str) and (n := _as_int(v)) is not None}


def _content(event: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """An event's content, or an empty mapping if it is missing or malformed."""
    content = None if event is None else event.get("content")
    return content if isinstance(content, Mapping) else {}


def _domain(identifier: Any) -> str:
    """The server part of a user or room ID (everything after the first colon)."""
    return identifier.partition(":")[2] if isinstance(identifier, str) else ""


def _valid_user_id(value: Any) -> bool:
    """Loose user ID shape check: ``@localpart:server``, at most 255 chars."""
    return isinstance(value, str) and len(value) <= 255 and bool(_USER_ID.fullmatch(value))


def _creator(state: State) -> str | None:
    """The room creator of step 4.3.1: ``content.creator`` up to v10, else the sender."""
    create = state.get((CREATE, "")) or {}
    version = room_versions.version_of(state)
    who = _content(create).get("creator") if version.create_has_creator else None
    for candidate in (who, create.get("sender"), _content(create).get("creator")):
        if isinstance(candidate, str):
            return candidate
    return None


# Derived levels per (power levels event, create event) object. Every check of
# a message needs them, and deriving them walks the whole users map. Events in
# state maps are never mutated (a redaction stores a new object), and an entry
# holds the events themselves, so their ids cannot be reused while it lives.
_LEVELS_CACHE: dict[tuple[int, int], tuple[Any, Any, PowerLevels]] = {}
_LEVELS_CACHE_SIZE: Final = 1024


def power_levels(state: State) -> PowerLevels:
    """Effective power levels; defaults follow the m.room.power_levels spec."""
    event = state.get((POWER_LEVELS, ""))
    create = state.get((CREATE, ""))
    key = (id(event), id(create))
    hit = _LEVELS_CACHE.get(key)
    if hit is not None and hit[0] is event and hit[1] is create:
        return hit[2]
    levels = _derive_power_levels(state, event)
    version = room_versions.version_of(state)
    if version.creators_infinite:  # v12: creators outrank every level, forever
        infinite = dict.fromkeys(
            room_versions.creators(create, version), room_versions.CREATOR_LEVEL
        )
        levels = replace(levels, users=MappingProxyType({**levels.users, **infinite}))
    if len(_LEVELS_CACHE) >= _LEVELS_CACHE_SIZE:
        _LEVELS_CACHE.pop(next(iter(_LEVELS_CACHE)))
    _LEVELS_CACHE[key] = (event, create, levels)
    return levels


def _derive_power_levels(state: State, event: Mapping[str, Any] | None) -> PowerLevels:
    content = _content(event)
    if event is None:
        # No power levels event: the creator has 100, others 0, state_default 0.
        creator = _creator(state)
        content = {"users": {creator: 100} if creator else {}, "state_default": 0}

    def top(key: str, default: int) -> int:
        level = _as_int(content.get(key))
        return default if level is None else level

    return PowerLevels(
        users=MappingProxyType(_int_map(content.get("users"))),
        users_default=top("users_default", 0),
        events=MappingProxyType(_int_map(content.get("events"))),
        events_default=top("events_default", 0),
        state_default=top("state_default", 50),
        ban=top("ban", 50),
        kick=top("kick", 50),
        invite=top("invite", 0),
        redact=top("redact", 50),
        notifications=MappingProxyType({"room": 50, **_int_map(content.get("notifications"))}),
    )


def membership(state: State, user_id: str) -> str:
    """A user's current membership; "leave" if they have never been in the room."""
    value = _content(state.get((MEMBER, user_id))).get("membership")
    return value if isinstance(value, str) else "leave"


def join_rule(state: State) -> str:
    """The room's join rule; rooms without m.room.join_rules are invite-only."""
    value = _content(state.get((JOIN_RULES, ""))).get("join_rule")
    return value if isinstance(value, str) else "invite"


def stripped_state_types() -> tuple[str, ...]:
    """State types shown to invitees (invite_state) before they join."""
    names = "create name avatar topic join_rules canonical_alias encryption"
    return tuple(f"m.room.{name}" for name in names.split())


def check_create(event: dict[str, Any]) -> None:
    """Validate an m.room.create event by itself (step 1)."""
    if event.get("type") != CREATE:
        raise forbidden("not an m.room.create event")
    if event.get("state_key") != "":
        raise forbidden("m.room.create must have an empty state_key")
    if event.get("prev_events"):  # step 1.1: the create event starts the room
        raise forbidden("m.room.create must not have prev_events")
    sender = event.get("sender")
    if not _valid_user_id(sender):
        raise forbidden("m.room.create has an invalid sender")
    content = event.get("content")
    if not isinstance(content, dict):
        raise forbidden("m.room.create content must be an object")
    version = content.get("room_version")
    if version is not None and version not in RECOGNISED_ROOM_VERSIONS:  # step 1.3
        raise forbidden("unrecognised room version")
    rules = room_versions.get(version)
    # Step 1.2: servers create rooms in their own namespace. A v12 room ID is a
    # hash of the create event and has no server part to compare.
    room_id = event.get("room_id")
    hashed = rules.room_id_is_create_hash
    if room_id is not None and not hashed and _domain(room_id) != _domain(sender):
        raise forbidden("room ID domain does not match the sender's domain")
    if rules.create_has_creator and not isinstance(content.get("creator"), str):
        raise forbidden("m.room.create needs a creator in this room version")  # v10 step 1.4
    extra = content.get("additional_creators", [])
    if rules.creators_infinite and not (  # v12 step 1.4
        isinstance(extra, list) and all(_valid_user_id(u) for u in extra)
    ):
        raise forbidden("additional_creators must be a list of user IDs")


def check_event(event: dict[str, Any], state: State) -> None:
    """Raise M_FORBIDDEN unless ``event`` may be applied on top of ``state``."""
    etype, sender, content = event.get("type"), event.get("sender"), event.get("content")
    state_key = event.get("state_key")
    if not (isinstance(etype, str) and isinstance(sender, str) and isinstance(content, dict)):
        raise forbidden("event needs a string type and sender and an object content")
    if state_key is not None and not isinstance(state_key, str):
        raise forbidden("state_key must be a string")

    # Step 1: the create event must be the room's first event.
    if etype == CREATE:
        if state:
            raise forbidden("the room already exists")
        check_create(event)
        return

    # Step 2.4: every other event needs a room to belong to.
    create = state.get((CREATE, ""))
    if create is None:
        raise forbidden("no m.room.create event in the room state")

    # Step 3: rooms created with m.federate=false stay on the creator's server.
    local = _domain(sender) == _domain(create.get("sender"))
    if _content(create).get("m.federate") is False and not local:
        raise forbidden("this room does not federate")

    levels = power_levels(state)
    if etype == MEMBER:
        _check_member(content, sender, state_key, state, levels)
        return

    # Step 5: everything else requires being in the room.
    if membership(state, sender) != "join":
        raise forbidden("you are not joined to this room")

    sender_level = levels.user_level(sender)
    # Step 6: third-party invite tokens are gated by the invite level only.
    if etype == THIRD_PARTY_INVITE:
        if sender_level < levels.invite:
            raise forbidden("insufficient power level to invite")
        return

    if sender_level < levels.event_level(etype, state_key is not None):  # step 7
        raise forbidden(f"insufficient power level to send {etype}")

    # Step 8: state keyed by a user ID belongs to that user alone.
    if state_key is not None and state_key.startswith("@") and state_key != sender:
        raise forbidden("state_key names another user")

    if etype == POWER_LEVELS:  # step 9
        _check_power_levels(content, sender, state, levels)


def _check_member(
    content: dict[str, Any], sender: str, target: str | None, state: State, levels: PowerLevels
) -> None:
    """Membership transitions (step 4); ``target`` is the state_key."""
    if target is None:  # step 4.1
        raise forbidden("m.room.member needs a state_key")
    new = content.get("membership")
    if not isinstance(new, str):
        raise forbidden("m.room.member needs a membership")

    current = membership(state, target)
    sender_level = levels.user_level(sender)

    if new == "join":
        # Step 4.3.1: the creator's own join straight after the create event.
        if len(state) == 1 and sender == target == _creator(state):
            return
        if sender != target:  # step 4.3.2
            raise forbidden("cannot join on behalf of another user")
        if current == "ban":  # step 4.3.3
            raise forbidden("you are banned from this room")
        rule = join_rule(state)
        if rule in ("invite", "knock"):  # step 4.3.4
            if current in ("invite", "join"):
                return
            raise forbidden("this room is invite-only")
        # Step 4.3.5; the caller must verify the authorising server's signature.
        # knock_restricted exists from room version 10 (before it, step 4.3.7 rejects).
        knock_restricted = "knock_restricted" in room_versions.knock_join_rules(
            room_versions.raw_version(state)
        )
        if rule == "restricted" or (rule == "knock_restricted" and knock_restricted):
            if current in ("invite", "join"):
                return
            via = content.get("join_authorised_via_users_server")
            if isinstance(via, str) and levels.user_level(via) >= levels.invite:
                return
            raise forbidden("join is not authorised by a user who can invite")
        if rule == "public":  # step 4.3.6
            return
        raise forbidden(f"cannot join a room with join rule {rule!r}")  # step 4.3.7

    if new == "invite":
        # Step 4.4.1: verifying third-party invite signatures needs crypto,
        # which this module does not do, so such invites are refused.
        if "third_party_invite" in content:
            raise forbidden("third-party invites are not supported")
        if membership(state, sender) != "join":  # step 4.4.2
            raise forbidden("you are not joined to this room")
        if current in ("join", "ban"):  # step 4.4.3
            raise forbidden(f"cannot invite a user whose membership is {current}")
        if sender_level >= levels.invite:  # step 4.4.4
            return
        raise forbidden("insufficient power level to invite")

    if new == "leave":
        # Step 4.5.1: leaving or rejecting yourself; a ban cannot be shed this way.
        if sender == target:
            if current in ("invite", "join", "knock"):
                return
            raise forbidden(f"cannot leave with membership {current}")
        if membership(state, sender) != "join":  # step 4.5.2
            raise forbidden("you are not joined to this room")
        # Step 4.5.3: turning a ban into leave is an unban.
        if current == "ban" and sender_level < levels.ban:
            raise forbidden("insufficient power level to unban")
        if sender_level >= levels.kick and levels.user_level(target) < sender_level:  # step 4.5.4
            return
        raise forbidden("insufficient power level to kick this user")

    if new == "ban":
        if membership(state, sender) != "join":  # step 4.6.1
            raise forbidden("you are not joined to this room")
        # Step 4.6.2; since the target must be strictly lower, nobody bans themselves.
        if sender_level >= levels.ban and levels.user_level(target) < sender_level:
            return
        raise forbidden("insufficient power level to ban this user")

    knockable = room_versions.knock_join_rules(room_versions.raw_version(state))
    if new == "knock" and knockable:  # room versions 7 and later
        if join_rule(state) not in knockable:  # step 4.7.1
            raise forbidden("this room does not accept knocks")
        if sender != target:  # step 4.7.2
            raise forbidden("cannot knock on behalf of another user")
        if current not in ("ban", "invite", "join"):  # step 4.7.3
            return
        raise forbidden(f"cannot knock with membership {current}")  # step 4.7.4

    raise forbidden(f"unknown membership {new!r}")  # step 4.8


def _check_power_levels(
    content: dict[str, Any], sender: str, state: State, levels: PowerLevels
) -> None:
    """Power level changes (step 9): nobody may grant or revoke above their level."""
    for key in _PL_SCALARS:  # step 9.1
        if key in content and not _is_strict_int(content[key]):
            raise forbidden(f"power levels: {key} must be an integer")
    for key in ("events", "notifications", "users"):  # steps 9.2 and 9.3
        section = content.get(key, {})
        valid_key = _valid_user_id if key == "users" else (lambda k: isinstance(k, str))
        if not isinstance(section, dict) or not all(
            valid_key(k) and _is_strict_int(v) for k, v in section.items()
        ):
            raise forbidden(f"power levels: {key} must map names to integers")
    version = room_versions.version_of(state)
    if version.creators_infinite:  # v12 step 10.4: creators are never listed
        named = room_versions.creators(state.get((CREATE, "")), version)
        if named & set(content.get("users", {})):
            raise forbidden("power levels: room creators cannot be given a level")

    previous = state.get((POWER_LEVELS, ""))
    if previous is None:  # step 9.4: the first power levels event may set anything
        return
    old = _content(previous)
    mine = levels.user_level(sender)

    def too_high(what: str) -> MatrixError:
        return forbidden(f"power levels: cannot change {what} beyond your own level ({mine})")

    # Step 9.5: both the old and the new value must be within the sender's reach.
    for key in _PL_SCALARS:
        before = _as_int(old.get(key))
        after: int | None = content.get(key)
        if before == after:
            continue
        if (before is not None and before > mine) or (after is not None and after > mine):
            raise too_high(key)

    # Steps 9.6-9.9: the same, per entry, except that users may not touch peers.
    for key in ("events", "notifications", "users"):
        old_map, new_map = _int_map(old.get(key)), _int_map(content.get(key))
        for name in sorted(old_map.keys() | new_map.keys()):
            before, after = old_map.get(name), new_map.get(name)
            if before == after:
                continue
            if key != "users" and before is not None and before > mine:  # step 9.6
                raise too_high(f"{key}.{name}")
            if key == "users" and name != sender and before is not None and before >= mine:
                raise forbidden(f"power levels: cannot change {name}, who is not below you")  # 9.8
            if after is not None and after > mine:  # steps 9.7 and 9.9
                raise too_high(f"{key}.{name}")
    # Step 9.10 / 10: allow.


def check_redaction(redaction_sender: str, target_sender: str | None, state: State) -> None:
    """Whether the target is actually redacted ("Handling redactions"), beyond step 7.

    Own events need only the m.room.redaction level; others' (or unknown, ``None``)
    also need the redact level, which the auth rules themselves never consult.
    """
    levels = power_levels(state)
    level = levels.user_level(redaction_sender)
    if membership(state, redaction_sender) != "join":
        raise forbidden("you are not joined to this room")
    if level < levels.event_level(REDACTION, False):
        raise forbidden("insufficient power level to send redactions")
    if target_sender is not None and target_sender == redaction_sender:
        return
    if level < levels.redact:
        raise forbidden("insufficient power level to redact other users' events")


_ADMIN_EVENTS: Final = "power_levels history_visibility tombstone server_acl encryption"


def initial_power_levels(
    creator: str,
    preset: str,
    invitees: Sequence[str],
    override: Mapping[str, Any] | None,
    room_version: str = "11",
) -> dict[str, Any]:
    """Content of the m.room.power_levels event createRoom sends.

    Synapse-style defaults so clients see familiar levels; the creator (and,
    for trusted_private_chat, the invitees) get 100. ``override`` is the
    client's ``power_level_content_override``, merged key by key at the top.
    In v12 creators (trusted_private_chat invitees among them, as
    ``additional_creators``) are not listed, and only they may send
    ``m.room.tombstone`` (150, above everyone else's reach).
    """
    v12 = room_versions.get(room_version).creators_infinite
    users = {} if v12 else {creator: 100}
    if preset == "trusted_private_chat" and not v12:
        users.update({invitee: 100 for invitee in invitees})
    content: dict[str, Any] = {
        "users": users,
        "users_default": 0,
        "events": {f"m.room.{name}": 50 for name in ("name", "canonical_alias", "avatar")}
        | {f"m.room.{name}": 100 for name in _ADMIN_EVENTS.split()},
        "events_default": 0,
        "state_default": 50,
        "ban": 50,
        "kick": 50,
        "redact": 50,
        # Anyone may invite to private chats; public rooms reserve it for moderators.
        "invite": 50 if preset == "public_chat" else 0,
    }
    if v12:
        content["events"]["m.room.tombstone"] = 150
    if override:
        content.update(copy.deepcopy(dict(override)))
    return content
