"""Sync assembly: turn per-room slices into the /sync response body.

The service gathers what each room contributes (already filtered for
visibility); these functions decide the response's shape, so the shape is
tested without a server.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from outlast.core.auth import stripped_state_types


@dataclass(frozen=True)
class RoomSlice:
    room_id: str
    section: str  # "join", "invite", "knock" or "leave"
    timeline: Sequence[dict[str, Any]] = ()
    limited: bool = False
    prev_batch: str | None = None
    state: Sequence[dict[str, Any]] = ()
    invite_state: Sequence[dict[str, Any]] = ()  # the knock_state, for a knock
    ephemeral: Sequence[dict[str, Any]] = ()
    account_data: Sequence[dict[str, Any]] = ()
    # ``unread_notifications`` and, when the filter asked, ``unread_thread_notifications``.
    unread: dict[str, Any] = field(default_factory=dict)


def stripped(event: dict[str, Any]) -> dict[str, Any]:
    """The stripped-state form used for invites and knocks: no ids, no timestamps."""
    return {
        "type": event["type"],
        "state_key": event["state_key"],
        "content": event.get("content", {}),
        "sender": event["sender"],
    }


def invite_state(
    state: Iterable[dict[str, Any]], invite_event: dict[str, Any]
) -> list[dict[str, Any]]:
    """What an invitee (or a knocker: ``knock_state``) sees of a room it has not joined:
    the room's identifying state, then its own membership event."""
    wanted = set(stripped_state_types())
    out = [stripped(e) for e in state if e["type"] in wanted and e.get("state_key") == ""]
    out.append(stripped(invite_event))
    return out


def state_delta(
    state_before_timeline: Iterable[dict[str, Any]], timeline: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """State to send beside a timeline: what the timeline itself doesn't already carry."""
    in_timeline = {e["event_id"] for e in timeline}
    return [e for e in state_before_timeline if e["event_id"] not in in_timeline]


def senders_members(
    state: Mapping[tuple[str, str], dict[str, Any]], events: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The member events of the senders of ``events``, each once, in order of first
    appearance: what lazy-loading clients need to show them (spec: "Lazy-loading
    room members")."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for event in events:
        sender = event.get("sender")
        if not isinstance(sender, str) or sender in seen:
            continue
        seen.add(sender)
        member = state.get(("m.room.member", sender))
        if member is not None:
            out.append(member)
    return out


def room_body(room: RoomSlice) -> dict[str, Any]:
    if room.section == "invite":
        return {"invite_state": {"events": list(room.invite_state)}}
    if room.section == "knock":
        return {"knock_state": {"events": list(room.invite_state)}}
    timeline: dict[str, Any] = {"events": list(room.timeline), "limited": room.limited}
    if room.prev_batch is not None:
        timeline["prev_batch"] = room.prev_batch
    body: dict[str, Any] = {
        "timeline": timeline,
        "state": {"events": list(room.state)},
        "account_data": {"events": list(room.account_data)},
    }
    if room.section == "join":
        body["ephemeral"] = {"events": list(room.ephemeral)}
        body["unread_notifications"] = dict(room.unread.get("unread_notifications") or {}) or {
            "notification_count": 0,
            "highlight_count": 0,
        }
        if "unread_thread_notifications" in room.unread:
            body["unread_thread_notifications"] = dict(room.unread["unread_thread_notifications"])
        body["summary"] = {}
    return body


def assemble(
    next_batch: str,
    rooms: Iterable[RoomSlice],
    *,
    account_data: Sequence[dict[str, Any]] = (),
    presence: Sequence[dict[str, Any]] = (),
    to_device: Sequence[dict[str, Any]] = (),
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    sections: dict[str, dict[str, Any]] = {"join": {}, "invite": {}, "knock": {}, "leave": {}}
    for room in rooms:
        sections[room.section][room.room_id] = room_body(room)
    response: dict[str, Any] = {
        "next_batch": next_batch,
        "rooms": sections,
        "account_data": {"events": list(account_data)},
        "presence": {"events": list(presence)},
        "to_device": {"events": list(to_device)},
        "device_lists": {"changed": [], "left": []},
        "device_one_time_keys_count": {},
    }
    if extra:
        for key, value in extra.items():
            if isinstance(value, dict) and isinstance(response.get(key), dict):
                response[key] = {**response[key], **value}
            else:
                response[key] = value
    return response


def is_empty(response: dict[str, Any]) -> bool:
    """True when a long-poll has nothing to deliver yet."""
    rooms = response.get("rooms", {})
    if any(rooms.get(section) for section in ("join", "invite", "knock", "leave")):
        return False
    for key in ("account_data", "presence", "to_device"):
        if response.get(key, {}).get("events"):
            return False
    lists = response.get("device_lists", {})
    # One-time-key counts alone never wake a long-poll: they ride along.
    return not (lists.get("changed") or lists.get("left"))


# --- which rooms an incremental sync visits --------------------------------------

# Beyond this many log positions between a token and now (every moved stream
# together), narrowing is not worth it: the client has been away long enough that
# most of its rooms may have changed, and a pass over each is what it needs anyway.
NARROW_MAX_POSITIONS = 10_000


@dataclass(frozen=True)
class Window:
    """One stream's positions an incremental sync covers: ``(after, upto]``."""

    stream: str
    after: int
    upto: int


def moved_windows(streams: Sequence[str], since: Sequence[int], now: Sequence[int]) -> list[Window]:
    """The streams that moved between two tokens' positions (in token order)."""
    return [
        Window(stream, after, upto)
        for stream, after, upto in zip(streams, since, now, strict=True)
        if after < upto
    ]


def worth_narrowing(windows: Iterable[Window]) -> bool:
    """Whether finding the changed rooms first is cheaper than visiting every room.

    Finding them costs what was written in the windows; visiting costs a pass
    per room. A short window (a long-poll, a client back after a minute) has few
    positions; a very long one may touch most rooms anyway."""
    return sum(w.upto - w.after for w in windows) <= NARROW_MAX_POSITIONS
