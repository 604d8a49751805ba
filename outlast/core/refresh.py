"""Refresh tokens and expiring access tokens, as rules over records and a clock value.

"Refreshing access tokens" and "Soft logout" in the Client-Server API:

- A client that sends ``refresh_token: true`` to ``/login`` or ``/register``
  gets an access token that expires (``expires_in_ms``) and a refresh token.
  Clients that do not ask keep non-expiring access tokens, as today.
- ``POST /refresh`` trades a refresh token for a new pair bound to the same
  device. The old refresh token stays usable until the new access token or
  the new refresh token is used; then it is spent. That lets a client that
  lost the answer simply refresh again.
- An expired access token answers ``401 M_UNKNOWN_TOKEN`` with
  ``soft_logout: true``: the device and its keys survive, the client
  refreshes or logs in again with the same ``device_id``. A refresh token
  that is unknown, revoked or spent answers the same error with
  ``soft_logout: false``; one that merely expired keeps ``soft_logout: true``.
- Logging out, deleting the device, or logging in again with an explicit
  ``device_id`` revokes every access and refresh token of that device.

Expiry times are absolute milliseconds, written with the token's fact, so
every site judges them alike (up to the sites' clock skew).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from outlast.core.errors import MatrixError, bad_json

DEFAULT_ACCESS_LIFETIME_MS: Final = 5 * 60 * 1000  # Synapse's default for refreshable tokens


@dataclass(frozen=True)
class RefreshPolicy:
    """How long refreshable access tokens and refresh tokens live (``None``: no limit)."""

    access_lifetime_ms: int = DEFAULT_ACCESS_LIFETIME_MS
    refresh_lifetime_ms: int | None = None


@dataclass(frozen=True)
class Grant:
    """When a newly issued pair expires, as absolute times and as ``expires_in_ms``."""

    access_expires_at: int | None
    refresh_expires_at: int | None

    def expires_in_ms(self, now_ms: int) -> int | None:
        return None if self.access_expires_at is None else self.access_expires_at - now_ms


def grant(now_ms: int, policy: RefreshPolicy, refreshable: bool) -> Grant:
    """Expiry of a new session (or a refreshed one); non-refreshable tokens never expire."""
    if not refreshable:
        return Grant(None, None)
    refresh_at = None if policy.refresh_lifetime_ms is None else now_ms + policy.refresh_lifetime_ms
    return Grant(now_ms + policy.access_lifetime_ms, refresh_at)


def wants_refresh(body: Mapping[str, Any]) -> bool:
    """``refresh_token`` in a ``/login`` or ``/register`` body; must be a boolean."""
    value = body.get("refresh_token", False)
    if not isinstance(value, bool):
        raise bad_json("refresh_token must be a boolean")
    return value


def parse_refresh_body(body: Any) -> str:
    """The refresh token of a ``POST /refresh`` body."""
    token = body.get("refresh_token") if isinstance(body, Mapping) else None
    if not isinstance(token, str) or not 0 < len(token) <= 512:
        raise MatrixError(400, "M_MISSING_PARAM", "refresh_token is required")
    return token


def token_fields(
    access_token: str, refresh_token: str | None, grant_: Grant, now_ms: int
) -> dict[str, Any]:
    """The token part of a login, register or refresh answer."""
    body: dict[str, Any] = {"access_token": access_token}
    if refresh_token is not None:
        body["refresh_token"] = refresh_token
    expires_in = grant_.expires_in_ms(now_ms)
    if expires_in is not None:
        body["expires_in_ms"] = expires_in
    return body


def unknown_token(error: str, *, soft_logout: bool) -> MatrixError:
    return MatrixError(401, "M_UNKNOWN_TOKEN", error, extra={"soft_logout": soft_logout})


def check_access(expires_at: int | None, now_ms: int) -> None:
    """An access token past its expiry is a soft logout: refresh, or log in with the device."""
    if expires_at is not None and now_ms >= expires_at:
        raise unknown_token("access token expired", soft_logout=True)


@dataclass(frozen=True)
class RefreshRecord:
    """A stored refresh token (by hash). ``successor`` is the hash of the refresh
    token issued when this one was used, if any; ``revoked`` is set by logout,
    device deletion or a new login on the same device."""

    user_id: str
    device_id: str
    expires_at: int | None = None
    successor: str | None = None
    revoked: bool = False


def check_refresh(record: RefreshRecord | None, now_ms: int, successor_used: bool) -> None:
    """Whether a refresh token may be used now; raises the spec's 401 otherwise.

    ``successor_used``: the pair issued from this token has been used (its
    access token authenticated a request, or its refresh token was refreshed).
    """
    if record is None or record.revoked:
        raise unknown_token("refresh token unknown or revoked", soft_logout=False)
    if record.successor is not None and successor_used:
        raise unknown_token("refresh token already used", soft_logout=False)
    if record.expires_at is not None and now_ms >= record.expires_at:
        raise unknown_token("refresh token expired", soft_logout=True)


def refreshed(record: RefreshRecord, new_refresh_hash: str) -> tuple[RefreshRecord, str | None]:
    """The old record once a new pair was issued from it, and the pair it abandons.

    A retried refresh issues a second pair; the first one, which the client
    evidently never got, is returned so the caller revokes it.
    """
    new = RefreshRecord(record.user_id, record.device_id, record.expires_at, new_refresh_hash)
    return new, record.successor


def spent(record: RefreshRecord, used_successor: str) -> bool:
    """Whether using the pair ``used_successor`` spends ``record``.

    Only the pair this record last issued counts: after a retried refresh,
    using the pair from the abandoned attempt does not spend the token, and
    that abandoned pair's refresh token is no longer anyone's successor.
    """
    return record.successor == used_successor
