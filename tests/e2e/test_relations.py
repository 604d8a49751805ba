"""/relations and /threads with matrix-nio against a real server: types, paging, recursion,
and visibility exactly as /messages has it."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from nio import (
    AsyncClient,
    JoinResponse,
    RoomCreateResponse,
    RoomPreset,
    RoomPutStateResponse,
    RoomSendResponse,
)
from nio.api import MessageDirection, RelationshipType, ThreadInclusion

from tests.e2e.helpers import api, close_all, expect, register
from tests.servers import OutlastProcess

V1 = "/_matrix/client/v1"


async def send(client: AsyncClient, room_id: str, content: dict[str, Any], kind: str = "") -> str:
    resp = await client.room_send(room_id, kind or "m.room.message", content)
    return str(expect(resp, RoomSendResponse).event_id)


def msg(body: str, rel: dict[str, Any] | None = None) -> dict[str, Any]:
    content: dict[str, Any] = {"msgtype": "m.text", "body": body}
    if rel is not None:
        content["m.relates_to"] = rel
    return content


def edit(target: str, body: str) -> dict[str, Any]:
    return {
        **msg(f"* {body}", {"rel_type": "m.replace", "event_id": target}),
        "m.new_content": msg(body),
    }


def thread(root: str, body: str) -> dict[str, Any]:
    return msg(body, {"rel_type": "m.thread", "event_id": root})


def reaction(target: str, key: str) -> dict[str, Any]:
    return {"m.relates_to": {"rel_type": "m.annotation", "event_id": target, "key": key}}


async def children(client: AsyncClient, room_id: str, parent: str, **kw: Any) -> list[str]:
    return [e.event_id async for e in client.room_get_event_relations(room_id, parent, **kw)]


async def relations(
    url: str, client: AsyncClient, room_id: str, parent: str, tail: str = "", **params: str
) -> tuple[int, Any]:
    path = f"{V1}/rooms/{quote(room_id)}/relations/{quote(parent)}{tail}"
    return await api("GET", url + path, token=client.access_token, params=params)


async def test_children_by_type_paged_both_ways_and_recursively(
    server: OutlastProcess, alice_bob_room: tuple[AsyncClient, AsyncClient, str]
) -> None:
    alice, bob, room_id = alice_bob_room
    root = await send(alice, room_id, msg("root"))
    edit1 = await send(alice, room_id, edit(root, "root, edited"))
    like = await send(bob, room_id, reaction(root, "👍"), "m.reaction")
    replies = [await send(bob, room_id, thread(root, f"reply {n}")) for n in range(3)]
    deep = await send(alice, room_id, reaction(replies[0], "🎉"), "m.reaction")
    edit2 = await send(alice, room_id, edit(root, "root, edited twice"))
    await send(alice, room_id, msg("unrelated"))
    direct = [edit1, like, *replies, edit2]

    # Newest first by default, paged by nio's iterator (two per request).
    assert await children(bob, room_id, root, limit=2) == direct[::-1]
    forwards = await children(bob, room_id, root, limit=2, direction=MessageDirection.front)
    assert forwards == direct
    threaded = await children(alice, room_id, root, rel_type=RelationshipType.thread)
    assert threaded == replies[::-1]
    reactions = await children(
        alice, room_id, root, rel_type=RelationshipType.annotation, event_type="m.reaction"
    )
    assert reactions == [like]
    assert await children(alice, room_id, root, rel_type=RelationshipType.reference) == []

    # One page at a time, by hand: next_batch, then the rest; prev_batch echoes from.
    status, first = await relations(server.url, bob, room_id, root, limit="4")
    assert status == 200 and [e["event_id"] for e in first["chunk"]] == direct[::-1][:4]
    assert "prev_batch" not in first and "recursion_depth" not in first
    status, rest = await relations(
        server.url, bob, room_id, root, limit="4", **{"from": first["next_batch"]}
    )
    assert [e["event_id"] for e in rest["chunk"]] == direct[::-1][4:]
    assert "next_batch" not in rest and rest["prev_batch"] == first["next_batch"]
    # A `to` token bounds the walk: from the newest back to the first page's end.
    status, bounded = await relations(server.url, bob, room_id, root, to=first["next_batch"])
    assert [e["event_id"] for e in bounded["chunk"]] == direct[::-1][:4]

    # recurse follows relations of relations; the depth is reported iff asked.
    status, flat = await relations(server.url, bob, room_id, root, limit="50", recurse="false")
    assert deep not in [e["event_id"] for e in flat["chunk"]] and flat["recursion_depth"] == 1
    status, tree = await relations(server.url, bob, room_id, root, limit="50", recurse="true")
    assert [e["event_id"] for e in tree["chunk"]] == [edit2, deep, *replies[::-1], like, edit1]
    assert tree["recursion_depth"] == 3
    status, typed = await relations(
        server.url, bob, room_id, root, "/m.annotation", limit="50", recurse="true"
    )
    assert [e["event_id"] for e in typed["chunk"]] == [like]  # the walk stays on the type

    # Children are served in full, as /messages serves them.
    served = {e["event_id"]: e for e in tree["chunk"]}
    assert served[edit2]["content"]["m.new_content"]["body"] == "root, edited twice"
    assert served[like]["type"] == "m.reaction" and served[like]["sender"] == bob.user_id

    # A redacted child no longer relates: redaction strips its m.relates_to.
    await bob.room_redact(room_id, like)
    assert await children(alice, room_id, root, rel_type=RelationshipType.annotation) == []


async def test_bad_requests_are_matrix_errors(
    server: OutlastProcess, alice_bob_room: tuple[AsyncClient, AsyncClient, str]
) -> None:
    alice, _, room_id = alice_bob_room
    root = await send(alice, room_id, msg("root"))
    for params, code in (
        ({"dir": "x"}, "M_INVALID_PARAM"),
        ({"limit": "-1"}, "M_INVALID_PARAM"),
        ({"recurse": "maybe"}, "M_INVALID_PARAM"),
        ({"from": "nonsense"}, "M_INVALID_PARAM"),
    ):
        status, body = await relations(server.url, alice, room_id, root, **params)
        assert (status, body["errcode"]) == (400, code), params
    status, body = await relations(server.url, alice, room_id, "$nothing:localhost")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    path = f"{V1}/rooms/{quote(room_id)}/threads"
    status, body = await api(
        "GET", server.url + path, token=alice.access_token, params={"limit": "0"}
    )
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    status, body = await api(
        "GET", server.url + path, token=alice.access_token, params={"include": "x"}
    )
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")


async def test_what_a_user_may_not_see_is_left_out(server: OutlastProcess) -> None:
    """History visibility "joined": a former member sees the parent and the children sent
    while they were in the room, no later ones; a stranger gets 404 / 403."""
    alice, bob = await register(server.url, "alice"), await register(server.url, "bob")
    carol = await register(server.url, "carol")
    try:
        resp = await alice.room_create(preset=RoomPreset.public_chat)
        room_id = str(expect(resp, RoomCreateResponse).room_id)
        vis = {"history_visibility": "joined"}
        expect(
            await alice.room_put_state(room_id, "m.room.history_visibility", vis),
            RoomPutStateResponse,
        )
        expect(await bob.join(room_id), JoinResponse)
        root = await send(alice, room_id, msg("root"))
        seen = await send(bob, room_id, thread(root, "while bob is here"))
        await bob.room_leave(room_id)
        unseen = await send(alice, room_id, thread(root, "after bob left"))
        other_root = await send(alice, room_id, msg("another root"))
        await send(alice, room_id, thread(other_root, "in a thread bob never saw"))

        assert await children(alice, room_id, root) == [unseen, seen]
        assert await children(bob, room_id, root) == [seen]
        status, _ = await relations(server.url, bob, room_id, other_root)
        assert status == 404  # the parent itself is out of bob's sight
        status, _ = await relations(server.url, carol, room_id, root)
        assert status == 404

        assert [e.event_id async for e in alice.room_get_threads(room_id)] == [other_root, root]
        assert [e.event_id async for e in bob.room_get_threads(room_id)] == [root]
        path = f"{V1}/rooms/{quote(room_id)}/threads"
        status, body = await api("GET", server.url + path, token=carol.access_token)
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
    finally:
        await close_all(alice, bob, carol)


async def test_threads_most_recent_first_paged_and_by_participation(
    server: OutlastProcess, alice_bob_room: tuple[AsyncClient, AsyncClient, str]
) -> None:
    alice, bob, room_id = alice_bob_room
    a = await send(alice, room_id, msg("alice's root"))
    b = await send(bob, room_id, msg("bob's root"))
    c = await send(bob, room_id, msg("bob's other root"))
    await send(alice, room_id, msg("no thread here"))
    await send(bob, room_id, thread(a, "bob in a"))
    await send(bob, room_id, thread(c, "bob in c"))
    await send(alice, room_id, thread(b, "alice in b"))
    await send(bob, room_id, thread(a, "a again: now the most recent"))

    assert [e.event_id async for e in alice.room_get_threads(room_id, limit=1)] == [a, b, c]
    mine = alice.room_get_threads(room_id, include=ThreadInclusion.participated)
    assert [e.event_id async for e in mine] == [a, b]  # her root, her reply; not c
    bobs = bob.room_get_threads(room_id, include=ThreadInclusion.participated, limit=2)
    assert [e.event_id async for e in bobs] == [a, b, c]
