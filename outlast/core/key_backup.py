"""Server-side key backup rules (``/room_keys/*``), as functions over plain data.

A user has backup versions; only the most recently created one that is not
deleted is "current" and accepts keys. Each stored key is one Megolm
session's encrypted key (``session_data`` is opaque to the server). When a
session's key is uploaded again, the spec's replacement rule picks which one
to keep ("Server-side key backups"):

1. a key with ``is_verified: true`` beats one without;
2. then the lower ``first_message_index`` wins (it decrypts more);
3. then the lower ``forwarded_count`` wins (it passed fewer hands);
4. on a full tie the stored key stays.

``etag`` changes whenever the stored keys change and ``count`` is how many
are stored; a client compares the etag with its own to learn that another
device wrote. Applying :func:`better` again while folding the log makes
concurrent uploads at two sites end in the same keys everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from outlast.core.errors import MatrixError, bad_json, invalid_param, not_found

MEGOLM_BACKUP_V1: Final = "m.megolm_backup.v1.curve25519-aes-sha2"
MAX_KEYS_PER_UPLOAD: Final = 10_000

SessionKey = tuple[str, str]  # (room ID, session ID)


@dataclass(frozen=True)
class KeyData:
    first_message_index: int
    forwarded_count: int
    is_verified: bool
    session_data: Mapping[str, Any]

    def body(self) -> dict[str, Any]:
        return {
            "first_message_index": self.first_message_index,
            "forwarded_count": self.forwarded_count,
            "is_verified": self.is_verified,
            "session_data": dict(self.session_data),
        }


@dataclass(frozen=True)
class BackupVersion:
    """One backup version; ``version`` is its creation fact's log sequence, as text."""

    version: str
    algorithm: str
    auth_data: Mapping[str, Any]
    etag: int = 0
    count: int = 0
    deleted: bool = False

    def info(self) -> dict[str, Any]:
        """``GET /room_keys/version[/{version}]``."""
        return {
            "algorithm": self.algorithm,
            "auth_data": dict(self.auth_data),
            "count": self.count,
            "etag": str(self.etag),
            "version": self.version,
        }

    def counters(self) -> dict[str, Any]:
        """The ``{etag, count}`` answer of key uploads and deletions."""
        return {"etag": str(self.etag), "count": self.count}


def better(new: KeyData, old: KeyData) -> bool:
    """Whether ``new`` replaces ``old`` under the spec's three-step rule."""
    if new.is_verified != old.is_verified:
        return new.is_verified
    if new.first_message_index != old.first_message_index:
        return new.first_message_index < old.first_message_index
    return new.forwarded_count < old.forwarded_count


def parse_version_body(body: Any) -> tuple[str, dict[str, Any]]:
    """``POST /room_keys/version``: ``algorithm`` and ``auth_data`` are required."""
    if not isinstance(body, Mapping):
        raise bad_json("the body must be an object")
    algorithm, auth_data = body.get("algorithm"), body.get("auth_data")
    if not isinstance(algorithm, str) or not 0 < len(algorithm) <= 255:
        raise bad_json("algorithm must be a non-empty string")
    if not isinstance(auth_data, dict):
        raise bad_json("auth_data must be an object")
    return algorithm, auth_data


def current(versions: Iterable[BackupVersion]) -> BackupVersion | None:
    """The most recently created version that is not deleted."""
    live = [v for v in versions if not v.deleted]
    return max(live, key=lambda v: int(v.version)) if live else None


def find(versions: Iterable[BackupVersion], version: str | None) -> BackupVersion:
    """The named (or current) version; deleted and unknown ones are 404."""
    if version is None:
        found = current(versions)
        if found is None:
            raise not_found("No current backup version")
        return found
    for v in versions:
        if v.version == version and not v.deleted:
            return v
    raise not_found("Unknown backup version")


def updated(versions: Iterable[BackupVersion], version: str, body: Any) -> BackupVersion:
    """``PUT /room_keys/version/{version}``: only ``auth_data`` may change."""
    target = find(versions, version)
    algorithm, auth_data = parse_version_body(body)
    if algorithm != target.algorithm:
        raise invalid_param("Algorithm does not match")
    if body.get("version") not in (None, version):
        raise invalid_param("version in the body does not match the path")
    return replace(target, auth_data=auth_data)


def check_delete(versions: Iterable[BackupVersion], version: str) -> bool:
    """Whether a delete has anything to do; deleting twice is fine, unknown is 404."""
    for v in versions:
        if v.version == version:
            return not v.deleted
    raise not_found("Unknown backup version")


def writable(versions: Iterable[BackupVersion], version: str) -> BackupVersion:
    """The version keys are uploaded to: it must exist and be the current one."""
    versions = list(versions)
    named = [v for v in versions if v.version == version and not v.deleted]
    if not named:
        raise not_found("Unknown backup version")
    now = current(versions)
    if now is None or now.version != version:
        raise MatrixError(
            403,
            "M_WRONG_ROOM_KEYS_VERSION",
            "Wrong backup version.",
            extra={"current_version": now.version if now else None},
        )
    return named[0]


def parse_key_data(value: Any, where: str) -> KeyData:
    if not isinstance(value, Mapping):
        raise bad_json(f"{where} must be an object")
    numbers = {}
    for name in ("first_message_index", "forwarded_count"):
        n = value.get(name)
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < 2**53:
            raise bad_json(f"{where}.{name} must be a non-negative integer")
        numbers[name] = n
    verified, data = value.get("is_verified"), value.get("session_data")
    if not isinstance(verified, bool):
        raise bad_json(f"{where}.is_verified must be a boolean")
    if not isinstance(data, Mapping):
        raise bad_json(f"{where}.session_data must be an object")
    return KeyData(numbers["first_message_index"], numbers["forwarded_count"], verified, data)


def _sessions(value: Any, room_id: str, out: dict[SessionKey, KeyData]) -> None:
    sessions = value.get("sessions") if isinstance(value, Mapping) else None
    if not isinstance(sessions, Mapping):
        raise bad_json(f"keys for {room_id[:80]} need a sessions object")
    for session_id, data in sessions.items():
        if len(out) >= MAX_KEYS_PER_UPLOAD:
            raise bad_json(f"at most {MAX_KEYS_PER_UPLOAD} keys per request")
        out[(room_id, session_id)] = parse_key_data(data, f"sessions.{session_id[:80]}")


def parse_upload(
    body: Any, room_id: str | None = None, session_id: str | None = None
) -> dict[SessionKey, KeyData]:
    """The three ``PUT /room_keys/keys[/{roomId}[/{sessionId}]]`` bodies as one map."""
    out: dict[SessionKey, KeyData] = {}
    if room_id is not None and session_id is not None:
        out[(room_id, session_id)] = parse_key_data(body, "the key")
    elif room_id is not None:
        _sessions(body, room_id, out)
    else:
        rooms = body.get("rooms") if isinstance(body, Mapping) else None
        if not isinstance(rooms, Mapping):
            raise bad_json("the body needs a rooms object")
        for rid, value in rooms.items():
            _sessions(value, rid, out)
    return out


def merge(
    stored: Mapping[SessionKey, KeyData], uploads: Mapping[SessionKey, KeyData]
) -> dict[SessionKey, KeyData]:
    """The uploads that win against what is stored (new sessions always do)."""
    return {
        key: data
        for key, data in uploads.items()
        if (old := stored.get(key)) is None or better(data, old)
    }


def after_write(version: BackupVersion, count: int, changed: bool) -> BackupVersion:
    """The version's counters after keys were written or deleted (etag moves only on change)."""
    return replace(version, count=count, etag=version.etag + 1 if changed else version.etag)


def keys_body(
    keys: Mapping[SessionKey, KeyData], room_id: str | None = None, session_id: str | None = None
) -> dict[str, Any]:
    """``GET /room_keys/keys[/{roomId}[/{sessionId}]]``; a missing session is 404."""
    if room_id is not None and session_id is not None:
        found = keys.get((room_id, session_id))
        if found is None:
            raise not_found("Key not found.")
        return found.body()
    rooms: dict[str, dict[str, Any]] = {}
    for (rid, sid), data in sorted(keys.items()):
        if room_id is None or rid == room_id:
            rooms.setdefault(rid, {"sessions": {}})["sessions"][sid] = data.body()
    if room_id is not None:
        return rooms.get(room_id, {"sessions": {}})
    return {"rooms": rooms}
