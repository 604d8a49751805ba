"""Matrix identifiers: parsing, validation and generation.

Grammar from the spec's appendix on identifiers: user localparts use
``[a-z0-9._=\\-/+]``, a full id is at most 255 bytes. Room ids are
``!opaque:server`` (some clients reject ids without the server part).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import string

from outlast.core.errors import MatrixError

_LOCALPART = re.compile(r"[a-z0-9._=\-/+]+")
_LEGACY_LOCALPART = re.compile(r"[!-9;-~]+")  # printable ASCII except ':'; use fullmatch
MAX_ID_BYTES = 255


def invalid_username(error: str) -> MatrixError:
    return MatrixError(400, "M_INVALID_USERNAME", error)


def user_id(localpart: str, server_name: str) -> str:
    return f"@{localpart}:{server_name}"


def validate_new_localpart(localpart: str, server_name: str) -> str:
    """A localpart a new account may take: the strict modern grammar, lower case."""
    if not localpart:
        raise invalid_username("username must not be empty")
    if not _LOCALPART.fullmatch(localpart):
        raise invalid_username("username may contain only a-z, 0-9, and . _ = - / +")
    if len(user_id(localpart, server_name).encode("utf-8")) > MAX_ID_BYTES:
        raise invalid_username("user id would be longer than 255 bytes")
    return localpart


def parse_user_id(value: str) -> tuple[str, str]:
    """Split ``@local:server``; accepts historical localparts for lookups."""
    if not value.startswith("@") or ":" not in value or len(value.encode()) > MAX_ID_BYTES:
        raise MatrixError(400, "M_INVALID_PARAM", f"not a user id: {value[:80]!r}")
    local, _, server = value[1:].partition(":")
    if not local or not server or not _LEGACY_LOCALPART.fullmatch(local):
        raise MatrixError(400, "M_INVALID_PARAM", f"not a user id: {value[:80]!r}")
    return local, server


def is_user_id(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parse_user_id(value)
    except MatrixError:
        return False
    return True


def localpart_from_login(identifier: str, server_name: str) -> str:
    """A login name may be a bare localpart or a full user id on this server."""
    if identifier.startswith("@"):
        local, server = parse_user_id(identifier)
        if server != server_name:
            raise MatrixError(403, "M_FORBIDDEN", "Invalid username or password")
        return local.lower()
    return identifier.lower()


_HASH_ROOM_ID = re.compile(r"![A-Za-z0-9_-]{43}")


def is_room_id(value: str) -> bool:
    """``!opaque:server``, or (room version 12) ``!`` and the create event's hash,
    without a server part."""
    if not value.startswith("!") or len(value.encode()) > MAX_ID_BYTES:
        return False
    return ":" in value or _HASH_ROOM_ID.fullmatch(value) is not None


def is_room_alias(value: str) -> bool:
    if not value.startswith("#") or ":" not in value or len(value.encode()) > MAX_ID_BYTES:
        return False
    local, _, server = value[1:].partition(":")
    return bool(local) and bool(server) and not any(c.isspace() for c in value)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def new_room_id(server_name: str) -> str:
    alphabet = string.ascii_letters
    return "!" + "".join(secrets.choice(alphabet) for _ in range(18)) + ":" + server_name


def new_event_id() -> str:
    """Room-version-11-shaped: ``$`` and 43 url-safe base64 characters."""
    return "$" + _b64(secrets.token_bytes(32))


def txn_event_id(sender: str, device_id: str, room_id: str, event_type: str, txn_id: str) -> str:
    """The event id of a client send is a function of who sent it and its txnId.

    A retry — at this site or any other, inside or past the log's dedup window —
    therefore produces the same id, which is also the log's ``Nats-Msg-Id``.
    The authenticated sender is part of the input, so no one can pre-empt
    another user's id.
    """
    material = "\0".join(("txn", sender, device_id, room_id, event_type, txn_id))
    return "$" + _b64(hashlib.sha256(material.encode("utf-8")).digest())


def new_device_id() -> str:
    return "".join(secrets.choice(string.ascii_uppercase) for _ in range(10))


def new_access_token() -> str:
    """256 random bits; only its hash is ever written to the log or the view."""
    return "olt_" + secrets.token_urlsafe(32)


def token_hash(access_token: str) -> str:
    return hashlib.sha256(access_token.encode("utf-8")).hexdigest()
