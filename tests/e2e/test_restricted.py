"""Restricted rooms over real HTTP: members of an allowed room join without an invite."""

from __future__ import annotations

from outlast.site import Site
from tests.e2e.test_knock import membership, user


async def test_members_of_the_space_join_and_others_are_refused(site: Site) -> None:
    alice, bob, carol = (
        await user(site, "alice"),
        await user(site, "bob"),
        await user(site, "carol"),
    )
    space = await alice.ok(
        "POST", "/createRoom", {"preset": "public_chat", "creation_content": {"type": "m.space"}}
    )
    space_id = str(space["room_id"])
    room_id = str((await alice.ok("POST", "/createRoom", {}))["room_id"])
    rules = {
        "join_rule": "knock_restricted",
        "allow": [{"type": "m.room_membership", "room_id": space_id}],
    }
    await alice.ok("PUT", f"/rooms/{room_id}/state/m.room.join_rules", rules)

    status, err = await bob.call("POST", f"/join/{room_id}", {})
    assert (status, err["errcode"]) == (403, "M_FORBIDDEN")  # not (yet) in the space
    await bob.ok("POST", f"/join/{space_id}", {})
    await bob.ok("POST", f"/rooms/{room_id}/join", {})
    event = await alice.ok("GET", f"/rooms/{room_id}/state/m.room.member/{bob.user_id}")
    assert event["membership"] == "join"
    assert event["join_authorised_via_users_server"] == alice.user_id

    # Carol is in no allowed room: she cannot join, but knock_restricted lets her knock.
    status, err = await carol.call("POST", f"/join/{room_id}", {})
    assert (status, err["errcode"]) == (403, "M_FORBIDDEN")
    await carol.ok("POST", f"/knock/{room_id}", {})
    assert await membership(alice, room_id, carol.user_id) == "knock"
