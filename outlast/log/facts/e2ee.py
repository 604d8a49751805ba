"""Facts of end-to-end encryption: device keys and claims, cross-signing, to-device.

Every key fact of one device goes to its keys subject (claims are fenced on
it, so a one-time key is handed out once across sites); cross-signing keys and
the signatures a user makes go to the user's ``cross_signing`` subject; a
to-device message to the recipient's ``todevice`` subject.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from outlast.log.facts.base import Fact, Fields


@dataclass(frozen=True)
class KeysUploaded(Fact):
    """What is new among a device's identity keys, one-time keys and fallback keys
    (each part absent when nothing of it changed)."""

    OP: ClassVar[str] = "keys_upload"
    user_id: str
    device_id: str
    device_keys: dict[str, Any] | None = None
    one_time_keys: dict[str, Any] | None = None
    fallback_keys: dict[str, Any] | None = None

    def fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"user_id": self.user_id, "device_id": self.device_id}
        for key in ("device_keys", "one_time_keys", "fallback_keys"):
            value = getattr(self, key)
            if value is not None:
                fields[key] = value
        return fields

    def changes_anything(self) -> bool:
        return any(
            v is not None for v in (self.device_keys, self.one_time_keys, self.fallback_keys)
        )

    @classmethod
    def read(cls, d: Fields) -> KeysUploaded:
        raw = d.value("device_keys")
        return cls(
            d.text("user_id"),
            d.text("device_id"),
            raw if isinstance(raw, dict) else None,
            d.opt_obj("one_time_keys"),
            d.opt_obj("fallback_keys"),
        )


@dataclass(frozen=True)
class KeyClaimed(Fact):
    """A one-time key (or, with ``fallback``, the fallback key) was handed out."""

    OP: ClassVar[str] = "keys_claim"
    user_id: str
    device_id: str
    algorithm: str
    key_id: str
    fallback: bool = False

    def fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "user_id": self.user_id,
            "device_id": self.device_id,
            "algorithm": self.algorithm,
            "key_id": self.key_id,
        }
        if self.fallback:
            fields["fallback"] = True
        return fields

    @classmethod
    def read(cls, d: Fields) -> KeyClaimed:
        return cls(
            d.text("user_id"),
            d.text("device_id"),
            d.text("algorithm"),
            d.text("key_id"),
            d.flag("fallback"),
        )


@dataclass(frozen=True)
class CrossSigningKeysSet(Fact):
    """New cross-signing keys of a user, by usage (master, self_signing, user_signing)."""

    OP: ClassVar[str] = "cross_signing_keys"
    user_id: str
    keys: dict[str, Any]

    @classmethod
    def read(cls, d: Fields) -> CrossSigningKeysSet:
        return cls(d.text("user_id"), d.opt_obj("keys") or {})


@dataclass(frozen=True)
class SignaturesMade(Fact):
    """Signatures a user made: ``{user_id, kind, target, key_id, signature}`` each,
    checked again when applied."""

    OP: ClassVar[str] = "cross_signing_signatures"
    user_id: str
    signatures: tuple[Any, ...]

    @classmethod
    def read(cls, d: Fields) -> SignaturesMade:
        raw = d.value("signatures") or []
        return cls(d.text("user_id"), tuple(raw) if isinstance(raw, list) else ())


@dataclass(frozen=True)
class ToDeviceSent(Fact):
    """One sender's message of one type to some of a user's devices (``*``: all)."""

    OP: ClassVar[str] = "to_device"
    sender: str
    sender_device: str
    txn_id: str
    type: str
    target: str
    messages: dict[str, Any]

    @classmethod
    def read(cls, d: Fields) -> ToDeviceSent:
        return cls(
            d.text("sender"),
            d.text("sender_device"),
            d.text("txn_id"),
            d.text("type"),
            d.text("target"),
            d.opt_obj("messages") or {},
        )


@dataclass(frozen=True)
class ToDeviceReceived(Fact):
    """A device has every to-device message up to ``upto`` (users-stream sequence)."""

    OP: ClassVar[str] = "to_device_ack"
    user_id: str
    device_id: str
    upto: int

    @classmethod
    def read(cls, d: Fields) -> ToDeviceReceived:
        return cls(d.text("user_id"), d.text("device_id"), d.integer("upto"))
