"""Knocking over real HTTP against an in-process site: knock, then accept, deny or rescind."""

from __future__ import annotations

from typing import Any

from outlast.site import Site
from tests.e2e.helpers import api

V3 = "/_matrix/client/v3"


class User:
    """A registered account on ``site`` that speaks raw Client-Server API calls."""

    def __init__(self, site: Site, user_id: str, token: str) -> None:
        self.url = f"http://127.0.0.1:{site.port}{V3}"
        self.user_id = user_id
        self.token = token

    async def call(
        self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        return await api(method, self.url + path, body, token=self.token, params=params)

    async def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = await self.call(method, path, body)
        assert status == 200, (method, path, answer)
        return answer

    async def sync(self, since: str | None = None) -> dict[str, Any]:
        params = {"since": since, "timeout": "0"} if since else {"timeout": "0"}
        status, body = await self.call("GET", "/sync", params=params)
        assert status == 200, body
        return dict(body)


async def user(site: Site, name: str) -> User:
    body = {"username": name, "password": f"pw-{name}", "auth": {"type": "m.login.dummy"}}
    status, answer = await api("POST", f"http://127.0.0.1:{site.port}{V3}/register", body)
    assert status == 200, answer
    return User(site, answer["user_id"], answer["access_token"])


async def knock_room(alice: User, join_rule: str = "knock") -> str:
    """A room of Alice's named "Knockers" whose join rule is ``join_rule``, set after creation
    (so the join rule is shown to be settable by an ordinary state event)."""
    room = await alice.ok("POST", "/createRoom", {"name": "Knockers"})
    room_id = str(room["room_id"])
    await alice.ok("PUT", f"/rooms/{room_id}/state/m.room.join_rules", {"join_rule": join_rule})
    return room_id


async def membership(who: User, room_id: str, user_id: str) -> str:
    member = await who.ok("GET", f"/rooms/{room_id}/state/m.room.member/{user_id}")
    return str(member["membership"])


async def test_knock_shows_in_sync_and_is_accepted_by_an_invite(site: Site) -> None:
    alice, bob = await user(site, "alice"), await user(site, "bob")
    room_id = await knock_room(alice)
    since = (await bob.sync())["next_batch"]

    answer = await bob.ok("POST", f"/knock/{room_id}?server_name=elsewhere", {"reason": "hi"})
    assert answer == {"room_id": room_id}

    rooms = (await bob.sync(since))["rooms"]
    assert room_id not in rooms["join"] and room_id not in rooms["invite"]
    stripped = rooms["knock"][room_id]["knock_state"]["events"]
    by_type = {(e["type"], e["state_key"]): e for e in stripped}
    assert by_type[("m.room.name", "")]["content"] == {"name": "Knockers"}
    assert by_type[("m.room.join_rules", "")]["content"]["join_rule"] == "knock"
    own = by_type[("m.room.member", bob.user_id)]
    assert own["content"]["membership"] == "knock" and own["content"]["reason"] == "hi"
    assert "event_id" not in own and "origin_server_ts" not in own
    # Alice, a member, sees the knock in her room's timeline.
    timeline = (await alice.sync())["rooms"]["join"][room_id]["timeline"]["events"]
    assert any(
        e["type"] == "m.room.member"
        and e["content"]["membership"] == "knock"
        and e["state_key"] == bob.user_id
        for e in timeline
    )
    # A knock is not a join: Bob still cannot speak.
    status, err = await bob.call("PUT", f"/rooms/{room_id}/send/m.room.message/t1", {"body": "x"})
    assert (status, err["errcode"]) == (403, "M_FORBIDDEN")

    since = (await bob.sync())["next_batch"]
    await alice.ok("POST", f"/rooms/{room_id}/invite", {"user_id": bob.user_id})
    rooms = (await bob.sync(since))["rooms"]
    assert room_id in rooms["invite"] and room_id not in rooms["knock"]
    await bob.ok("POST", f"/join/{room_id}", {})
    assert await membership(alice, room_id, bob.user_id) == "join"


async def test_knock_denied_by_a_kick_and_rescinded_by_leaving(site: Site) -> None:
    alice, bob, carol = (
        await user(site, "alice"),
        await user(site, "bob"),
        await user(site, "carol"),
    )
    room_id = await knock_room(alice)

    await bob.ok("POST", f"/knock/{room_id}", {})
    await alice.ok("POST", f"/rooms/{room_id}/kick", {"user_id": bob.user_id, "reason": "no"})
    assert await membership(alice, room_id, bob.user_id) == "leave"
    status, err = await bob.call("POST", f"/join/{room_id}", {})
    assert (status, err["errcode"]) == (403, "M_FORBIDDEN")

    await carol.ok("POST", f"/knock/{room_id}", {"reason": "please"})
    await carol.ok("POST", f"/knock/{room_id}", {})  # knocking again is allowed (4.7.3)
    since = (await carol.sync())["next_batch"]
    await carol.ok("POST", f"/rooms/{room_id}/leave", {})
    assert await membership(alice, room_id, carol.user_id) == "leave"
    rooms = (await carol.sync(since))["rooms"]
    assert room_id in rooms["leave"] and room_id not in rooms["knock"]


async def test_knock_refused_where_the_room_does_not_accept_knocks(site: Site) -> None:
    alice, bob = await user(site, "alice"), await user(site, "bob")
    invite_only = str((await alice.ok("POST", "/createRoom", {}))["room_id"])
    public = str((await alice.ok("POST", "/createRoom", {"preset": "public_chat"}))["room_id"])
    for room_id in (invite_only, public):
        status, err = await bob.call("POST", f"/knock/{room_id}", {})
        assert (status, err["errcode"]) == (403, "M_FORBIDDEN"), err
    # A member cannot knock on their own room, nor a banned user on any.
    knocky = await knock_room(alice)
    status, err = await alice.call("POST", f"/knock/{knocky}", {})
    assert (status, err["errcode"]) == (403, "M_FORBIDDEN")
    await alice.ok("POST", f"/rooms/{knocky}/ban", {"user_id": bob.user_id})
    status, err = await bob.call("POST", f"/knock/{knocky}", {})
    assert (status, err["errcode"]) == (403, "M_FORBIDDEN")


async def test_knock_bad_input_answers_matrix_errors(site: Site) -> None:
    alice, bob = await user(site, "alice"), await user(site, "bob")
    room_id = await knock_room(alice, "knock_restricted")
    status, err = await bob.call("POST", "/knock/!nowhere:localhost", {})
    assert (status, err["errcode"]) == (404, "M_NOT_FOUND")
    status, err = await bob.call("POST", "/knock/%23missing:localhost", {})
    assert (status, err["errcode"]) == (404, "M_NOT_FOUND")
    status, err = await bob.call("POST", "/knock/not-a-room", {})
    assert (status, err["errcode"]) == (400, "M_INVALID_PARAM")
    status, err = await bob.call("POST", f"/knock/{room_id}", {"reason": 7})
    assert (status, err["errcode"]) == (400, "M_BAD_JSON")
    status, err = await bob.call("POST", f"/knock/{room_id}", [1])
    assert (status, err["errcode"]) == (400, "M_BAD_JSON")
    # knock_restricted (room version 10, the default) accepts knocks too.
    await bob.ok("POST", f"/knock/{room_id}", {})
    assert await membership(alice, room_id, bob.user_id) == "knock"
