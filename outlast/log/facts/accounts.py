"""Facts about accounts, sessions and devices (the users stream).

Account changes go to the user's ``account`` subject (registration is fenced
there at 0, so a name is taken once across sites), sessions to ``session``,
device renames and deletions to ``devices``, filters and forgotten rooms to
``data``, and the administrator flag to ``admin``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from outlast.log.facts.base import DecodeError, Fact, Fields


@dataclass(frozen=True)
class NewDevice:
    """A device a registration or login creates, with its access token's SHA-256.

    A client that asked for a refresh token gets an access token that expires at
    ``expires_at`` (ms) and a refresh token (``refresh_hash``) that expires at
    ``refresh_expires_at`` (ms, absent: never); these keys are absent otherwise."""

    device_id: str
    token_hash: str
    display_name: str | None = None
    expires_at: int | None = None
    refresh_hash: str | None = None
    refresh_expires_at: int | None = None

    def encode(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "device_id": self.device_id,
            "token_hash": self.token_hash,
            "display_name": self.display_name,
        }
        if self.refresh_hash is not None:
            out["refresh_hash"] = self.refresh_hash
            out["expires_at"] = self.expires_at
            if self.refresh_expires_at is not None:
                out["refresh_expires_at"] = self.refresh_expires_at
        return out

    @classmethod
    def read(cls, raw: Any) -> NewDevice:
        if not isinstance(raw, dict):
            raise DecodeError("device must be an object")
        d = Fields("device", raw)
        refresh_hash = d.opt_text("refresh_hash")
        return cls(
            d.text("device_id"),
            d.text("token_hash"),
            d.opt_text("display_name"),
            d.integer("expires_at") if refresh_hash is not None else None,
            refresh_hash,
            d.integer("refresh_expires_at") if d.has("refresh_expires_at") else None,
        )


@dataclass(frozen=True)
class Register(Fact):
    """An account is created (and, unless login was inhibited, its first session)."""

    OP: ClassVar[str] = "register"
    user_id: str
    password_hash: str | None
    ts: int
    device: NewDevice | None
    admin: bool = False

    def fields(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "password_hash": self.password_hash,
            "ts": self.ts,
            "device": self.device.encode() if self.device is not None else None,
            "admin": int(self.admin),
        }

    @classmethod
    def read(cls, d: Fields) -> Register:
        device = d.value("device")
        return cls(
            d.text("user_id"),
            d.opt_text("password_hash"),
            d.int_or("ts", 0),
            NewDevice.read(device) if device else None,
            bool(d.value("admin")),
        )


@dataclass(frozen=True)
class Login(Fact):
    """A new session; a login that reuses a device id replaces that device's token."""

    OP: ClassVar[str] = "login"
    user_id: str
    device: NewDevice
    ts: int

    @classmethod
    def read(cls, d: Fields) -> Login:
        return cls(d.text("user_id"), NewDevice.read(d.value("device")), d.int_or("ts", 0))


@dataclass(frozen=True)
class Logout(Fact):
    """The session holding this token ends, and its device with it."""

    OP: ClassVar[str] = "logout"
    user_id: str
    token_hash: str

    @classmethod
    def read(cls, d: Fields) -> Logout:
        return cls(d.text("user_id"), d.text("token_hash"))


@dataclass(frozen=True)
class LogoutAll(Fact):
    """Every session and device of the user ends."""

    OP: ClassVar[str] = "logout_all"
    user_id: str

    @classmethod
    def read(cls, d: Fields) -> LogoutAll:
        return cls(d.text("user_id"))


@dataclass(frozen=True)
class Password(Fact):
    """A new password hash; optionally every other device is logged out."""

    OP: ClassVar[str] = "password"
    user_id: str
    password_hash: str
    logout_devices: bool
    keep_device: str | None

    @classmethod
    def read(cls, d: Fields) -> Password:
        return cls(
            d.text("user_id"),
            d.text("password_hash"),
            d.flag("logout_devices"),
            d.opt_text("keep_device"),
        )


@dataclass(frozen=True)
class Deactivate(Fact):
    """The account is closed for good: no password, no devices, no tokens."""

    OP: ClassVar[str] = "deactivate"
    user_id: str

    @classmethod
    def read(cls, d: Fields) -> Deactivate:
        return cls(d.text("user_id"))


@dataclass(frozen=True)
class Admin(Fact):
    """The server-administrator flag is granted or revoked (``outlast admin``)."""

    OP: ClassVar[str] = "admin"
    user_id: str
    admin: bool
    ts: int

    @classmethod
    def read(cls, d: Fields) -> Admin:
        return cls(d.text("user_id"), d.flag("admin"), d.int_or("ts", 0))


@dataclass(frozen=True)
class FilterStored(Fact):
    """A /sync filter under its content-derived id."""

    OP: ClassVar[str] = "filter"
    user_id: str
    filter_id: str
    filter: dict[str, Any]

    @classmethod
    def read(cls, d: Fields) -> FilterStored:
        return cls(d.text("user_id"), d.text("filter_id"), d.obj("filter"))


@dataclass(frozen=True)
class SlidingStateStored(Fact):
    """A sliding sync connection's state under its content-derived id, so a ``pos``
    naming it is valid at every site (outlast/sliding_sync/tables.py)."""

    OP: ClassVar[str] = "sliding_state"
    user_id: str
    state_id: int
    state: dict[str, Any]

    @classmethod
    def read(cls, d: Fields) -> SlidingStateStored:
        return cls(d.text("user_id"), d.integer("state_id"), d.obj("state"))


@dataclass(frozen=True)
class DeviceRenamed(Fact):
    """A device's display name changes."""

    OP: ClassVar[str] = "device_update"
    user_id: str
    device_id: str
    display_name: str | None

    @classmethod
    def read(cls, d: Fields) -> DeviceRenamed:
        return cls(d.text("user_id"), d.text("device_id"), d.opt_text("display_name"))


@dataclass(frozen=True)
class DevicesDeleted(Fact):
    """Devices and their tokens are deleted: they stop working at every site."""

    OP: ClassVar[str] = "device_delete"
    user_id: str
    device_ids: tuple[str, ...]

    @classmethod
    def read(cls, d: Fields) -> DevicesDeleted:
        ids = d.texts("device_ids") if d.has("device_ids") else []
        return cls(d.text("user_id"), tuple(ids))


@dataclass(frozen=True)
class OpenIdTokenIssued(Fact):
    """An OpenID token (its SHA-256) that proves the user's identity to a third party
    (widgets, integration managers, Element Call) until ``expires_at`` (ms)."""

    OP: ClassVar[str] = "openid_token"
    user_id: str
    token_hash: str
    expires_at: int

    @classmethod
    def read(cls, d: Fields) -> OpenIdTokenIssued:
        return cls(d.text("user_id"), d.text("token_hash"), d.integer("expires_at"))


@dataclass(frozen=True)
class DeviceSeen(Fact):
    """A device was used from ``ip`` at ``ts`` (ms): ``last_seen_*`` in /devices. Written
    coarsely (a device's first request at a worker, then at most every few minutes)."""

    OP: ClassVar[str] = "device_seen"
    user_id: str
    device_id: str
    ip: str | None
    ts: int

    @classmethod
    def read(cls, d: Fields) -> DeviceSeen:
        return cls(d.text("user_id"), d.text("device_id"), d.opt_text("ip"), d.integer("ts"))


@dataclass(frozen=True)
class TokenRefreshed(Fact):
    """A refresh token is traded for a new pair on the same device; the device's
    earlier access tokens end, and the pair the old token issued before (if any) too."""

    OP: ClassVar[str] = "token_refresh"
    user_id: str
    device_id: str
    old_refresh_hash: str
    token_hash: str
    expires_at: int
    refresh_hash: str
    refresh_expires_at: int | None = None

    def fields(self) -> dict[str, Any]:
        out = super().fields()
        if self.refresh_expires_at is None:
            del out["refresh_expires_at"]
        return out

    @classmethod
    def read(cls, d: Fields) -> TokenRefreshed:
        return cls(
            d.text("user_id"),
            d.text("device_id"),
            d.text("old_refresh_hash"),
            d.text("token_hash"),
            d.integer("expires_at"),
            d.text("refresh_hash"),
            d.integer("refresh_expires_at") if d.has("refresh_expires_at") else None,
        )


@dataclass(frozen=True)
class RefreshSpent(Fact):
    """The pair issued from a refresh token was used, so that token is spent, if
    ``successor`` (the pair's refresh token) is still the one it last issued."""

    OP: ClassVar[str] = "refresh_spent"
    user_id: str
    refresh_hash: str
    successor: str

    @classmethod
    def read(cls, d: Fields) -> RefreshSpent:
        return cls(d.text("user_id"), d.text("refresh_hash"), d.text("successor"))
