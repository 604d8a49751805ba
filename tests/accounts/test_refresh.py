"""Refresh tokens over real HTTP against in-process sites (matrix-nio has no refresh call,
so the client here is raw HTTP): expiring access tokens, soft logout, /refresh, and a
refresh made at one site counting at another site of the same log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.clock import ManualClock
from tests.e2e.helpers import V3, api
from tests.testrig import new_prefix, running_site

# Continues the [auth] table testrig's configuration ends with (FAST_HASH_TOML).
LIFETIME = "refreshable_access_token_lifetime_ms = 60000\n"
V1 = "/_matrix/client/v1"


async def _register(url: str, name: str, **extra: Any) -> dict[str, Any]:
    body = {"username": name, "password": f"pw-{name}", "auth": {"type": "m.login.dummy"}}
    status, answer = await api("POST", f"{url}{V3}/register", {**body, **extra})
    assert status == 200, answer
    return dict(answer)


async def _login(url: str, name: str, **extra: Any) -> dict[str, Any]:
    body = {"type": "m.login.password", "user": name, "password": f"pw-{name}"}
    status, answer = await api("POST", f"{url}{V3}/login", {**body, **extra})
    assert status == 200, answer
    return dict(answer)


async def _whoami(url: str, token: str) -> tuple[int, Any]:
    return await api("GET", f"{url}{V3}/account/whoami", token=token)


async def _refresh(url: str, token: str, prefix: str = V3) -> tuple[int, Any]:
    return await api("POST", f"{url}{prefix}/refresh", {"refresh_token": token})


def _soft_logout(answer: tuple[int, Any], soft: bool) -> None:
    status, body = answer
    assert (status, body["errcode"], body["soft_logout"]) == (401, "M_UNKNOWN_TOKEN", soft), body


async def test_login_use_expire_refresh_and_a_spent_token(shared_nats: str, tmp_path: Path) -> None:
    clock = ManualClock()
    async with running_site(tmp_path / "s", shared_nats, clock=clock, extra_toml=LIFETIME) as site:
        url = f"http://127.0.0.1:{site.port}"
        await _register(url, "alice")
        session = await _login(url, "alice", refresh_token=True)
        assert session["expires_in_ms"] == 60_000 and session["refresh_token"]
        assert await _whoami(url, session["access_token"]) == (
            200,
            {"user_id": "@alice:localhost", "device_id": session["device_id"], "is_guest": False},
        )
        clock.advance(61)
        _soft_logout(await _whoami(url, session["access_token"]), soft=True)

        status, fresh = await _refresh(url, session["refresh_token"])
        assert status == 200, fresh
        assert fresh["expires_in_ms"] == 60_000
        assert set(fresh) == {"access_token", "refresh_token", "expires_in_ms"}
        assert (await _whoami(url, fresh["access_token"]))[1]["device_id"] == session["device_id"]
        # The new pair was used, so the old refresh token is spent; the old access
        # token ended at the refresh (it is unknown now, not merely expired).
        _soft_logout(await _refresh(url, session["refresh_token"]), soft=False)
        _soft_logout(await _whoami(url, session["access_token"]), soft=False)

        # The v1 path (where v1.3 put it) works too; using its pair spends the token.
        status, again = await _refresh(url, fresh["refresh_token"], prefix=V1)
        assert status == 200, again
        status, body = await _whoami(url, fresh["access_token"])
        assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN")
        assert (await _whoami(url, again["access_token"]))[0] == 200
        _soft_logout(await _refresh(url, fresh["refresh_token"]), soft=False)

        # Unknown tokens and bad bodies.
        _soft_logout(await _refresh(url, "olt_nonsense"), soft=False)
        status, body = await api("POST", f"{url}{V3}/refresh", {})
        assert (status, body["errcode"]) == (400, "M_MISSING_PARAM")
        status, body = await api("POST", f"{url}{V3}/refresh", b"[")
        assert status == 400 and body["errcode"] == "M_NOT_JSON", body


async def test_an_unused_refresh_can_be_retried(shared_nats: str, tmp_path: Path) -> None:
    """The spec keeps the old refresh token until the new pair is used: a client that
    lost the answer refreshes again, and the pair it never got stops working."""
    async with running_site(tmp_path / "s", shared_nats, extra_toml=LIFETIME) as site:
        url = f"http://127.0.0.1:{site.port}"
        first = await _register(url, "bob", refresh_token=True)
        assert first["expires_in_ms"] == 60_000
        lost = (await _refresh(url, first["refresh_token"]))[1]
        status, kept = await _refresh(url, first["refresh_token"])
        assert status == 200, kept
        assert (await _whoami(url, lost["access_token"]))[0] == 401
        _soft_logout(await _refresh(url, lost["refresh_token"]), soft=False)
        assert (await _whoami(url, kept["access_token"]))[0] == 200
        _soft_logout(await _refresh(url, first["refresh_token"]), soft=False)


async def test_tokens_without_refresh_never_expire_and_logout_revokes(
    shared_nats: str, tmp_path: Path
) -> None:
    clock = ManualClock()
    async with running_site(tmp_path / "s", shared_nats, clock=clock, extra_toml=LIFETIME) as site:
        url = f"http://127.0.0.1:{site.port}"
        plain = await _register(url, "carol")
        assert "refresh_token" not in plain and "expires_in_ms" not in plain
        status, body = await api(
            "POST",
            f"{url}{V3}/login",
            {"type": "m.login.password", "user": "carol", "password": "x", "refresh_token": 1},
        )
        assert (status, body["errcode"]) == (400, "M_BAD_JSON")
        session = await _login(url, "carol", refresh_token=True)
        clock.advance(3600)
        assert (await _whoami(url, plain["access_token"]))[0] == 200
        _soft_logout(await _whoami(url, session["access_token"]), soft=True)
        # Logging out (here: every device) revokes the refresh token too.
        status, _ = await api("POST", f"{url}{V3}/logout/all", {}, plain["access_token"])
        assert status == 200
        _soft_logout(await _refresh(url, session["refresh_token"]), soft=False)


async def test_a_refresh_at_one_site_counts_at_another(shared_nats: str, tmp_path: Path) -> None:
    prefix = new_prefix()
    clock = ManualClock()
    async with (
        running_site(
            tmp_path / "a", shared_nats, prefix=prefix, clock=clock, extra_toml=LIFETIME
        ) as site_a,
        running_site(
            tmp_path / "b", shared_nats, prefix=prefix, clock=clock, extra_toml=LIFETIME
        ) as site_b,
    ):
        url_a, url_b = (f"http://127.0.0.1:{s.port}" for s in (site_a, site_b))
        session = await _register(url_a, "dave", refresh_token=True)
        assert (await _whoami(url_b, session["access_token"]))[0] == 200
        clock.advance(61)
        _soft_logout(await _whoami(url_b, session["access_token"]), soft=True)

        status, fresh = await _refresh(url_a, session["refresh_token"])
        assert status == 200, fresh
        # The new access token works at the other site at once, and its use there
        # spends the old refresh token at the first site.
        assert (await _whoami(url_b, fresh["access_token"]))[0] == 200
        _soft_logout(await _refresh(url_a, session["refresh_token"]), soft=False)
        # Refreshed at b, the pair from a ends at a.
        status, later = await _refresh(url_b, fresh["refresh_token"])
        assert status == 200, later
        assert (await _whoami(url_a, fresh["access_token"]))[0] == 401
        assert (await _whoami(url_a, later["access_token"]))[0] == 200
        _soft_logout(await _refresh(url_a, fresh["refresh_token"]), soft=False)


async def test_an_expired_refresh_token_is_a_soft_logout_and_the_device_logs_in_again(
    shared_nats: str, tmp_path: Path
) -> None:
    clock = ManualClock()
    limits = LIFETIME + "refresh_token_lifetime_ms = 120000\n"
    async with running_site(tmp_path / "s", shared_nats, clock=clock, extra_toml=limits) as site:
        url = f"http://127.0.0.1:{site.port}"
        await _register(url, "erin")
        session = await _login(url, "erin", refresh_token=True, device_id="PHONE")
        clock.advance(121)
        _soft_logout(await _refresh(url, session["refresh_token"]), soft=True)
        # Soft logout keeps the device: logging in with its id gives it new tokens, and
        # revokes the old refresh token for good.
        again = await _login(url, "erin", refresh_token=True, device_id="PHONE")
        assert (await _whoami(url, again["access_token"]))[1]["device_id"] == "PHONE"
        _soft_logout(await _refresh(url, session["refresh_token"]), soft=False)
        status, fresh = await _refresh(url, again["refresh_token"])
        assert status == 200 and fresh["expires_in_ms"] == 60_000, fresh
