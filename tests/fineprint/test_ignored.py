"""An invite from a user one ignores does not show in /sync."""

from __future__ import annotations

from nio import AsyncClient, RoomCreateResponse

from tests.e2e.helpers import V3, api, expect

IGNORE = f"{V3}/user/@bob:localhost/account_data/m.ignored_user_list"


async def invites(url: str, bob: AsyncClient) -> set[str]:
    status, body = await api("GET", f"{url}{V3}/sync", token=bob.access_token)
    assert status == 200, body
    return set(body.get("rooms", {}).get("invite", {}))


async def test_invites_from_ignored_users_are_hidden(
    url: str, pair: tuple[AsyncClient, AsyncClient]
) -> None:
    alice, bob = pair
    ignoring: dict[str, dict[str, object]] = {"ignored_users": {"@alice:localhost": {}}}
    assert (await api("PUT", url + IGNORE, ignoring, bob.access_token))[0] == 200
    hidden = expect(await alice.room_create(invite=["@bob:localhost"]), RoomCreateResponse)
    assert hidden.room_id not in await invites(url, bob)

    assert (await api("PUT", url + IGNORE, {"ignored_users": {}}, bob.access_token))[0] == 200
    shown = expect(await alice.room_create(invite=["@bob:localhost"]), RoomCreateResponse)
    assert shown.room_id in await invites(url, bob)
