"""The redaction algorithms of room versions 10 and 11/12, as pure functions over event dicts.

A redaction strips an event down to what the room's integrity needs: a fixed
set of top-level keys and, for a few event types that the auth rules read,
the content keys those rules use. Everything else (a message's body, a
topic, a display name) is gone for every later reader.
See https://spec.matrix.org/v1.11/rooms/v11/#redactions; room version 10 uses
the older algorithm of v9 (https://spec.matrix.org/v1.11/rooms/v9/#redactions).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from outlast.core import room_versions

# Top-level keys that survive (v11 no longer keeps origin, membership, prev_state).
KEPT_KEYS: Final = frozenset(
    {
        "event_id",
        "type",
        "room_id",
        "sender",
        "state_key",
        "content",
        "hashes",
        "signatures",
        "depth",
        "prev_events",
        "auth_events",
        "origin_server_ts",
    }
)

# Content keys that survive, per event type. m.room.create keeps all of its content.
KEPT_CONTENT: Final[Mapping[str, frozenset[str]]] = {
    "m.room.member": frozenset({"membership", "join_authorised_via_users_server"}),
    "m.room.join_rules": frozenset({"join_rule", "allow"}),
    "m.room.power_levels": frozenset(
        {
            "ban",
            "events",
            "events_default",
            "invite",
            "kick",
            "redact",
            "state_default",
            "users",
            "users_default",
        }
    ),
    "m.room.history_visibility": frozenset({"history_visibility"}),
    "m.room.redaction": frozenset({"redacts"}),
}


# Room version 10 (the v9 algorithm): three more top-level keys survive, the
# create event keeps only ``creator``, power levels lose ``invite``, and
# neither a redaction's ``redacts`` nor a member's third-party ``signed`` survive.
KEPT_KEYS_V10: Final = KEPT_KEYS | {"origin", "membership", "prev_state"}
KEPT_CONTENT_V10: Final[Mapping[str, frozenset[str]]] = {
    "m.room.member": KEPT_CONTENT["m.room.member"],
    "m.room.create": frozenset({"creator"}),
    "m.room.join_rules": KEPT_CONTENT["m.room.join_rules"],
    "m.room.power_levels": KEPT_CONTENT["m.room.power_levels"] - {"invite"},
    "m.room.history_visibility": KEPT_CONTENT["m.room.history_visibility"],
}


def redacted_content(
    event_type: str, content: Any, room_version: str | None = None
) -> dict[str, Any]:
    """The part of ``content`` that survives redacting an event of ``event_type``."""
    if not isinstance(content, dict):
        return {}
    if not room_versions.get(room_version).redaction_v11:
        kept_v10 = KEPT_CONTENT_V10.get(event_type, frozenset())
        return {k: copy.deepcopy(v) for k, v in content.items() if k in kept_v10}
    if event_type == "m.room.create":
        return copy.deepcopy(content)
    kept = KEPT_CONTENT.get(event_type, frozenset())
    out = {key: copy.deepcopy(value) for key, value in content.items() if key in kept}
    if event_type == "m.room.member":
        # Only the signed block of a third-party invite is kept: it proves the invite.
        invite = content.get("third_party_invite")
        if isinstance(invite, dict) and "signed" in invite:
            out["third_party_invite"] = {"signed": copy.deepcopy(invite["signed"])}
    return out


def redact(event: Mapping[str, Any], room_version: str | None = None) -> dict[str, Any]:
    """A redacted copy of ``event`` (the input is left untouched)."""
    v11 = room_versions.get(room_version).redaction_v11
    keys = KEPT_KEYS if v11 else KEPT_KEYS_V10
    out = {key: copy.deepcopy(value) for key, value in event.items() if key in keys}
    etype = str(event.get("type", ""))
    out["content"] = redacted_content(etype, event.get("content"), room_version)
    return out


def redacted_by(
    event: Mapping[str, Any], redaction: Mapping[str, Any], room_version: str | None = None
) -> dict[str, Any]:
    """The form clients receive once ``redaction`` applied: ``unsigned.redacted_because`` set."""
    out = redact(event, room_version)
    out["unsigned"] = {"redacted_because": copy.deepcopy(dict(redaction))}
    return out


def redaction_target(redaction: Mapping[str, Any]) -> str | None:
    """The event a redaction names: ``content.redacts`` (v11), else top-level ``redacts``."""
    content = redaction.get("content")
    target = content.get("redacts") if isinstance(content, dict) else None
    if not isinstance(target, str):
        target = redaction.get("redacts")
    return target if isinstance(target, str) else None


def served_redaction(redaction: Mapping[str, Any]) -> dict[str, Any]:
    """A redaction event as clients get it: ``redacts`` both at the top level and in
    ``content``, whatever the room version (v11's "Client considerations")."""
    out = dict(redaction)
    target = redaction_target(redaction)
    if target is None:
        return out
    content = redaction.get("content")
    out["content"] = {**(content if isinstance(content, dict) else {}), "redacts": target}
    out["redacts"] = target
    return out
