"""Read state as pure functions: who has read what, and what is still unread.

Positions are ``(seq, idx)`` pairs in a room's total order (a larger tuple is
a later event). A user's *read position* in a room is the furthest event that
any of their ``m.read`` or ``m.read.private`` receipts points at, whatever the
receipt's ``thread_id``: a receipt on a later event implies every earlier one
was read. Threads are accepted and echoed back but not counted separately,
a deliberate approximation of the spec's threaded read receipts.

Two numbers come from it:

- the per-message unread count (the KakaoTalk "1"): how many currently joined
  members, other than the sender, have a read position before the message;
- a room's ``unread_notifications``: messages from others after the user's
  read position, with highlights where a message names the user. This stands
  in for push-rule evaluation (spec: Client-Server API, "Receiving
  notifications"): only ``m.room.message`` and ``m.room.encrypted`` count,
  and a highlight is an ``m.mentions`` naming the user, or a body containing
  the user id or (as a whole word, any case) their display name. Encrypted
  bodies are unreadable here, so they never highlight.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Position = tuple[int, int]

READ_TYPES = ("m.read", "m.read.private")
PRIVATE_TYPES = frozenset({"m.read.private"})
MARKER_TYPES = frozenset({*READ_TYPES, "m.fully_read"})
COUNTED_TYPES = frozenset({"m.room.message", "m.room.encrypted"})
UNREAD_COUNT_KEY = "io.outlast.unread_count"


@dataclass(frozen=True)
class Receipt:
    """One stored receipt: the latest of its (user, type, thread) in a room."""

    user_id: str
    receipt_type: str
    thread_id: str  # "" for an unthreaded receipt
    event_id: str
    ts: int


def read_positions(receipts: Iterable[tuple[str, Position]]) -> dict[str, Position]:
    """Each user's furthest read position, from (user, position of receipted event) pairs."""
    furthest: dict[str, Position] = {}
    for user_id, position in receipts:
        if user_id not in furthest or position > furthest[user_id]:
            furthest[user_id] = position
    return furthest


def has_read(position: Position, read_position: Position | None) -> bool:
    """A receipt on this event or a later one means the event was read."""
    return read_position is not None and read_position >= position


def unread_count(
    position: Position,
    sender: str,
    joined: Iterable[str],
    read: Mapping[str, Position],
    joined_at: Mapping[str, Position] | None = None,
) -> int:
    """How many joined members besides the sender have not read the event at ``position``.

    With ``joined_at``, members who joined after the event are not counted: like
    KakaoTalk, inviting someone new does not raise the number on old messages.
    """
    return sum(
        1
        for user in set(joined)
        if user != sender
        and not has_read(position, read.get(user))
        and not (joined_at is not None and user in joined_at and joined_at[user] > position)
    )


def counted(event: Mapping[str, Any], user_id: str) -> bool:
    """Does this event count towards ``user_id``'s unread notifications?"""
    return event.get("type") in COUNTED_TYPES and event.get("sender") != user_id


def highlights(content: Any, user_id: str, display_name: str | None) -> bool:
    """Does a message name the user (intentional mention, user id, or display name)?"""
    if not isinstance(content, dict):
        return False
    mentions = content.get("m.mentions")
    if isinstance(mentions, dict):
        user_ids = mentions.get("user_ids")
        if isinstance(user_ids, list) and user_id in user_ids:
            return True
    body = content.get("body")
    if not isinstance(body, str):
        return False
    if user_id in body:
        return True
    if display_name and display_name.strip():
        # Whole words only, like the default push rule's display-name match.
        pattern = r"(?<!\w)" + re.escape(display_name.strip()) + r"(?!\w)"
        return re.search(pattern, body, flags=re.IGNORECASE) is not None
    return False


def notification_counts(
    events: Iterable[Mapping[str, Any]], user_id: str, display_name: str | None
) -> dict[str, int]:
    """``unread_notifications`` over the events after the user's read position."""
    notifications = highlight = 0
    for event in events:
        if not counted(event, user_id):
            continue
        notifications += 1
        if event.get("type") == "m.room.message" and highlights(
            event.get("content"), user_id, display_name
        ):
            highlight += 1
    return {"notification_count": notifications, "highlight_count": highlight}


MAIN_THREAD = "main"


def threaded_notification_counts(
    events: Iterable[tuple[Position, str, Mapping[str, Any]]],
    reads: Mapping[str, Position],
    user_id: str,
    display_name: str | None,
) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """Counts for a client that asked for ``unread_thread_notifications``.

    ``events`` are (position, thread, event): thread ``main`` or a thread root's
    ID. ``reads`` is the furthest read position per receipt ``thread_id`` (``""``
    for the unthreaded receipt). An event is read when the unthreaded receipt or
    its own thread's receipt is at or past it ("Threaded read receipts").
    Returns the main timeline's counts and each thread's that has any.
    """
    unthreaded = reads.get("")
    per_thread: dict[str, list[Mapping[str, Any]]] = {}
    for position, thread, event in events:
        if has_read(position, unthreaded) or has_read(position, reads.get(thread)):
            continue
        per_thread.setdefault(thread, []).append(event)
    counts = {
        thread: notification_counts(unseen, user_id, display_name)
        for thread, unseen in per_thread.items()
    }
    main = counts.pop(MAIN_THREAD, {"notification_count": 0, "highlight_count": 0})
    threads = {t: c for t, c in counts.items() if c["notification_count"] or c["highlight_count"]}
    return main, threads


def receipt_content(receipts: Iterable[Receipt]) -> dict[str, Any]:
    """The content of an ``m.receipt`` event: event id -> type -> user -> {ts, thread_id}."""
    content: dict[str, Any] = {}
    for r in receipts:
        entry: dict[str, Any] = {"ts": r.ts}
        if r.thread_id:
            entry["thread_id"] = r.thread_id
        content.setdefault(r.event_id, {}).setdefault(r.receipt_type, {})[r.user_id] = entry
    return content


def visible_to(receipt: Receipt, user_id: str) -> bool:
    """Private receipts are shown to their owner only."""
    return receipt.receipt_type not in PRIVATE_TYPES or receipt.user_id == user_id
