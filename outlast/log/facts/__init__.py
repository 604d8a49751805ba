"""The log's vocabulary: every kind of durable fact, as a type.

Services write a fact by constructing one (``LogClient.append(subject, fact)``);
the projector decodes each message back into its type and applies it with a
``match`` (outlast/view/apply.py). ``FACT_TYPES`` is the op -> type registry;
docs/architecture.md lists them (tests/log/test_facts.py keeps it in step).
"""

from __future__ import annotations

from typing import Any

from outlast.log.facts.accounts import (
    Admin,
    Deactivate,
    DeviceRenamed,
    DevicesDeleted,
    DeviceSeen,
    FilterStored,
    Login,
    Logout,
    LogoutAll,
    NewDevice,
    OpenIdTokenIssued,
    Password,
    RefreshSpent,
    Register,
    SlidingStateStored,
    TokenRefreshed,
)
from outlast.log.facts.base import DecodeError, Fact, Fields, UnknownFact
from outlast.log.facts.control import HealthProbe
from outlast.log.facts.e2ee import (
    CrossSigningKeysSet,
    KeyClaimed,
    KeysUploaded,
    SignaturesMade,
    ToDeviceReceived,
    ToDeviceSent,
)
from outlast.log.facts.people import (
    GLOBAL,
    AccountDataSet,
    PresenceSet,
    ProfileDeleted,
    ProfileSet,
    PusherDeleted,
    PusherSet,
    PushRulesSet,
    RoomTagged,
)
from outlast.log.facts.room_keys import (
    BackupCreated,
    BackupDeleted,
    BackupKeysDeleted,
    BackupKeysStored,
    BackupUpdated,
)
from outlast.log.facts.rooms import (
    AliasDeleted,
    AliasSet,
    ReceiptsMarked,
    RoomEvents,
    RoomForgotten,
    RoomListed,
)

FACT_TYPES: dict[str, type[Fact]] = {
    kind.OP: kind
    for kind in (
        # accounts, sessions, devices (users stream)
        Register,
        Login,
        Logout,
        LogoutAll,
        Password,
        Deactivate,
        Admin,
        FilterStored,
        SlidingStateStored,
        DeviceRenamed,
        DevicesDeleted,
        OpenIdTokenIssued,
        DeviceSeen,
        TokenRefreshed,
        RefreshSpent,
        # rooms (partition streams) and aliases (directory stream)
        RoomEvents,
        ReceiptsMarked,
        RoomListed,
        AliasSet,
        AliasDeleted,
        RoomForgotten,
        # what users set for themselves (users stream)
        PresenceSet,
        ProfileSet,
        ProfileDeleted,
        AccountDataSet,
        RoomTagged,
        PushRulesSet,
        PusherSet,
        PusherDeleted,
        # end-to-end encryption (users stream)
        KeysUploaded,
        KeyClaimed,
        CrossSigningKeysSet,
        SignaturesMade,
        ToDeviceSent,
        ToDeviceReceived,
        # server-side key backup (users stream)
        BackupCreated,
        BackupUpdated,
        BackupDeleted,
        BackupKeysStored,
        BackupKeysDeleted,
        # control streams
        HealthProbe,
    )
}


def decode(data: Any) -> Fact:
    """A wire object as its fact; UnknownFact for an op this version does not know,
    DecodeError for a malformed one."""
    if not isinstance(data, dict):
        raise DecodeError("a fact is a JSON object")
    op = data.get("op")
    kind = FACT_TYPES.get(op) if isinstance(op, str) else None
    if kind is None:
        raise UnknownFact(f"unknown op {str(op)[:64]!r}")
    return kind.read(Fields(kind.OP, data))


__all__ = [
    "FACT_TYPES",
    "GLOBAL",
    "AccountDataSet",
    "Admin",
    "AliasDeleted",
    "AliasSet",
    "BackupCreated",
    "BackupDeleted",
    "BackupKeysDeleted",
    "BackupKeysStored",
    "BackupUpdated",
    "CrossSigningKeysSet",
    "Deactivate",
    "DecodeError",
    "DeviceRenamed",
    "DeviceSeen",
    "DevicesDeleted",
    "Fact",
    "FilterStored",
    "SlidingStateStored",
    "HealthProbe",
    "KeyClaimed",
    "KeysUploaded",
    "Login",
    "Logout",
    "LogoutAll",
    "NewDevice",
    "OpenIdTokenIssued",
    "Password",
    "PresenceSet",
    "ProfileDeleted",
    "ProfileSet",
    "PushRulesSet",
    "PusherDeleted",
    "PusherSet",
    "ReceiptsMarked",
    "RefreshSpent",
    "Register",
    "RoomEvents",
    "RoomForgotten",
    "RoomListed",
    "RoomTagged",
    "SignaturesMade",
    "ToDeviceReceived",
    "ToDeviceSent",
    "TokenRefreshed",
    "UnknownFact",
    "decode",
]
