"""OpenID request tokens (widgets, integration managers, Element Call)."""

from __future__ import annotations

from pathlib import Path

from nio import AsyncClient

from tests.clock import ManualClock
from tests.e2e.helpers import V3, api, close_all, register
from tests.testrig import running_site

USERINFO = "/_matrix/federation/v1/openid/userinfo"


async def test_a_token_names_its_user_to_a_third_party(
    url: str, pair: tuple[AsyncClient, AsyncClient]
) -> None:
    alice, bob = pair
    status, body = await api(
        "POST", f"{url}{V3}/user/@alice:localhost/openid/request_token", {}, alice.access_token
    )
    assert status == 200, body
    assert body["token_type"] == "Bearer"
    assert body["matrix_server_name"] == "localhost"
    assert body["expires_in"] == 3600
    assert body["access_token"] != alice.access_token
    assert await api("GET", url + USERINFO, params={"access_token": body["access_token"]}) == (
        200,
        {"sub": "@alice:localhost"},
    )
    # Not for someone else, and an access token or garbage names nobody.
    status, answer = await api(
        "POST", f"{url}{V3}/user/@alice:localhost/openid/request_token", {}, bob.access_token
    )
    assert (status, answer["errcode"]) == (403, "M_FORBIDDEN")
    for token in (alice.access_token, "nonsense"):
        status, answer = await api("GET", url + USERINFO, params={"access_token": token})
        assert (status, answer["errcode"]) == (401, "M_UNKNOWN_TOKEN")
    status, answer = await api("GET", url + USERINFO)
    assert (status, answer["errcode"]) == (401, "M_UNKNOWN_TOKEN")


async def test_a_token_expires_after_an_hour(shared_nats: str, tmp_path: Path) -> None:
    clock = ManualClock()
    async with running_site(tmp_path / "site", shared_nats, clock=clock) as site:
        url = f"http://127.0.0.1:{site.port}"
        alice = await register(url, "alice")
        try:
            _, body = await api(
                "POST",
                f"{url}{V3}/user/@alice:localhost/openid/request_token",
                {},
                alice.access_token,
            )
            query = {"access_token": body["access_token"]}
            clock.advance(3599)
            assert (await api("GET", url + USERINFO, params=query))[0] == 200
            clock.advance(2)
            status, answer = await api("GET", url + USERINFO, params=query)
            assert (status, answer["errcode"]) == (401, "M_UNKNOWN_TOKEN")
        finally:
            await close_all(alice)
