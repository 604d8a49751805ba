"""A first end-to-end conversation through matrix-nio against a real server."""

from __future__ import annotations

from nio import AsyncClient, RoomMessageText, RoomSendResponse, SyncResponse

from tests.servers import OutlastProcess


async def test_two_clients_chat(server: OutlastProcess) -> None:
    alice = AsyncClient(server.url, "alice")
    bob = AsyncClient(server.url, "bob")
    try:
        assert (await alice.register("alice", "wonderland")).user_id == "@alice:localhost"
        await bob.register("bob", "builder")
        created = await alice.room_create(name="tea", invite=["@bob:localhost"])
        room_id = created.room_id
        await bob.sync(timeout=0)
        await bob.join(room_id)
        first = await bob.sync(timeout=0)
        assert isinstance(first, SyncResponse)
        sent = await alice.room_send(
            room_id, "m.room.message", {"msgtype": "m.text", "body": "hello bob"}
        )
        assert isinstance(sent, RoomSendResponse)
        nxt = await bob.sync(timeout=10_000, since=first.next_batch)
        assert isinstance(nxt, SyncResponse)
        bodies = [
            e.body
            for e in nxt.rooms.join[room_id].timeline.events
            if isinstance(e, RoomMessageText)
        ]
        assert bodies == ["hello bob"]
    finally:
        await alice.close()
        await bob.close()
