"""Bundled aggregations in ``unsigned["m.relations"]`` on every read that serves events,
with matrix-nio against a real server: edits, thread summaries, references; reactions
stay plain events."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from nio import (
    AsyncClient,
    JoinResponse,
    RoomContextResponse,
    RoomCreateResponse,
    RoomGetEventResponse,
    RoomMessagesResponse,
    RoomPreset,
    RoomPutStateResponse,
)

from tests.e2e.helpers import api, close_all, expect, register
from tests.e2e.test_relations import edit, msg, reaction, send, thread
from tests.servers import OutlastProcess

V1, V3 = "/_matrix/client/v1", "/_matrix/client/v3"


async def every_read(
    server: OutlastProcess, client: AsyncClient, room_id: str, event_id: str
) -> dict[str, dict[str, Any]]:
    """The event as /event, /messages, /context and /sync each serve it."""
    got: dict[str, dict[str, Any]] = {}
    resp = expect(await client.room_get_event(room_id, event_id), RoomGetEventResponse)
    got["event"] = resp.event.source
    page = expect(await client.room_messages(room_id, limit=100), RoomMessagesResponse)
    got["messages"] = next(e.source for e in page.chunk if e.event_id == event_id)
    context = expect(await client.room_context(room_id, event_id, limit=2), RoomContextResponse)
    got["context"] = context.event.source
    status, body = await api(
        "GET",
        server.url + V3 + "/sync",
        token=client.access_token,
        params={"filter": '{"room":{"timeline":{"limit":100}}}'},
    )
    assert status == 200, body
    timeline = body["rooms"]["join"][room_id]["timeline"]["events"]
    got["sync"] = next(e for e in timeline if e["event_id"] == event_id)
    return got


def bundled(event: dict[str, Any]) -> dict[str, Any]:
    return dict(event.get("unsigned", {}).get("m.relations", {}))


async def test_the_latest_valid_edit_is_bundled_and_the_content_left_alone(
    server: OutlastProcess, alice_bob_room: tuple[AsyncClient, AsyncClient, str]
) -> None:
    alice, bob, room_id = alice_bob_room
    root = await send(alice, room_id, msg("original"))
    await send(alice, room_id, edit(root, "first edit"))
    latest = await send(alice, room_id, edit(root, "second edit"))
    await send(bob, room_id, edit(root, "bob may not edit alice's message"))
    await send(bob, room_id, reaction(root, "👍"), "m.reaction")
    plain = await send(alice, room_id, msg("never edited"))

    for where, event in (await every_read(server, bob, room_id, root)).items():
        relations = bundled(event)
        assert relations["m.replace"]["event_id"] == latest, where
        assert relations["m.replace"]["content"]["m.new_content"]["body"] == "second edit"
        assert relations["m.replace"]["sender"] == alice.user_id
        assert event["content"]["body"] == "original", where  # clients apply the edit
        assert "m.annotation" not in relations, where  # reactions are not aggregated
    for where, event in (await every_read(server, bob, room_id, plain)).items():
        assert "m.relations" not in event.get("unsigned", {}), where

    # Once the original is redacted, no edit is bundled with it.
    await alice.room_redact(room_id, root)
    for where, event in (await every_read(server, bob, room_id, root)).items():
        assert event["content"] == {} and "m.replace" not in bundled(event), where


async def test_an_encrypted_edit_is_bundled_without_new_content(
    server: OutlastProcess, alice_bob_room: tuple[AsyncClient, AsyncClient, str]
) -> None:
    """The server cannot see m.new_content inside ciphertext; the relation is cleartext."""
    alice, bob, room_id = alice_bob_room

    def encrypted(rel: dict[str, str] | None = None) -> dict[str, Any]:
        content: dict[str, Any] = {
            "algorithm": "m.megolm.v1.aes-sha2",
            "ciphertext": "AwgAEnAC",
            "device_id": "DEV",
            "sender_key": "c2VuZGVy",
            "session_id": "c2Vzc2lvbg",
        }
        if rel is not None:
            content["m.relates_to"] = rel
        return content

    async def put(content: dict[str, Any], txn: str) -> str:
        path = f"{V3}/rooms/{quote(room_id)}/send/m.room.encrypted/{txn}"
        status, body = await api("PUT", server.url + path, content, token=alice.access_token)
        assert status == 200, body
        return str(body["event_id"])

    root = await put(encrypted(), "t1")
    replacement = await put(encrypted({"rel_type": "m.replace", "event_id": root}), "t2")
    for where, event in (await every_read(server, bob, room_id, root)).items():
        assert bundled(event)["m.replace"]["event_id"] == replacement, where


async def test_a_thread_root_carries_its_summary(
    server: OutlastProcess, alice_bob_room: tuple[AsyncClient, AsyncClient, str]
) -> None:
    alice, bob, room_id = alice_bob_room
    carol = await register(server.url, "carol")
    try:
        expect(await carol.join(room_id), JoinResponse)
        root = await send(alice, room_id, msg("root"))
        await send(bob, room_id, thread(root, "first reply"))
        last = await send(bob, room_id, thread(root, "second reply"))
        fixed = await send(bob, room_id, edit(last, "second reply, fixed"))
        cite = await send(
            carol, room_id, msg("see above", {"rel_type": "m.reference", "event_id": root})
        )

        for client, participated in ((alice, True), (bob, True), (carol, False)):
            for where, event in (await every_read(server, client, room_id, root)).items():
                summary = bundled(event)["m.thread"]
                assert summary["count"] == 2, where
                assert summary["current_user_participated"] is participated, (client.user_id, where)
                latest = summary["latest_event"]
                assert latest["event_id"] == last and latest["content"]["body"] == "second reply"
                assert bundled(latest)["m.replace"]["event_id"] == fixed, where
                assert bundled(event)["m.reference"] == {"chunk": [{"event_id": cite}]}, where

        # /threads and /relations serve their events bundled too.
        path = f"{V1}/rooms/{quote(room_id)}/threads"
        status, body = await api("GET", server.url + path, token=carol.access_token)
        assert status == 200 and body["chunk"][0]["event_id"] == root
        assert bundled(body["chunk"][0])["m.thread"]["count"] == 2
        path = f"{V1}/rooms/{quote(room_id)}/relations/{quote(root)}/m.thread"
        status, body = await api("GET", server.url + path, token=carol.access_token)
        assert status == 200 and body["chunk"][0]["event_id"] == last
        assert bundled(body["chunk"][0])["m.replace"]["event_id"] == fixed
    finally:
        await close_all(carol)


async def test_only_replies_the_user_may_see_are_counted(server: OutlastProcess) -> None:
    alice, bob = await register(server.url, "alice"), await register(server.url, "bob")
    try:
        resp = await alice.room_create(preset=RoomPreset.public_chat)
        room_id = str(expect(resp, RoomCreateResponse).room_id)
        vis = {"history_visibility": "joined"}
        put = await alice.room_put_state(room_id, "m.room.history_visibility", vis)
        expect(put, RoomPutStateResponse)
        expect(await bob.join(room_id), JoinResponse)
        root = await send(alice, room_id, msg("root"))
        seen = await send(alice, room_id, thread(root, "while bob is here"))
        await bob.room_leave(room_id)
        await send(alice, room_id, thread(root, "after bob left"))
        event = expect(await bob.room_get_event(room_id, root), RoomGetEventResponse).event.source
        summary = bundled(event)["m.thread"]
        assert summary["count"] == 1 and summary["latest_event"]["event_id"] == seen
        event = expect(await alice.room_get_event(room_id, root), RoomGetEventResponse).event.source
        assert bundled(event)["m.thread"]["count"] == 2
    finally:
        await close_all(alice, bob)


async def test_sending_refuses_nested_threads_and_repeated_reactions(
    server: OutlastProcess, alice_bob_room: tuple[AsyncClient, AsyncClient, str]
) -> None:
    alice, bob, room_id = alice_bob_room
    root = await send(alice, room_id, msg("root"))
    reply = await send(bob, room_id, thread(root, "a reply"))
    await send(bob, room_id, reaction(root, "👍"), "m.reaction")

    async def put(kind: str, content: dict[str, Any], txn: str) -> tuple[int, Any]:
        path = f"{V3}/rooms/{quote(room_id)}/send/{kind}/{txn}"
        return await api("PUT", server.url + path, content, token=bob.access_token)

    status, body = await put("m.room.message", thread(reply, "a thread in a thread"), "n1")
    assert (status, body["errcode"]) == (400, "M_UNKNOWN")
    status, body = await put("m.reaction", reaction(root, "👍"), "r2")
    assert (status, body["errcode"]) == (400, "M_DUPLICATE_ANNOTATION")
    status, _ = await put("m.reaction", reaction(root, "🎉"), "r3")  # another key is fine
    assert status == 200
    first = await put("m.reaction", reaction(reply, "👀"), "r4")
    assert first[0] == 200
    assert await put("m.reaction", reaction(reply, "👀"), "r4") == first  # a retry, not a repeat
