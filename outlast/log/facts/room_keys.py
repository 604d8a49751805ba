"""Facts of server-side key backup (``/room_keys/*``), on the users stream.

All of a user's backup facts go to one subject (``room_keys``), so they share
one order: a version's identity is the sequence of its creation fact, unique
and ordered at every site without a fence. Uploads are checked again when
applied (the version must still be the current one, and each key replaces the
stored one only under the spec's rule), so concurrent writes at two sites end
in the same keys everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from outlast.log.facts.base import Fact, Fields


@dataclass(frozen=True)
class BackupCreated(Fact):
    """A new backup version; its version is this fact's users-stream sequence."""

    OP: ClassVar[str] = "room_keys.create"
    user_id: str
    algorithm: str
    auth_data: dict[str, Any]

    @classmethod
    def read(cls, d: Fields) -> BackupCreated:
        return cls(d.text("user_id"), d.text("algorithm"), d.obj("auth_data"))


@dataclass(frozen=True)
class BackupUpdated(Fact):
    """A backup version's ``auth_data`` is replaced (its algorithm never changes)."""

    OP: ClassVar[str] = "room_keys.update"
    user_id: str
    version: str
    auth_data: dict[str, Any]

    @classmethod
    def read(cls, d: Fields) -> BackupUpdated:
        return cls(d.text("user_id"), d.text("version"), d.obj("auth_data"))


@dataclass(frozen=True)
class BackupDeleted(Fact):
    """A backup version and every key in it are deleted."""

    OP: ClassVar[str] = "room_keys.delete"
    user_id: str
    version: str

    @classmethod
    def read(cls, d: Fields) -> BackupDeleted:
        return cls(d.text("user_id"), d.text("version"))


@dataclass(frozen=True)
class BackupKeysStored(Fact):
    """Session keys uploaded to a version, ``{room_id: {"sessions": {session_id: data}}}``.
    Applied only while the version is current; each key only if it beats the stored one."""

    OP: ClassVar[str] = "room_keys.keys"
    user_id: str
    version: str
    rooms: dict[str, Any]

    @classmethod
    def read(cls, d: Fields) -> BackupKeysStored:
        return cls(d.text("user_id"), d.text("version"), d.obj("rooms"))


@dataclass(frozen=True)
class BackupKeysDeleted(Fact):
    """Keys deleted from a version: all of them, a room's (``room_id``), or one session's."""

    OP: ClassVar[str] = "room_keys.keys_delete"
    user_id: str
    version: str
    room_id: str | None = None
    session_id: str | None = None

    def fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {"user_id": self.user_id, "version": self.version}
        if self.room_id is not None:
            out["room_id"] = self.room_id
        if self.session_id is not None:
            out["session_id"] = self.session_id
        return out

    @classmethod
    def read(cls, d: Fields) -> BackupKeysDeleted:
        return cls(
            d.text("user_id"), d.text("version"), d.opt_text("room_id"), d.opt_text("session_id")
        )
