"""Kicks need a member, unbans a ban; a forgotten room's history is closed."""

from __future__ import annotations

from typing import Any

from nio import AsyncClient, RoomCreateResponse, RoomKickResponse, RoomPreset

from tests.e2e.helpers import V3, api, close_all, expect, forbidden, register


async def test_kicking_someone_not_in_the_room_is_forbidden(
    url: str, pair: tuple[AsyncClient, AsyncClient]
) -> None:
    alice, bob = pair
    room = expect(await alice.room_create(preset=RoomPreset.public_chat), RoomCreateResponse)
    forbidden(await alice.room_kick(room.room_id, "@bob:localhost"))  # never joined
    assert (await api("POST", f"{url}{V3}/join/{room.room_id}", {}, bob.access_token))[0] == 200
    expect(await alice.room_kick(room.room_id, "@bob:localhost"), RoomKickResponse)
    forbidden(await alice.room_kick(room.room_id, "@bob:localhost"))  # already gone
    status, body = await api(
        "POST",
        f"{url}{V3}/rooms/{room.room_id}/unban",
        {"user_id": "@bob:localhost"},
        alice.access_token,
    )
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")  # not banned


async def test_a_forgotten_rooms_history_is_forbidden(
    url: str, pair: tuple[AsyncClient, AsyncClient]
) -> None:
    alice, bob = pair
    room = expect(await alice.room_create(preset=RoomPreset.public_chat), RoomCreateResponse)
    base = f"{url}{V3}/rooms/{room.room_id}"
    assert (await api("POST", f"{url}{V3}/join/{room.room_id}", {}, bob.access_token))[0] == 200
    assert (await api("POST", f"{base}/leave", {}, bob.access_token))[0] == 200
    params = {"dir": "b"}
    assert (await api("GET", f"{base}/messages", token=bob.access_token, params=params))[0] == 200
    assert (await api("POST", f"{base}/forget", {}, bob.access_token))[0] == 200
    status, body = await api("GET", f"{base}/messages", token=bob.access_token, params=params)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    # Joining again opens it again.
    assert (await api("POST", f"{url}{V3}/join/{room.room_id}", {}, bob.access_token))[0] == 200
    assert (await api("GET", f"{base}/messages", token=bob.access_token, params=params))[0] == 200


async def test_a_join_keeps_the_bodys_extra_keys(
    url: str, pair: tuple[AsyncClient, AsyncClient]
) -> None:
    alice, bob = pair
    room = expect(await alice.room_create(preset=RoomPreset.public_chat), RoomCreateResponse)
    body = {"reason": "tea", "org.example.badge": {"level": 3}, "membership": "ban"}
    status, _ = await api("POST", f"{url}{V3}/join/{room.room_id}", body, bob.access_token)
    assert status == 200
    status, content = await api(
        "GET",
        f"{url}{V3}/rooms/{room.room_id}/state/m.room.member/@bob:localhost",
        token=bob.access_token,
    )
    assert status == 200
    assert content == {
        "membership": "join",
        "displayname": "bob",
        "reason": "tea",
        "org.example.badge": {"level": 3},
    }


async def test_a_leave_then_forget_still_reaches_the_next_incremental_sync(
    url: str, pair: tuple[AsyncClient, AsyncClient]
) -> None:
    alice, bob = pair
    room = expect(await alice.room_create(preset=RoomPreset.public_chat), RoomCreateResponse)
    assert (await api("POST", f"{url}{V3}/join/{room.room_id}", {}, bob.access_token))[0] == 200
    include_leave = '{"room": {"include_leave": true}}'

    async def sync(since: str | None = None) -> dict[str, Any]:
        params = {"filter": include_leave} | ({"since": since} if since else {})
        status, body = await api("GET", f"{url}{V3}/sync", token=bob.access_token, params=params)
        assert status == 200, body
        return dict(body)

    before = (await sync())["next_batch"]
    base = f"{url}{V3}/rooms/{room.room_id}"
    assert (await api("POST", f"{base}/leave", {}, bob.access_token))[0] == 200
    assert (await api("POST", f"{base}/forget", {}, bob.access_token))[0] == 200

    spanning = await sync(before)
    assert room.room_id in spanning.get("rooms", {}).get("leave", {})
    later = await sync(spanning["next_batch"])
    assert room.room_id not in later.get("rooms", {}).get("leave", {})
    assert room.room_id not in (await sync()).get("rooms", {}).get("leave", {})


async def test_members_at_a_token_are_the_members_then(
    url: str, pair: tuple[AsyncClient, AsyncClient]
) -> None:
    alice, bob = pair
    room = expect(await alice.room_create(preset=RoomPreset.public_chat), RoomCreateResponse)
    status, body = await api("GET", f"{url}{V3}/sync", token=alice.access_token)
    before_bob = body["next_batch"]
    assert (await api("POST", f"{url}{V3}/join/{room.room_id}", {}, bob.access_token))[0] == 200

    async def member_ids(**params: str) -> set[str]:
        status, body = await api(
            "GET",
            f"{url}{V3}/rooms/{room.room_id}/members",
            token=alice.access_token,
            params=params,
        )
        assert status == 200, body
        return {e["state_key"] for e in body["chunk"]}

    assert await member_ids() == {"@alice:localhost", "@bob:localhost"}
    assert await member_ids(at=before_bob) == {"@alice:localhost"}
    status, body = await api(
        "GET",
        f"{url}{V3}/rooms/{room.room_id}/members",
        token=alice.access_token,
        params={"at": "nonsense"},
    )
    assert status == 400, body


async def test_members_filtered_by_membership(
    url: str, pair: tuple[AsyncClient, AsyncClient]
) -> None:
    alice, bob = pair
    carol = await register(url, "carol")
    try:
        room = expect(await alice.room_create(preset=RoomPreset.public_chat), RoomCreateResponse)
        base = f"{url}{V3}/rooms/{room.room_id}"
        assert (await api("POST", f"{url}{V3}/join/{room.room_id}", {}, bob.access_token))[0] == 200
        assert (await api("POST", f"{base}/leave", {}, bob.access_token))[0] == 200
        invite = {"user_id": "@carol:localhost"}
        assert (await api("POST", f"{base}/invite", invite, alice.access_token))[0] == 200

        async def members(**params: str) -> dict[str, str]:
            status, body = await api(
                "GET", f"{base}/members", token=alice.access_token, params=params
            )
            assert status == 200, body
            return {e["state_key"]: e["content"]["membership"] for e in body["chunk"]}

        everyone = {
            "@alice:localhost": "join",
            "@bob:localhost": "leave",
            "@carol:localhost": "invite",
        }
        assert await members() == everyone
        assert await members(membership="invite") == {"@carol:localhost": "invite"}
        assert await members(not_membership="leave") == {
            "@alice:localhost": "join",
            "@carol:localhost": "invite",
        }
        assert await members(membership="join", not_membership="leave") == {
            "@alice:localhost": "join"
        }
        for bad in ({"membership": "member"}, {"not_membership": "gone"}):
            status, body = await api("GET", f"{base}/members", token=alice.access_token, params=bad)
            assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    finally:
        await close_all(carol)
