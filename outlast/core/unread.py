"""Read state as pure functions: who has read what, and what is still unread.

Positions are ``(seq, idx)`` pairs in a room's total order (a larger tuple is
a later event). A user's *read position* in a room is the furthest event that
any of their ``m.read`` or ``m.read.private`` receipts points at, whatever the
receipt's ``thread_id``: a receipt on a later event implies every earlier one
was read. Threads are accepted and echoed back but not counted separately,
a deliberate approximation of the spec's threaded read receipts.

From it comes the per-message unread count (the KakaoTalk "1"): how many
currently joined members, other than the sender, have a read position before
the message (only ``m.room.message`` and ``m.room.encrypted`` carry it). A
room's ``unread_notifications`` come from the push rules instead
(``push_counts.py``), with threads counted apart as the spec says.
"""

from __future__ import annotations

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
