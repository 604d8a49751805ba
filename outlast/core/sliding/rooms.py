"""Render sliding sync room entries and the response, from plain data.

Field names follow what Synapse serves and matrix-rust-sdk (ruma) and
matrix-js-sdk read: ``timeline`` (the MSC's ``timeline_events``) and
``invite_state`` (the MSC's ``stripped_state``). When ``initial`` is set an
absent field means "not set"; otherwise it means "unchanged", so a delta
carries only what changed since ``pos`` (a removed name or avatar is
``null``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from outlast.core import room_summary
from outlast.core.sliding.connection import RoomPlan
from outlast.core.sliding.lists import ListWindow
from outlast.core.sliding.request import MEMBER
from outlast.core.sliding.state import StateKey, StateMap, select_state

NAME: Final = ("m.room.name", "")
AVATAR: Final = ("m.room.avatar", "")


def cut_timeline(
    events: Sequence[Mapping[str, Any]], limit: int, *, more_before: bool
) -> tuple[list[Mapping[str, Any]], bool]:
    """The last ``limit`` of ``events`` (oldest first) and whether that leaves a gap."""
    kept = list(events[max(len(events) - limit, 0) :]) if limit else []
    return kept, more_before or len(kept) < len(events)


def num_live(seqs: Sequence[int], since_seq: int | None) -> int:
    """How many timeline events are newer than the ``pos`` (by their partition sequence)."""
    return 0 if since_seq is None else sum(1 for seq in seqs if seq > since_seq)


@dataclass(frozen=True)
class RoomData:
    """Everything one room entry is rendered from; the service gathers it from the view."""

    membership: str
    state: StateMap = field(default_factory=dict)
    timeline: Sequence[Mapping[str, Any]] = ()
    limited: bool = False
    prev_batch: str | None = None
    num_live: int = 0
    changed_state: Collection[StateKey] = ()
    bump_stamp: int | None = None
    is_dm: bool = False
    dm_changed: bool = False
    invite_state: Sequence[Mapping[str, Any]] = ()
    notification_count: int = 0
    highlight_count: int = 0
    members_sent: Collection[str] = ()


def _meta(plan: RoomPlan, data: RoomData, user_id: str) -> dict[str, Any]:
    """Name, avatar, heroes and counts: all when initial, else the changed ones."""
    out: dict[str, Any] = {}
    changed = set(data.changed_state)
    name = room_summary.room_name(data.state)
    avatar = room_summary.room_avatar(data.state)
    members_changed = any(k[0] == MEMBER for k in changed)
    if plan.initial:
        if name is not None:
            out["name"] = name
        if avatar is not None:
            out["avatar"] = avatar
    else:
        if NAME in changed:
            out["name"] = name
        if AVATAR in changed:
            out["avatar"] = avatar
    if name is None and (plan.initial or members_changed or NAME in changed):
        heroes = room_summary.heroes(data.state, user_id)
        if heroes:
            out["heroes"] = heroes
    if plan.initial or members_changed:
        out["joined_count"], out["invited_count"] = room_summary.counts(data.state)
    if (data.is_dm and plan.initial) or data.dm_changed:
        out["is_dm"] = data.is_dm
    return out


def room_entry(plan: RoomPlan, data: RoomData, user_id: str) -> dict[str, Any]:
    """One ``rooms`` entry of the response."""
    entry: dict[str, Any] = {"membership": data.membership}
    if plan.initial:
        entry["initial"] = True
    if plan.lists:
        entry["lists"] = list(plan.lists)
    if data.bump_stamp is not None:
        entry["bump_stamp"] = data.bump_stamp
    if data.membership in ("invite", "knock"):
        # Before joining, only what the invite or knock carried may be shown.
        entry["invite_state"] = list(data.invite_state)
        return entry
    entry.update(_meta(plan, data, user_id))
    required = select_state(
        plan.config,
        data.state,
        user_id,
        initial=plan.initial,
        changed=data.changed_state,
        previous=plan.previous,
        timeline=data.timeline,
        limited=data.limited,
        members_sent=data.members_sent,
    )
    if required:
        entry["required_state"] = required
    if data.timeline:
        entry["timeline"] = list(data.timeline)
    if plan.expanded_timeline:
        entry["expanded_timeline"] = True
    if data.limited:
        entry["limited"] = True
    if data.prev_batch is not None:
        entry["prev_batch"] = data.prev_batch
    entry["num_live"] = data.num_live
    entry["notification_count"] = data.notification_count
    entry["highlight_count"] = data.highlight_count
    return entry


def has_news(entry: Mapping[str, Any]) -> bool:
    """Whether a room entry is worth answering a long-poll for (``limited`` alone: new
    events a ``timeline_limit`` of 0 does not show, which still move the room up)."""
    keys = (
        "initial",
        "timeline",
        "limited",
        "required_state",
        "name",
        "avatar",
        "heroes",
        "joined_count",
    )
    return any(k in entry for k in keys) or "invite_state" in entry or "is_dm" in entry


def extensions_have_news(extensions: Mapping[str, Any]) -> bool:
    """One-time-key counts alone never wake a long-poll (as in ``/sync``)."""
    if extensions.get("to_device", {}).get("events"):
        return True
    lists = extensions.get("e2ee", {}).get("device_lists", {})
    if lists.get("changed") or lists.get("left"):
        return True
    account_data = extensions.get("account_data", {})
    if account_data.get("global") or account_data.get("rooms"):
        return True
    return any(extensions.get(name, {}).get("rooms") for name in ("receipts", "typing"))


def response(
    pos: str,
    windows: Mapping[str, ListWindow],
    rooms: Mapping[str, Mapping[str, Any]],
    extensions: Mapping[str, Any],
    txn_id: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "pos": pos,
        "lists": {key: window.body() for key, window in windows.items()},
        "rooms": {room_id: dict(entry) for room_id, entry in rooms.items()},
        "extensions": dict(extensions),
    }
    if txn_id is not None:
        body["txn_id"] = txn_id
    return body


def is_empty(body: Mapping[str, Any]) -> bool:
    """True when a long-poll should keep waiting (list counts alone are no news)."""
    if any(has_news(entry) for entry in body.get("rooms", {}).values()):
        return False
    return not extensions_have_news(body.get("extensions", {}))
