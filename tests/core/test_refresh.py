"""Refresh tokens: expiry, rotation, retries, soft logout and errors."""

from __future__ import annotations

from typing import Any

import pytest

from outlast.core.errors import MatrixError
from outlast.core.refresh import (
    Grant,
    RefreshPolicy,
    RefreshRecord,
    check_access,
    check_refresh,
    grant,
    parse_refresh_body,
    refreshed,
    spent,
    token_fields,
    wants_refresh,
)

NOW = 1_700_000_000_000
POLICY = RefreshPolicy(access_lifetime_ms=60_000, refresh_lifetime_ms=86_400_000)


def refused(call: Any) -> MatrixError:
    with pytest.raises(MatrixError) as err:
        call()
    return err.value


def test_only_clients_that_ask_get_expiring_tokens() -> None:
    assert grant(NOW, POLICY, refreshable=False) == Grant(None, None)
    g = grant(NOW, POLICY, refreshable=True)
    assert g == Grant(NOW + 60_000, NOW + 86_400_000)
    assert token_fields("at", "rt", g, NOW + 1_000) == {
        "access_token": "at",
        "refresh_token": "rt",
        "expires_in_ms": 59_000,
    }
    assert token_fields("at", None, Grant(None, None), NOW) == {"access_token": "at"}
    assert grant(NOW, RefreshPolicy(), True).refresh_expires_at is None


def test_request_bodies() -> None:
    assert wants_refresh({"refresh_token": True}) and not wants_refresh({})
    assert refused(lambda: wants_refresh({"refresh_token": "yes"})).errcode == "M_BAD_JSON"
    assert parse_refresh_body({"refresh_token": "olr_x"}) == "olr_x"
    bodies: list[Any] = [{}, {"refresh_token": 5}, [], {"refresh_token": ""}]
    for body in bodies:
        err = refused(lambda b=body: parse_refresh_body(b))
        assert (err.status, err.errcode) == (400, "M_MISSING_PARAM")


def test_expired_access_token_is_a_soft_logout() -> None:
    check_access(None, NOW)
    check_access(NOW + 1, NOW)
    err = refused(lambda: check_access(NOW, NOW))
    assert (err.status, err.errcode, err.body()["soft_logout"]) == (401, "M_UNKNOWN_TOKEN", True)


def test_refresh_token_life_cycle() -> None:
    first = RefreshRecord("@a:hs", "DEV", expires_at=NOW + 1000)
    check_refresh(first, NOW, successor_used=False)
    after, abandoned = refreshed(first, "h1")
    assert after.successor == "h1" and abandoned is None
    check_refresh(after, NOW, successor_used=False)  # the answer was lost: refresh again
    retried, abandoned = refreshed(after, "h2")
    assert abandoned == "h1" and retried.successor == "h2"
    assert not spent(retried, "h1") and spent(retried, "h2")
    err = refused(lambda: check_refresh(retried, NOW, successor_used=True))
    assert (err.status, err.errcode, err.body()["soft_logout"]) == (401, "M_UNKNOWN_TOKEN", False)


@pytest.mark.parametrize(
    ("record", "soft"),
    [
        (None, False),
        (RefreshRecord("@a:hs", "DEV", revoked=True), False),
        (RefreshRecord("@a:hs", "DEV", expires_at=NOW), True),
    ],
)
def test_refresh_refusals(record: RefreshRecord | None, soft: bool) -> None:
    err = refused(lambda: check_refresh(record, NOW, successor_used=False))
    assert (err.status, err.errcode, err.body()["soft_logout"]) == (401, "M_UNKNOWN_TOKEN", soft)
