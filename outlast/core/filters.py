"""Event filters: parsing, matching and field projection.

Clients narrow what ``/sync`` and ``/messages`` return by uploading filter
definitions (``POST /user/{userId}/filter``) or passing them inline.  This
module turns such a JSON definition into immutable values that can be applied
to events without touching storage, so the endpoints only have to fetch
events and hand them over.

Spec references (Client-Server API):

* "Filtering" and ``POST /user/{userId}/filter`` — the ``Filter`` object
  (``definitions/sync_filter.yaml``), ``EventFilter``
  (``definitions/event_filter.yaml``) and ``RoomEventFilter``
  (``definitions/room_event_filter.yaml``).
* Appendices, "Dot-separated property paths" — syntax of ``event_fields``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from outlast.core import ids
from outlast.core.errors import bad_json
from outlast.core.paths import ABSENT, lookup, split_path

__all__ = [
    "MAX_LIMIT",
    "EventFilter",
    "RoomFilter",
    "SyncFilter",
    "apply_event_fields",
    "default_sync_filter",
    "filter_id_for",
    "parse_event_filter",
    "parse_sync_filter",
]

# The spec asks servers to "impose a maximum value to avoid resource
# exhaustion" on `limit` (EventFilter.limit).  Larger requests are clamped
# to this rather than rejected, so over-eager clients still get an answer.
MAX_LIMIT = 1000

# Sync filter `event_format` enum (sync_filter.yaml).
_EVENT_FORMATS = ("client", "federation")


@lru_cache(maxsize=1024)
def _wildcard_regex(pattern: str) -> re.Pattern[str]:
    """Compile a type pattern where only ``*`` is special (any run of chars)."""
    # EventFilter.types / not_types: "A `*` can be used as a wildcard to match
    # any sequence of characters."  Everything else is literal, so `.` in
    # `m.room.*` must not act as a regex metacharacter.
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


def _type_matches(event_type: str, patterns: Sequence[str]) -> bool:
    for pattern in patterns:
        if "*" in pattern:
            if _wildcard_regex(pattern).fullmatch(event_type):
                return True
        elif pattern == event_type:
            return True
    return False


@dataclass(frozen=True)
class EventFilter:
    """One EventFilter / RoomEventFilter, ready to test events against.

    ``None`` for an include list means "absent, so everything"; an empty tuple
    means "present but empty, so nothing".  Exclusion lists are always tuples
    because absent and empty mean the same thing for them.
    """

    limit: int | None = None
    types: tuple[str, ...] | None = None
    not_types: tuple[str, ...] = ()
    senders: tuple[str, ...] | None = None
    not_senders: tuple[str, ...] = ()
    rooms: tuple[str, ...] | None = None
    not_rooms: tuple[str, ...] = ()
    contains_url: bool | None = None
    # RoomEventFilter.unread_thread_notifications (v1.4): the client wants per-thread
    # notification counts, and the room's own counts for the main timeline only.
    unread_thread_notifications: bool = False
    # RoomEventFilter.lazy_load_members: /messages answers the member events of the
    # page's senders in ``state`` (/sync does not lazy-load: it sends all state).
    lazy_load_members: bool = False

    def matches(self, event: Mapping[str, Any]) -> bool:
        """Whether ``event`` (client format) passes every clause of the filter."""
        # RoomEventFilter.rooms / not_rooms: only checked when the event says
        # which room it belongs to (sync strips room_id from timeline events;
        # callers filter those rooms through RoomFilter.room_allowed instead).
        room_id = event.get("room_id")
        if isinstance(room_id, str):
            # "A matching room will be excluded even if it is listed in 'rooms'."
            if room_id in self.not_rooms:
                return False
            if self.rooms is not None and room_id not in self.rooms:
                return False

        # EventFilter.senders / not_senders: exclusion wins over inclusion.
        sender = event.get("sender")
        if isinstance(sender, str) and sender in self.not_senders:
            return False
        if self.senders is not None and sender not in self.senders:
            return False

        # EventFilter.types / not_types, with `*` wildcards; exclusion wins.
        raw_type = event.get("type")
        event_type = raw_type if isinstance(raw_type, str) else ""
        if self.not_types and _type_matches(event_type, self.not_types):
            return False
        if self.types is not None and not _type_matches(event_type, self.types):
            return False

        # RoomEventFilter.contains_url: true keeps only events whose content
        # has a `url` key, false drops them, absent ignores the key.
        if self.contains_url is not None:
            content = event.get("content")
            has_url = isinstance(content, Mapping) and "url" in content
            if has_url != self.contains_url:
                return False
        return True

    def apply(self, events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """The events that match, in order.

        ``limit`` is deliberately not applied: callers usually need to know
        whether more events exist (to set ``limited`` / pagination tokens), so
        they cut the list themselves.
        """
        return [event for event in events if self.matches(event)]


@dataclass(frozen=True)
class RoomFilter:
    """The ``room`` part of a sync filter: which rooms, and which events in them."""

    rooms: tuple[str, ...] | None = None
    not_rooms: tuple[str, ...] = ()
    timeline: EventFilter = field(default_factory=EventFilter)
    state: EventFilter = field(default_factory=EventFilter)
    ephemeral: EventFilter = field(default_factory=EventFilter)
    account_data: EventFilter = field(default_factory=EventFilter)
    include_leave: bool = False

    def room_allowed(self, room_id: str) -> bool:
        """Whether the room survives ``rooms`` / ``not_rooms``.

        The spec applies this before the per-section filters; ``not_rooms``
        wins over ``rooms``.
        """
        if room_id in self.not_rooms:
            return False
        return self.rooms is None or room_id in self.rooms


@dataclass(frozen=True)
class SyncFilter:
    """A whole ``Filter`` object as uploaded to ``/user/{userId}/filter``."""

    room: RoomFilter = field(default_factory=RoomFilter)
    presence: EventFilter = field(default_factory=EventFilter)
    account_data: EventFilter = field(default_factory=EventFilter)
    event_fields: tuple[str, ...] | None = None
    event_format: str = "client"


def default_sync_filter() -> SyncFilter:
    """The filter used when a client supplies none: everything, client format.

    ``timeline.limit`` stays ``None`` so the sync endpoint can apply its own
    default page size.
    """
    return SyncFilter()


# ---------------------------------------------------------------------------
# Parsing.  Every helper takes the JSON path of the value it checks so that
# M_BAD_JSON errors point at the offending key.  Unknown keys are ignored
# (forward compatibility), and a JSON `null` is treated like an absent key.
# ---------------------------------------------------------------------------


def _require_object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise bad_json(f"{where} must be a JSON object")
    return value


def _string_list(
    obj: Mapping[str, Any],
    key: str,
    where: str,
    valid: Callable[[str], bool] | None = None,
    what: str = "strings",
) -> tuple[str, ...] | None:
    """A list of strings; with ``valid``, each must pass it (room or user IDs: the spec's
    filter schema names their formats, and Synapse refuses others)."""
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, (list, tuple)):
        raise bad_json(f"{where}{key} must be an array of {what}")
    for item in value:
        if not isinstance(item, str) or (valid is not None and not valid(item)):
            raise bad_json(f"{where}{key} must be an array of {what}")
    return tuple(value)


def _room_ids(obj: Mapping[str, Any], key: str, where: str) -> tuple[str, ...] | None:
    return _string_list(obj, key, where, ids.is_room_id, "room IDs")


def _user_ids(obj: Mapping[str, Any], key: str, where: str) -> tuple[str, ...] | None:
    return _string_list(obj, key, where, ids.is_user_id, "user IDs")


def _optional_bool(obj: Mapping[str, Any], key: str, where: str) -> bool | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise bad_json(f"{where}{key} must be a boolean")
    return value


def _limit(obj: Mapping[str, Any], where: str) -> int | None:
    value = obj.get("limit")
    if value is None:
        return None
    # bool is a subclass of int in Python but `true` is not an integer in JSON.
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_json(f"{where}limit must be an integer")
    # The spec says "greater than 0"; 0 is accepted as well because clients
    # use `timeline.limit: 0` to ask for room lists without any history.
    if value < 0:
        raise bad_json(f"{where}limit must not be negative")
    return min(value, MAX_LIMIT)


def _event_filter(value: Any, where: str, *, room_keys: bool) -> EventFilter:
    """Parse an EventFilter, or a RoomEventFilter when ``room_keys`` is true."""
    if value is None:
        return EventFilter()
    obj = _require_object(value, where.rstrip(".") or "filter")
    limit = _limit(obj, where)
    types = _string_list(obj, "types", where)
    not_types = _string_list(obj, "not_types", where) or ()
    senders = _user_ids(obj, "senders", where)
    not_senders = _user_ids(obj, "not_senders", where) or ()
    if not room_keys:
        # Plain EventFilter (presence, global account_data) has no room keys;
        # like any unknown key they are ignored there.
        return EventFilter(limit, types, not_types, senders, not_senders)
    # RoomEventFilter additions.  include_redundant_members is ignored (members are
    # always sent, which the spec allows); unread_thread_notifications only means
    # something on room.timeline, where /sync reads it; lazy_load_members only on
    # /messages.
    rooms = _room_ids(obj, "rooms", where)
    not_rooms = _room_ids(obj, "not_rooms", where) or ()
    contains_url = _optional_bool(obj, "contains_url", where)
    threads = _optional_bool(obj, "unread_thread_notifications", where)
    lazy = _optional_bool(obj, "lazy_load_members", where)
    return EventFilter(
        limit,
        types,
        not_types,
        senders,
        not_senders,
        rooms,
        not_rooms,
        contains_url,
        unread_thread_notifications=bool(threads),
        lazy_load_members=bool(lazy),
    )


def parse_event_filter(obj: Any) -> EventFilter:
    """Parse the RoomEventFilter given to ``/messages`` (``filter`` parameter).

    The caller decodes the query parameter's JSON; this validates its shape
    and raises ``M_BAD_JSON`` on anything malformed.
    """
    return _event_filter(_require_object(obj, "filter"), "", room_keys=True)


def parse_sync_filter(obj: Any) -> SyncFilter:
    """Validate a ``Filter`` definition and turn it into a :class:`SyncFilter`.

    Raises ``M_BAD_JSON`` when a key has the wrong shape (e.g. ``types`` not
    a list of strings, a non-integer or negative ``limit``).  ``limit``
    values above :data:`MAX_LIMIT` are clamped to it.
    """
    top = _require_object(obj, "filter")

    # Filter.room (RoomFilter)
    room_value = top.get("room")
    room_obj = _require_object({} if room_value is None else room_value, "room")
    include_leave = _optional_bool(room_obj, "include_leave", "room.")
    room = RoomFilter(
        rooms=_room_ids(room_obj, "rooms", "room."),
        not_rooms=_room_ids(room_obj, "not_rooms", "room.") or (),
        timeline=_event_filter(room_obj.get("timeline"), "room.timeline.", room_keys=True),
        state=_event_filter(room_obj.get("state"), "room.state.", room_keys=True),
        ephemeral=_event_filter(room_obj.get("ephemeral"), "room.ephemeral.", room_keys=True),
        account_data=_event_filter(
            room_obj.get("account_data"), "room.account_data.", room_keys=True
        ),
        include_leave=bool(include_leave),
    )

    # Filter.event_format: enum client | federation, default client.
    event_format = top.get("event_format")
    if event_format is None:
        event_format = "client"
    elif event_format not in _EVENT_FORMATS:
        raise bad_json("event_format must be 'client' or 'federation'")

    return SyncFilter(
        room=room,
        presence=_event_filter(top.get("presence"), "presence.", room_keys=False),
        account_data=_event_filter(top.get("account_data"), "account_data.", room_keys=False),
        event_fields=_string_list(top, "event_fields", ""),
        event_format=event_format,
    )


def filter_id_for(obj: Mapping[str, Any]) -> str:
    """A content-derived filter id, so uploading the same filter twice reuses it.

    First 16 hex digits of SHA-256 over the Canonical JSON encoding
    (Appendices, "Canonical JSON": sorted keys, no whitespace, UTF-8).  The
    spec forbids ids starting with ``{`` (that marks inline JSON filters);
    hex digits never do.
    """
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


# ---------------------------------------------------------------------------
# event_fields projection
# ---------------------------------------------------------------------------


def apply_event_fields(event: dict[str, Any], fields: Sequence[str] | None) -> dict[str, Any]:
    """Project ``event`` onto the Filter's ``event_fields`` paths.

    Returns a new dict holding only the requested properties (nested objects
    are rebuilt along each path; leaf values are deep-copied so the result
    can be mutated safely).  Paths that do not exist are skipped.

    With ``fields`` absent (``None``) or empty the event is returned as is,
    unchanged and uncopied: the spec lets a server "include more fields than
    were requested", and an event with no fields at all is of no use.
    """
    if not fields:
        return event
    out: dict[str, Any] = {}
    for path in fields:
        names = split_path(path)
        source = lookup(event, names)
        if source is ABSENT:
            continue
        # Rebuild the enclosing objects in `out`, then place the leaf.
        target = out
        for name in names[:-1]:
            child = target.get(name)
            if not isinstance(child, dict):
                child = {}
                target[name] = child
            target = child
        target[names[-1]] = copy.deepcopy(source)
    return out
