"""End-to-end encryption plumbing: what a server checks and computes without reading a secret.

The server never sees plaintext. It stores public device keys, one-time keys
and fallback keys exactly as the device signed them, hands each one-time key
out once, relays opaque to-device messages, and tells clients whose devices
changed. These functions are the pure parts: request validation and the
device-list delta of a sync.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from outlast.core.errors import MatrixError, bad_json
from outlast.core.ids import is_user_id

MAX_ID = 255
MAX_KEYS_PER_UPLOAD = 1000


def _invalid(error: str) -> MatrixError:
    return MatrixError(400, "M_INVALID_PARAM", error)


def _short_string(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_ID


def check_device_keys(value: Any, user_id: str, device_id: str) -> dict[str, Any]:
    """Device identity keys as uploaded (spec: definitions/device_keys.yaml).

    They must name the uploading user and device: a device may only publish
    its own identity, or another user's client could be tricked into trusting it.
    """
    if not isinstance(value, dict):
        raise bad_json("device_keys must be an object")
    if value.get("user_id") != user_id or value.get("device_id") != device_id:
        raise _invalid("device_keys must name the requesting user and device")
    algorithms = value.get("algorithms")
    if not isinstance(algorithms, list) or not all(_short_string(a) for a in algorithms):
        raise bad_json("device_keys.algorithms must be a list of strings")
    keys = value.get("keys")
    if not isinstance(keys, dict) or not all(
        _short_string(k) and isinstance(v, str) for k, v in keys.items()
    ):
        raise bad_json("device_keys.keys must map key ids to strings")
    if not isinstance(value.get("signatures"), dict):
        raise bad_json("device_keys.signatures must be an object")
    return value


def algorithm_of(key_id: str) -> str:
    """``signed_curve25519:AAAAHg`` -> ``signed_curve25519``."""
    return key_id.partition(":")[0]


def check_key_map(value: Any, name: str) -> dict[str, Any]:
    """One-time or fallback keys: ``{"<algorithm>:<key id>": key}``, key a string or object."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad_json(f"{name} must be an object")
    if len(value) > MAX_KEYS_PER_UPLOAD:
        raise _invalid(f"too many {name} in one upload")
    for key_id, key in value.items():
        algorithm, sep, ident = key_id.partition(":")
        if not sep or not algorithm or not ident or len(key_id) > MAX_ID:
            raise _invalid(f"{name} ids must look like <algorithm>:<key id>")
        if not isinstance(key, (str, dict)):
            raise bad_json(f"{name} values must be strings or objects")
    return value


def check_fallback_keys(value: Any) -> dict[str, Any]:
    """The spec keeps at most one fallback key per algorithm."""
    keys = check_key_map(value, "fallback_keys")
    algorithms = [algorithm_of(k) for k in keys]
    if len(algorithms) != len(set(algorithms)):
        raise _invalid("at most one fallback key per algorithm")
    return keys


def check_user_device_map(value: Any, name: str) -> dict[str, Any]:
    """``{user_id: ...}`` with valid user ids, as in /keys/query, /keys/claim and /sendToDevice."""
    if not isinstance(value, dict):
        raise bad_json(f"{name} must be an object keyed by user id")
    for user_id in value:
        if not is_user_id(user_id):
            raise _invalid(f"{name}: {user_id[:80]!r} is not a user id")
    return value


def check_claims(value: Any) -> dict[str, dict[str, str]]:
    """/keys/claim: ``{user: {device: algorithm}}``."""
    claims = check_user_device_map(value, "one_time_keys")
    for devices in claims.values():
        if not isinstance(devices, dict) or not all(
            _short_string(d) and _short_string(a) for d, a in devices.items()
        ):
            raise bad_json("one_time_keys must map user ids to {device_id: algorithm}")
    return claims


def check_queries(value: Any) -> dict[str, list[str]]:
    """/keys/query: ``{user: [device, ...]}``, an empty list meaning every device."""
    queries = check_user_device_map(value, "device_keys")
    for devices in queries.values():
        if not isinstance(devices, list) or not all(_short_string(d) for d in devices):
            raise bad_json("device_keys must map user ids to lists of device ids")
    return queries


def check_to_device(value: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """/sendToDevice: ``{user: {device or "*": content}}``."""
    messages = check_user_device_map(value, "messages")
    for devices in messages.values():
        if not isinstance(devices, dict) or not all(
            _short_string(d) and isinstance(c, dict) for d, c in devices.items()
        ):
            raise bad_json("messages must map user ids to {device_id: content object}")
    return messages


def to_device_msg_id(sender: str, device_id: str, txn_id: str, target: str) -> str:
    """The log's dedup id for one (sender device, txnId, target user) delivery."""
    raw = "\x00".join(("todevice", sender, device_id, txn_id, target))
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class MemberChange:
    """A membership change in a room, seen within a sync window."""

    room_id: str
    user_id: str
    membership: str


def device_list_delta(
    me: str,
    shared_now: set[str],
    key_changed: Iterable[str],
    changes: Iterable[MemberChange],
    room_members: Mapping[str, set[str]],
) -> tuple[list[str], list[str]]:
    """``device_lists`` of a sync (spec: /sync, "device_lists").

    changed: users sharing a room with ``me`` whose devices or keys changed, my own
    user when my devices changed, and users I newly share a room with (their
    devices are new to me). left: users I shared a room with in the window and
    no longer share any with. ``room_members`` gives the members of rooms whose
    changes involve ``me`` joining or leaving.
    """
    changed = {u for u in key_changed if u in shared_now or u == me}
    left: set[str] = set()
    for change in changes:
        if change.user_id == me:
            others = room_members.get(change.room_id, set())
            if change.membership == "join":
                changed |= others & shared_now
            elif change.membership in ("leave", "ban"):
                left |= others
        elif change.membership in ("join", "invite"):
            if change.user_id in shared_now:
                changed.add(change.user_id)
        elif change.membership in ("leave", "ban"):
            left.add(change.user_id)
    left -= shared_now | {me}
    return sorted(changed - left), sorted(left)
