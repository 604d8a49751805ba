"""Room versions Outlast can create (10, 11, 12) and what differs between them.

Only the differences a single-authority server must honour are modelled
(no federation, so signatures, hashes and state resolution stay out):

- v10 (room versions 10 and earlier): ``m.room.create`` must carry
  ``creator`` (auth rule 1.4) and the v9 redaction algorithm applies
  (top-level ``origin``/``membership``/``prev_state`` survive, the create
  event keeps only ``creator``, power levels lose ``invite``, a redaction's
  ``redacts`` is top-level).
- v11: no ``creator``; the create event keeps all its content when redacted,
  ``redacts`` moves into ``content``, power levels keep ``invite``.
- v12: room creators (the create event's sender and ``additional_creators``)
  have an infinite power level and must not appear in ``m.room.power_levels``
  ``users``; the room ID is the create event's ID with ``!`` and has no
  server part; createRoom gives ``m.room.tombstone`` a level above
  ``state_default`` (150).

Clients that predate v11 (nheko, weechat-matrix) cannot read a create event
without ``creator``, so createRoom's default is 10, as Synapse's long was.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from outlast.core import jsonenc
from outlast.core.errors import MatrixError

DEFAULT_VERSION: Final = "10"
# Greater than any power level canonical JSON can hold (2**53 - 1).
CREATOR_LEVEL: Final = 2**53


@dataclass(frozen=True)
class RoomVersion:
    identifier: str
    create_has_creator: bool
    redaction_v11: bool
    creators_infinite: bool
    room_id_is_create_hash: bool


VERSIONS: Final[Mapping[str, RoomVersion]] = {
    "10": RoomVersion("10", True, False, False, False),
    "11": RoomVersion("11", False, True, False, False),
    "12": RoomVersion("12", False, True, True, True),
}
CREATABLE: Final = tuple(VERSIONS)


def get(identifier: str | None) -> RoomVersion:
    """The rules for a room's version.

    Versions before 10 are judged by the v10 rules, the closest Outlast has.
    A create event without ``room_version`` means version 1 in the spec, but
    Outlast has always written the version, so such an event can only be
    hand-made; it keeps the v11 rules Outlast applied before versions existed.
    """
    if identifier is None:
        return VERSIONS["11"]
    return VERSIONS.get(identifier, VERSIONS["10"])


def knock_join_rules(identifier: str | None) -> frozenset[str]:
    """The join rules under which a room of this version accepts knocks (auth step 4.7.1).

    Knocking arrived in room version 7 (join rule ``knock``); version 10 added
    ``knock_restricted``. Before 7 a knock is an unknown membership (step 4.8).
    A create event without ``room_version`` keeps the v11 rules (see :func:`get`).
    """
    number = 11 if identifier is None else int(identifier) if identifier.isdigit() else 0
    if number >= 10:
        return frozenset({"knock", "knock_restricted"})
    return frozenset({"knock"}) if number >= 7 else frozenset()


def raw_version(state: Mapping[tuple[str, str], Mapping[str, Any]]) -> str | None:
    """The ``room_version`` string a room's create event names, if any."""
    create = state.get(("m.room.create", "")) or {}
    content = create.get("content")
    value = content.get("room_version") if isinstance(content, Mapping) else None
    return value if isinstance(value, str) else None


def version_of(state: Mapping[tuple[str, str], Mapping[str, Any]]) -> RoomVersion:
    """A room's version, from its create event."""
    return get(raw_version(state))


def check_creatable(identifier: str) -> RoomVersion:
    if identifier not in VERSIONS:
        raise MatrixError(
            400, "M_UNSUPPORTED_ROOM_VERSION", f"room version {identifier[:32]} is not supported"
        )
    return VERSIONS[identifier]


def capability(default: str = DEFAULT_VERSION) -> dict[str, Any]:
    """``m.room_versions`` for ``/capabilities``: exactly the versions createRoom accepts."""
    return {"default": default, "available": dict.fromkeys(CREATABLE, "stable")}


def creators(create_event: Mapping[str, Any] | None, version: RoomVersion) -> frozenset[str]:
    """Who counts as a room creator: the create event's sender, plus (v12)
    ``additional_creators``; before v11 the ``creator`` content key names them."""
    if create_event is None:
        return frozenset()
    content = create_event.get("content")
    content = content if isinstance(content, Mapping) else {}
    sender = create_event.get("sender")
    if version.create_has_creator and isinstance(content.get("creator"), str):
        sender = content["creator"]
    out = {sender} if isinstance(sender, str) else set()
    extra = content.get("additional_creators")
    if version.creators_infinite and isinstance(extra, list):
        out.update(u for u in extra if isinstance(u, str))
    return frozenset(out)


def create_content(
    creator: str,
    version: RoomVersion,
    creation_content: Mapping[str, Any],
    *,
    preset: str,
    invitees: Sequence[str],
) -> dict[str, Any]:
    """The ``m.room.create`` content createRoom writes.

    The server owns ``room_version`` and ``creator`` (it overwrites the
    client's). In v12 a ``trusted_private_chat``'s invitees join
    ``additional_creators``, deduplicated, as the spec asks.
    """
    content = {k: v for k, v in creation_content.items() if k not in ("creator", "room_version")}
    content["room_version"] = version.identifier
    if version.create_has_creator:
        content["creator"] = creator
    if version.creators_infinite:
        extra = content.get("additional_creators", [])
        if not isinstance(extra, list):
            extra = []
        if preset == "trusted_private_chat":
            extra = [*extra, *invitees]
        merged = list(dict.fromkeys(u for u in extra if u != creator))
        if merged:
            content["additional_creators"] = merged
        else:
            content.pop("additional_creators", None)
    else:
        content.pop("additional_creators", None)
    return content


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def create_event_id(create_event: Mapping[str, Any]) -> str:
    """A v12 create event's ID: a hash of its canonical JSON (ids and ``unsigned`` left out).

    Outlast has no federation PDU, so this hashes the event as it stores it;
    the room ID is the same hash with ``!`` (:func:`room_id_for`).
    """
    body = {k: v for k, v in create_event.items() if k not in ("event_id", "room_id", "unsigned")}
    return "$" + _b64(hashlib.sha256(jsonenc.canonical(body)).digest())


def room_id_for(create_event: Mapping[str, Any]) -> str:
    return "!" + create_event_id(create_event)[1:]
