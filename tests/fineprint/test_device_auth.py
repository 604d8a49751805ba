"""Deleting a device needs the owner's own password: another user's valid one is 403."""

from __future__ import annotations

from nio import AsyncClient

from tests.e2e.helpers import V3, api


def password_auth(user: str, password: str) -> dict[str, object]:
    return {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user},
        "password": password,
    }


async def test_another_users_password_is_forbidden_not_retried(
    url: str, pair: tuple[AsyncClient, AsyncClient]
) -> None:
    alice, _ = pair
    path = f"{url}{V3}/devices/{alice.device_id}"
    status, body = await api(
        "DELETE", path, {"auth": password_auth("bob", "pw-bob")}, alice.access_token
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    # A wrong password, for anyone, is the usual 401 challenge the client may retry.
    for user in ("bob", "alice"):
        status, body = await api(
            "DELETE", path, {"auth": password_auth(user, "wrong")}, alice.access_token
        )
        assert status == 401 and "flows" in body
    status, _ = await api(
        "DELETE", path, {"auth": password_auth("alice", "pw-alice")}, alice.access_token
    )
    assert status == 200
