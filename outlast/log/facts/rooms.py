"""Facts about rooms: their events, receipts, directory listing, aliases, forgetting.

Room events go to the room's ``state`` subject (fenced: state changes) or its
``timeline`` subject (messages, judged again when applied), receipts to its
``receipt`` subject and its listing to its ``directory`` subject — all in the
room's partition stream, so they share the room's one order. Aliases live on
the directory stream, one fenced subject each; forgetting is a per-user fact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from outlast.log.facts.base import DecodeError, Fact, Fields


@dataclass(frozen=True)
class RoomEvents(Fact):
    """Room events, committed together, in order. ``txn`` names the sending device
    and its transaction id (a client send), so a retry finds the original."""

    OP: ClassVar[str] = "events"
    events: tuple[dict[str, Any], ...]
    txn: dict[str, Any] | None = None

    def fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"events": list(self.events)}
        if self.txn is not None:
            fields["txn"] = self.txn
        return fields

    @classmethod
    def read(cls, d: Fields) -> RoomEvents:
        events = d.items("events") if d.has("events") else []
        if not all(isinstance(e, dict) for e in events):
            raise DecodeError("events: every event must be an object")
        return cls(tuple(events), d.opt_obj("txn"))


@dataclass(frozen=True)
class ReceiptsMarked(Fact):
    """Read receipts and the fully-read marker a user set in a room. Each mark is
    ``{"type", "event_id"[, "thread_id"]}``; marks are checked when applied."""

    OP: ClassVar[str] = "receipts.mark"
    room_id: str
    user_id: str
    ts: int
    marks: tuple[Any, ...]

    @classmethod
    def read(cls, d: Fields) -> ReceiptsMarked:
        return cls(d.text("room_id"), d.text("user_id"), d.int_or("ts", 0), tuple(d.items("marks")))


@dataclass(frozen=True)
class RoomListed(Fact):
    """A room's visibility in the public room directory changes."""

    OP: ClassVar[str] = "room_directory"
    room_id: str
    visibility: str
    user_id: str

    @classmethod
    def read(cls, d: Fields) -> RoomListed:
        return cls(d.text("room_id"), d.text("visibility"), d.text("user_id"))


@dataclass(frozen=True)
class AliasSet(Fact):
    """An alias points at a room (its subject fenced: one owner across sites)."""

    OP: ClassVar[str] = "alias"
    alias: str
    room_id: str
    creator: str

    @classmethod
    def read(cls, d: Fields) -> AliasSet:
        return cls(d.text("alias"), d.text("room_id"), d.text("creator"))


@dataclass(frozen=True)
class AliasDeleted(Fact):
    """An alias is removed (fenced on the alias's last fact)."""

    OP: ClassVar[str] = "alias_delete"
    alias: str

    @classmethod
    def read(cls, d: Fields) -> AliasDeleted:
        return cls(d.text("alias"))


@dataclass(frozen=True)
class RoomForgotten(Fact):
    """A user forgets a room they left: it no longer shows in their /sync."""

    OP: ClassVar[str] = "forget"
    user_id: str
    room_id: str

    @classmethod
    def read(cls, d: Fields) -> RoomForgotten:
        return cls(d.text("user_id"), d.text("room_id"))
