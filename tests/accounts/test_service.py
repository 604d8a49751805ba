"""Accounts, devices and tokens at the service level (outlast.accounts.service), in process."""

from __future__ import annotations

from pathlib import Path

import pytest

from outlast.core.errors import MatrixError
from outlast.services import Services
from tests.testrig import running_site, services_of


async def register(services: Services, name: str, device: str | None = None) -> dict[str, str]:
    reply = await services.accounts.register(
        name, "secret password", device_id=device, display_name=None, inhibit_login=False
    )
    return {k: str(v) for k, v in reply.items()}


async def test_a_token_works_until_its_session_logs_out(services: Services) -> None:
    alice = await register(services, "alice", "PHONE")
    who = await services.accounts.authenticate(alice["access_token"])
    assert (who.user_id, who.device_id) == ("@alice:localhost", "PHONE")
    await services.accounts.logout(who)
    with pytest.raises(MatrixError) as refused:
        await services.accounts.authenticate(alice["access_token"])
    assert (refused.value.status, refused.value.errcode) == (401, "M_UNKNOWN_TOKEN")


async def test_a_name_is_registered_once(services: Services) -> None:
    await register(services, "bob")
    with pytest.raises(MatrixError) as taken:
        await register(services, "bob")
    assert taken.value.errcode == "M_USER_IN_USE"


async def test_login_checks_the_password_and_logout_all_ends_every_session(
    services: Services,
) -> None:
    first = await register(services, "carol")
    with pytest.raises(MatrixError) as wrong:
        await services.accounts.login(
            "@carol:localhost", "not it", device_id=None, display_name=None
        )
    assert (wrong.value.status, wrong.value.errcode) == (403, "M_FORBIDDEN")
    second = await services.accounts.login(
        "@carol:localhost", "secret password", device_id="LAPTOP", display_name="laptop"
    )
    who = await services.accounts.authenticate(str(second["access_token"]))
    assert who.device_id == "LAPTOP"
    await services.accounts.logout_all(who)
    for token in (first["access_token"], str(second["access_token"])):
        with pytest.raises(MatrixError):
            await services.accounts.authenticate(token)


async def test_two_sites_on_one_server_do_not_see_each_other(
    shared_nats: str, tmp_path: Path
) -> None:
    """Each deployment's names carry its own prefix (log.prefix)."""
    async with (
        running_site(tmp_path / "one", shared_nats) as one,
        running_site(tmp_path / "two", shared_nats) as two,
    ):
        first, second = services_of(one), services_of(two)
        dave = await register(first, "dave")
        await register(second, "dave")  # the same name, in another deployment
        with pytest.raises(MatrixError):
            await second.accounts.authenticate(dave["access_token"])
        assert await first.accounts.authenticate(dave["access_token"])
