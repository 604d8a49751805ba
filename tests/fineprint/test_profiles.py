"""A new account's display name, and the invitee's name in invite member events."""

from __future__ import annotations

from nio import AsyncClient, ProfileGetDisplayNameResponse, RoomCreateResponse

from tests.e2e.helpers import V3, api, expect


async def test_a_new_user_is_named_after_the_localpart(
    url: str, pair: tuple[AsyncClient, AsyncClient]
) -> None:
    alice, bob = pair
    name = expect(await bob.get_displayname("@alice:localhost"), ProfileGetDisplayNameResponse)
    assert name.displayname == "alice"
    assert await api("GET", f"{url}{V3}/profile/@alice:localhost") == (
        200,
        {"displayname": "alice"},
    )


async def test_an_invite_carries_the_invitees_display_name(
    url: str, pair: tuple[AsyncClient, AsyncClient]
) -> None:
    alice, bob = pair
    await api(
        "PUT",
        f"{url}{V3}/profile/@bob:localhost/displayname",
        {"displayname": "Bob B"},
        bob.access_token,
    )
    room_id = expect(await alice.room_create(), RoomCreateResponse).room_id
    status, _ = await api(
        "POST",
        f"{url}{V3}/rooms/{room_id}/invite",
        {"user_id": "@bob:localhost"},
        alice.access_token,
    )
    assert status == 200
    status, content = await api(
        "GET",
        f"{url}{V3}/rooms/{room_id}/state/m.room.member/@bob:localhost",
        token=alice.access_token,
    )
    assert (status, content) == (200, {"membership": "invite", "displayname": "Bob B"})
