"""The room list behind sliding sync windows: membership rules, filters, order, ranges.

Every site holds the same view of a user's rooms, and the order below uses
only that data (last activity, then room ID), so a window cut at one site
names the same rooms at any other.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from outlast.core.sliding.request import ListConfig, ListFilters, RoomConfig, SlidingRequest

# Event types that move a room's bump_stamp (MSC4186, "bump_stamp").
BUMP_TYPES = frozenset(
    (
        "m.room.create",
        "m.room.message",
        "m.room.encrypted",
        "m.sticker",
        "m.call.invite",
        "m.poll.start",
        "m.beacon_info",
    )
)


@dataclass(frozen=True)
class RoomListEntry:
    """What the list needs to know about one of the user's rooms.

    ``activity`` orders the list (greater is more recent): for a joined room
    the time of its latest event, otherwise the time of the user's latest
    membership change, which is all they may see. ``by_self`` says the user
    sent their own current member event (left or rejected an invite, as
    opposed to being kicked or banned); ``ever_joined`` whether they were
    ever joined.
    """

    room_id: str
    membership: str
    activity: int
    by_self: bool = True
    ever_joined: bool = True
    is_dm: bool = False
    is_encrypted: bool = False
    room_type: str | None = None
    tags: frozenset[str] = frozenset()
    name: str | None = None
    spaces: frozenset[str] = frozenset()


def bump_stamp(events: Iterable[Mapping[str, Any]]) -> int | None:
    """The ``origin_server_ts`` of the latest event of a bumping type, if any.

    A timestamp is allowed by the MSC and, unlike a stream sequence, it is
    comparable across rooms in different partitions.
    """
    stamp: int | None = None
    for event in events:
        ts = event.get("origin_server_ts")
        if event.get("type") in BUMP_TYPES and isinstance(ts, int):
            stamp = ts if stamp is None else max(stamp, ts)
    return stamp


def in_server_list(entry: RoomListEntry, sent_before: bool) -> bool:
    """The MSC's "server list": which of a user's rooms lists may show at all.

    Joined, invited and knocked rooms always; kicked or banned rooms too,
    unless the user was banned without ever joining; rooms the user left
    themselves only if this connection already showed them (so the client
    learns of the leave, but old rooms do not come back).
    """
    if entry.membership in ("join", "invite", "knock"):
        return True
    if entry.membership == "ban":
        return entry.ever_joined
    if entry.membership == "leave":
        return sent_before or not entry.by_self
    return False


def matches(entry: RoomListEntry, filters: ListFilters) -> bool:
    """Whether a room passes every filter of a list (absent filters pass)."""
    if filters.is_dm is not None and entry.is_dm != filters.is_dm:
        return False
    if filters.is_encrypted is not None and entry.is_encrypted != filters.is_encrypted:
        return False
    if filters.is_invite is not None and (entry.membership == "invite") != filters.is_invite:
        return False
    if entry.room_type in filters.not_room_types:
        return False  # not_room_types wins over room_types
    if filters.room_types is not None and entry.room_type not in filters.room_types:
        return False
    if entry.tags & set(filters.not_tags):
        return False  # not_tags wins over tags
    if filters.tags is not None and not entry.tags & set(filters.tags):
        return False
    if filters.spaces is not None and not entry.spaces & set(filters.spaces):
        return False
    if filters.room_name_like is not None:
        return filters.room_name_like.casefold() in (entry.name or "").casefold()
    return True


def sort_rooms(entries: Iterable[RoomListEntry]) -> list[RoomListEntry]:
    """Most recent activity first; the room ID breaks ties the same way everywhere."""
    return sorted(entries, key=lambda e: (-e.activity, e.room_id))


@dataclass(frozen=True)
class ListWindow:
    """One list's result: its ``count`` and, per range, the rooms in it."""

    count: int
    ops: tuple[tuple[tuple[int, int], tuple[str, ...]], ...]

    def room_ids(self) -> list[str]:
        return [room_id for _, ids in self.ops for room_id in ids]

    def body(self) -> dict[str, Any]:
        ops = [{"op": "SYNC", "range": list(r), "room_ids": list(ids)} for r, ids in self.ops]
        return {"count": self.count, "ops": ops}


def cut_window(config: ListConfig, ordered: Sequence[RoomListEntry]) -> ListWindow:
    """Filter the ordered server list and cut the list's ranges (inclusive) out of it."""
    rows = [e.room_id for e in ordered if matches(e, config.filters)]
    if config.ranges is None:
        return ListWindow(len(rows), (((0, max(len(rows) - 1, 0)), tuple(rows)),))
    ops = tuple(((start, end), tuple(rows[start : end + 1])) for start, end in config.ranges)
    return ListWindow(len(rows), ops)


@dataclass(frozen=True)
class Selection:
    """Which rooms this request covers, with their combined config and list names."""

    windows: Mapping[str, ListWindow]
    configs: Mapping[str, RoomConfig]
    lists_of: Mapping[str, tuple[str, ...]]


def select_rooms(
    request: SlidingRequest,
    rooms: Iterable[RoomListEntry],
    sent_before: Collection[str] = (),
) -> Selection:
    """Cut every list's windows and add the subscriptions the user may see.

    ``rooms`` are all of the user's rooms; ``sent_before`` the rooms this
    connection has already shown. A subscription to a room outside the
    server list (unknown, or never visible to the user) is ignored.
    """
    by_id = {e.room_id: e for e in rooms}
    visible = [e for e in by_id.values() if in_server_list(e, e.room_id in sent_before)]
    ordered = sort_rooms(visible)
    visible_ids = {e.room_id for e in visible}
    windows: dict[str, ListWindow] = {}
    configs: dict[str, RoomConfig] = {}
    lists_of: dict[str, list[str]] = {}
    for key, config in request.lists.items():
        window = cut_window(config, ordered)
        windows[key] = window
        for room_id in window.room_ids():
            old = configs.get(room_id)
            configs[room_id] = config.room if old is None else old.combine(config.room)
            lists_of.setdefault(room_id, []).append(key)
    for room_id, wanted in request.subscriptions.items():
        if room_id in visible_ids:
            old = configs.get(room_id)
            configs[room_id] = wanted if old is None else old.combine(wanted)
    return Selection(windows, configs, {k: tuple(v) for k, v in lists_of.items()})


def extension_rooms(
    lists: Collection[str],
    rooms: Collection[str],
    selection: Selection,
    subscribed: Collection[str],
) -> set[str]:
    """Rooms an extension (account_data, receipts, typing) covers, per its lists/rooms keys."""
    out: set[str] = set()
    for key, window in selection.windows.items():
        if "*" in lists or key in lists:
            out.update(window.room_ids())
    wanted = set(subscribed) if "*" in rooms else set()
    wanted.update(r for r in rooms if r != "*")
    out.update(r for r in wanted if r in selection.configs)
    return out
