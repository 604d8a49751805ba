"""Parse and validate a sliding sync request body (MSC4186).

Two dialects reach the same endpoint and both are accepted:

- what matrix-rust-sdk (Element X) and matrix-js-sdk send today, which is also
  what Synapse serves: ``ranges: [[0, 19]]``, ``required_state`` as
  ``[type, state_key]`` pairs with ``*`` wildcards, ``$LAZY`` and ``$ME``,
  ``filters.is_invite``, and ``pos``/``timeout`` in the query string;
- the current MSC text: ``range: [0, 19]``, ``required_state`` as
  ``{include, exclude, lazy_members}``, ``filters.is_invited``, and ``pos``
  and ``timeout`` in the body.

Both become the same immutable values. Unknown keys and unknown extensions
are ignored, as the MSC asks (a newer client must keep working).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from outlast.core.errors import bad_json, invalid_param

WILDCARD: Final = "*"
LAZY: Final = "$LAZY"
ME: Final = "$ME"
MEMBER: Final = "m.room.member"

MAX_LISTS: Final = 100  # the MSC's limit
MAX_KEY_BYTES: Final = 64  # list keys and conn_id; Synapse uses the same cap
MAX_RANGES: Final = 20
MAX_SUBSCRIPTIONS: Final = 500
MAX_STATE_ENTRIES: Final = 100  # per required_state
MAX_TIMELINE_LIMIT: Final = 100  # larger values are clamped ("the server may cap this")
MAX_INDEX: Final = 2**53 - 1  # clients send huge range ends to mean "to the end"
PRESENCE_STATES: Final = ("online", "offline", "unavailable")
KNOWN_EXTENSIONS: Final = ("to_device", "e2ee", "account_data", "receipts", "typing")


@dataclass(frozen=True)
class StateMatcher:
    """One ``required_state`` entry; ``None`` matches any type or any state key."""

    event_type: str | None
    state_key: str | None

    def matches(self, event_type: str, state_key: str, user_id: str) -> bool:
        if self.event_type is not None and self.event_type != event_type:
            return False
        wanted = user_id if self.state_key == ME else self.state_key
        return wanted is None or wanted == state_key


@dataclass(frozen=True)
class RequiredState:
    """Which state a room entry carries: included, not excluded, plus lazy members."""

    include: tuple[StateMatcher, ...] = ()
    exclude: tuple[StateMatcher, ...] = ()
    lazy_members: bool = False

    def wants(self, event_type: str, state_key: str, user_id: str) -> bool:
        if not any(m.matches(event_type, state_key, user_id) for m in self.include):
            return False
        return not any(m.matches(event_type, state_key, user_id) for m in self.exclude)


@dataclass(frozen=True)
class RoomConfig:
    """The "room config" of a list or subscription; combined ones keep every part.

    Combining keeps the ``required_state`` of each rule separately and returns
    whatever any of them wants (the MSC's approach (a)), which avoids merging
    wildcards and excludes by hand.
    """

    timeline_limit: int
    required_state: tuple[RequiredState, ...] = ()

    def combine(self, other: RoomConfig) -> RoomConfig:
        merged = self.required_state + tuple(
            r for r in other.required_state if r not in self.required_state
        )
        return RoomConfig(max(self.timeline_limit, other.timeline_limit), merged)

    @property
    def lazy_members(self) -> bool:
        return any(r.lazy_members for r in self.required_state)

    def wants(self, event_type: str, state_key: str, user_id: str) -> bool:
        return any(r.wants(event_type, state_key, user_id) for r in self.required_state)


@dataclass(frozen=True)
class ListFilters:
    """``filters`` of a list; ``None`` means "do not filter on this"."""

    is_dm: bool | None = None
    is_encrypted: bool | None = None
    is_invite: bool | None = None
    room_types: tuple[str | None, ...] | None = None
    not_room_types: tuple[str | None, ...] = ()
    tags: tuple[str, ...] | None = None
    not_tags: tuple[str, ...] = ()
    spaces: tuple[str, ...] | None = None
    room_name_like: str | None = None


@dataclass(frozen=True)
class ListConfig:
    """A list: its filters, its windows (``None``: the whole list) and room config."""

    room: RoomConfig
    ranges: tuple[tuple[int, int], ...] | None = None
    filters: ListFilters = ListFilters()


@dataclass(frozen=True)
class ExtensionConfig:
    """An extension's settings. ``lists``/``rooms`` hold ``*`` for "all"."""

    enabled: bool = False
    lists: tuple[str, ...] = (WILDCARD,)
    rooms: tuple[str, ...] = (WILDCARD,)
    limit: int | None = None
    since: str | None = None


@dataclass(frozen=True)
class SlidingRequest:
    conn_id: str = ""
    txn_id: str | None = None
    pos: str | None = None
    timeout_ms: int = 0
    set_presence: str = "online"
    lists: Mapping[str, ListConfig] = field(default_factory=dict)
    subscriptions: Mapping[str, RoomConfig] = field(default_factory=dict)
    extensions: Mapping[str, ExtensionConfig] = field(default_factory=dict)

    def extension(self, name: str) -> ExtensionConfig | None:
        """The extension's config if the client enabled it in this request."""
        config = self.extensions.get(name)
        return config if config is not None and config.enabled else None


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise bad_json(f"{where} must be an object")
    return value


def _string(value: Any, where: str, max_bytes: int = 255) -> str:
    if not isinstance(value, str) or len(value.encode("utf-8")) > max_bytes:
        raise bad_json(f"{where} must be a string of at most {max_bytes} bytes")
    return value


def _int(value: Any, where: str, maximum: int = MAX_INDEX) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise bad_json(f"{where} must be an integer from 0 to {maximum}")
    return value


def _bool(obj: Mapping[str, Any], key: str, where: str) -> bool | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, bool):
        raise bad_json(f"{where}.{key} must be a boolean")
    return value


def _strings(value: Any, where: str, *, nullable: bool = False) -> tuple[Any, ...]:
    if not isinstance(value, list) or len(value) > MAX_SUBSCRIPTIONS:
        raise bad_json(f"{where} must be a list")
    for item in value:
        if not (isinstance(item, str) or (nullable and item is None)):
            raise bad_json(f"{where} must hold strings")
    return tuple(value)


def _pair_matcher(entry: Any, where: str) -> tuple[StateMatcher | None, bool]:
    """``[type, state_key]``: ``*`` is a wildcard; ``[m.room.member, $LAZY]`` turns on lazy."""
    if not (isinstance(entry, list) and len(entry) == 2 and all(isinstance(x, str) for x in entry)):
        raise bad_json(f"{where} entries must be [type, state_key] string pairs")
    event_type, state_key = entry
    if state_key == LAZY:
        return None, event_type in (MEMBER, WILDCARD)
    return StateMatcher(
        None if event_type == WILDCARD else event_type,
        None if state_key == WILDCARD else state_key,
    ), False


def _object_matcher(entry: Any, where: str) -> StateMatcher:
    """``{type?, state_key?}``: an absent field matches anything."""
    obj = _object(entry, where)
    event_type, state_key = obj.get("type"), obj.get("state_key")
    for name, value in (("type", event_type), ("state_key", state_key)):
        if value is not None and not isinstance(value, str):
            raise bad_json(f"{where}.{name} must be a string")
    return StateMatcher(event_type, state_key)


def parse_required_state(value: Any, where: str = "required_state") -> RequiredState:
    if value is None:
        return RequiredState()
    if isinstance(value, list):
        if len(value) > MAX_STATE_ENTRIES:
            raise bad_json(f"{where} has more than {MAX_STATE_ENTRIES} entries")
        include: list[StateMatcher] = []
        lazy = False
        for entry in value:
            matcher, is_lazy = _pair_matcher(entry, where)
            lazy = lazy or is_lazy
            if matcher is not None and matcher not in include:
                include.append(matcher)
        return RequiredState(tuple(include), (), lazy)
    obj = _object(value, where)
    parts: dict[str, tuple[StateMatcher, ...]] = {}
    for key in ("include", "exclude"):
        entries = obj.get(key, [])
        if not isinstance(entries, list) or len(entries) > MAX_STATE_ENTRIES:
            raise bad_json(f"{where}.{key} must be a list of at most {MAX_STATE_ENTRIES}")
        parts[key] = tuple(_object_matcher(e, f"{where}.{key}") for e in entries)
    lazy_flag = _bool(obj, "lazy_members", where)
    return RequiredState(parts["include"], parts["exclude"], bool(lazy_flag))


def parse_room_config(value: Any, where: str) -> RoomConfig:
    obj = _object(value, where)
    limit = obj.get("timeline_limit", 0)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise bad_json(f"{where}.timeline_limit must be a non-negative integer")
    required = parse_required_state(obj.get("required_state"), f"{where}.required_state")
    return RoomConfig(min(limit, MAX_TIMELINE_LIMIT), (required,))


def _ranges(obj: Mapping[str, Any], where: str) -> tuple[tuple[int, int], ...] | None:
    if "ranges" in obj and obj["ranges"] is not None:
        raw = obj["ranges"]
        if not isinstance(raw, list) or len(raw) > MAX_RANGES:
            raise bad_json(f"{where}.ranges must be a list of at most {MAX_RANGES} ranges")
    elif obj.get("range") is not None:
        raw = [obj["range"]]
    else:
        return None
    out: list[tuple[int, int]] = []
    for pair in raw:
        if not (isinstance(pair, list) and len(pair) == 2):
            raise bad_json(f"{where}: a range is [start, end]")
        start, end = _int(pair[0], f"{where} range start"), _int(pair[1], f"{where} range end")
        if start > end:
            raise bad_json(f"{where}: a range must not end before it starts")
        out.append((start, end))
    return tuple(out)


def parse_filters(value: Any, where: str) -> ListFilters:
    if value is None:
        return ListFilters()
    obj = _object(value, where)
    is_invite = _bool(obj, "is_invite", where)
    if is_invite is None:
        is_invite = _bool(obj, "is_invited", where)

    def optional(key: str, nullable: bool = False) -> tuple[Any, ...] | None:
        raw = obj.get(key)
        return None if raw is None else _strings(raw, f"{where}.{key}", nullable=nullable)

    name_like = obj.get("room_name_like")
    return ListFilters(
        is_dm=_bool(obj, "is_dm", where),
        is_encrypted=_bool(obj, "is_encrypted", where),
        is_invite=is_invite,
        room_types=optional("room_types", nullable=True),
        not_room_types=optional("not_room_types", nullable=True) or (),
        tags=optional("tags"),
        not_tags=optional("not_tags") or (),
        spaces=optional("spaces"),
        room_name_like=None if name_like is None else _string(name_like, f"{where}.room_name_like"),
    )


def parse_extension(value: Any, name: str) -> ExtensionConfig:
    where = f"extensions.{name}"
    obj = _object(value, where)
    lists, rooms = obj.get("lists"), obj.get("rooms")
    limit, since = obj.get("limit"), obj.get("since")
    return ExtensionConfig(
        enabled=bool(_bool(obj, "enabled", where)),
        lists=(WILDCARD,) if lists is None else _strings(lists, f"{where}.lists"),
        rooms=(WILDCARD,) if rooms is None else _strings(rooms, f"{where}.rooms"),
        limit=None if limit is None else _int(limit, f"{where}.limit", 1000),
        since=None if since is None else _string(since, f"{where}.since", 1024),
    )


def _query_int(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    if not (value.isascii() and value.isdigit() and len(value) <= 12):
        raise invalid_param(f"{name} must be a non-negative integer")
    return int(value)


def _or_empty(obj: Mapping[str, Any], key: str) -> Any:
    value = obj.get(key)
    return {} if value is None else value


def parse_request(body: Any, query: Mapping[str, str] | None = None) -> SlidingRequest:
    """A validated request from the JSON body and the query string (``pos``, ``timeout``)."""
    obj = _object(body, "the request body")
    query = query or {}
    lists_obj = _object(_or_empty(obj, "lists"), "lists")
    if len(lists_obj) > MAX_LISTS:
        raise bad_json(f"at most {MAX_LISTS} lists")
    lists: dict[str, ListConfig] = {}
    for key, raw in lists_obj.items():
        where = f"lists.{_string(key, 'a list key', MAX_KEY_BYTES)}"
        list_obj = _object(raw, where)
        lists[key] = ListConfig(
            room=parse_room_config(list_obj, where),
            ranges=_ranges(list_obj, where),
            filters=parse_filters(list_obj.get("filters"), f"{where}.filters"),
        )
    subs_obj = _object(_or_empty(obj, "room_subscriptions"), "room_subscriptions")
    if len(subs_obj) > MAX_SUBSCRIPTIONS:
        raise bad_json(f"at most {MAX_SUBSCRIPTIONS} room subscriptions")
    subscriptions: dict[str, RoomConfig] = {}
    for room_id, raw in subs_obj.items():
        if not room_id.startswith("!") or len(room_id.encode("utf-8")) > 255:
            raise bad_json(f"room_subscriptions: {room_id[:80]!r} is not a room ID")
        subscriptions[room_id] = parse_room_config(raw, f"room_subscriptions.{room_id}")
    ext_obj = _object(_or_empty(obj, "extensions"), "extensions")
    extensions = {
        name: parse_extension(ext_obj[name], name) for name in KNOWN_EXTENSIONS if name in ext_obj
    }
    pos = query.get("pos", obj.get("pos"))
    timeout = _query_int(query.get("timeout"), "timeout")
    if timeout is None:
        raw_timeout = obj.get("timeout", 0)
        timeout = 0 if raw_timeout is None else _int(raw_timeout, "timeout")
    presence = query.get("set_presence", obj.get("set_presence")) or "online"
    if presence not in PRESENCE_STATES:
        raise invalid_param(f"set_presence must be one of {', '.join(PRESENCE_STATES)}")
    txn_id = obj.get("txn_id")
    return SlidingRequest(
        conn_id=_string(obj.get("conn_id") or "", "conn_id", MAX_KEY_BYTES),
        txn_id=None if txn_id is None else _string(txn_id, "txn_id"),
        pos=None if pos is None else _string(pos, "pos", 4096),
        timeout_ms=timeout,
        set_presence=presence,
        lists=lists,
        subscriptions=subscriptions,
        extensions=extensions,
    )
