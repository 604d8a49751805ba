"""Facts about what users set for themselves: presence, profiles, account data, push.

All on the users stream, each on a subject of its kind (``presence``,
``profile``, ``account_data``, ``push``, ``pushers``), so they share the
user's one order with their account and sessions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from outlast.log.facts.base import Fact, Fields


@dataclass(frozen=True)
class PresenceSet(Fact):
    """A user's presence and status message (checked when applied: a known state)."""

    OP: ClassVar[str] = "presence.set"
    user_id: str
    presence: str
    status_msg: str | None
    ts: int

    @classmethod
    def read(cls, d: Fields) -> PresenceSet:
        return cls(
            d.text("user_id"), d.text("presence"), d.text_or_none("status_msg"), d.int_or("ts", 0)
        )


@dataclass(frozen=True)
class ProfileSet(Fact):
    """One profile field takes a value (any JSON); the last write of a field wins."""

    OP: ClassVar[str] = "profile_set"
    user_id: str
    key: str
    value: Any

    @classmethod
    def read(cls, d: Fields) -> ProfileSet:
        return cls(d.text("user_id"), d.text("key"), d.value("value"))


@dataclass(frozen=True)
class ProfileDeleted(Fact):
    """One profile field is removed."""

    OP: ClassVar[str] = "profile_delete"
    user_id: str
    key: str

    @classmethod
    def read(cls, d: Fields) -> ProfileDeleted:
        return cls(d.text("user_id"), d.text("key"))


GLOBAL = ""  # the room id of global account data


@dataclass(frozen=True)
class AccountDataSet(Fact):
    """Account data of one type, global (``room_id`` ``""``) or for one room."""

    OP: ClassVar[str] = "account_data"
    user_id: str
    room_id: str
    type: str
    content: dict[str, Any]

    @classmethod
    def read(cls, d: Fields) -> AccountDataSet:
        room_id = d.value("room_id") or GLOBAL
        if not isinstance(room_id, str):
            room_id = d.text("room_id")  # raises: not a string
        return cls(d.text("user_id"), room_id, d.text("type"), d.obj("content"))


@dataclass(frozen=True)
class RoomTagged(Fact):
    """One tag of a room set (``content`` an object) or removed (``content`` null)."""

    OP: ClassVar[str] = "room_tag"
    user_id: str
    room_id: str
    tag: str
    content: dict[str, Any] | None

    @classmethod
    def read(cls, d: Fields) -> RoomTagged:
        return cls(d.text("user_id"), d.text("room_id"), d.text("tag"), d.opt_obj("content"))


@dataclass(frozen=True)
class PushRulesSet(Fact):
    """The user's whole push-rules document (fenced on the previous one)."""

    OP: ClassVar[str] = "push_rules"
    user_id: str
    doc: dict[str, Any]

    @classmethod
    def read(cls, d: Fields) -> PushRulesSet:
        return cls(d.text("user_id"), d.obj("doc"))


@dataclass(frozen=True)
class PusherSet(Fact):
    """A pusher is added or replaced; without ``append`` its pushkey becomes this
    user's alone. ``http`` pushers are delivered to (outlast/push/delivery.py)."""

    OP: ClassVar[str] = "pusher_set"
    user_id: str
    pusher: dict[str, Any]
    append: bool

    @classmethod
    def read(cls, d: Fields) -> PusherSet:
        return cls(d.text("user_id"), d.obj("pusher"), d.flag("append"))


@dataclass(frozen=True)
class PusherDeleted(Fact):
    """A user's pusher is removed."""

    OP: ClassVar[str] = "pusher_delete"
    user_id: str
    app_id: str
    pushkey: str

    @classmethod
    def read(cls, d: Fields) -> PusherDeleted:
        return cls(d.text("user_id"), d.text("app_id"), d.text("pushkey"))
