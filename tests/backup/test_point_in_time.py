"""Point in time: a room is flooded with spam and then a stream is deleted; a restore to
the moment before the flood brings back everything before it and nothing after."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import nats
from nio import JoinResponse, RoomCreateResponse, WhoamiResponse

from outlast.admin_commands import embedded_port
from outlast.log.names import Names
from tests.backup.helpers import backup, on, restore, room_view, send, serve_restored
from tests.e2e.helpers import V3, api, close_all, expect, register, sync
from tests.servers import OutlastProcess

NAMES = Names("outlast", 2)


async def stream_last_seq(server: OutlastProcess, stream: str) -> int:
    nc = await nats.connect(f"nats://127.0.0.1:{embedded_port(server.data_dir)}")
    try:
        info = await nc.jetstream(timeout=10).stream_info(stream)
        return int(info.state.last_seq)
    finally:
        await nc.close()


async def delete_stream(server: OutlastProcess, stream: str) -> None:
    nc = await nats.connect(f"nats://127.0.0.1:{embedded_port(server.data_dir)}")
    try:
        assert await nc.jetstream(timeout=10).delete_stream(stream)
    finally:
        await nc.close()


async def test_restore_until_before_a_spam_flood_and_a_deleted_stream(
    server: OutlastProcess, tmp_path: Path
) -> None:
    alice = await register(server.url, "alice")
    spammer = await register(server.url, "spammer")
    clients = [alice, spammer]
    try:
        room = expect(await alice.room_create(name="calm"), RoomCreateResponse).room_id
        other = expect(await alice.room_create(name="other"), RoomCreateResponse).room_id
        await alice.room_invite(room, spammer.user_id)
        expect(await spammer.join(room), JoinResponse)
        for n in range(10):
            await send(alice, room, f"good-{n}")
            await send(alice, other, f"other-{n}")
        good_room = await room_view(alice, room)
        good_other = await room_view(alice, other)
        token_before = (await sync(alice, timeout=0)).next_batch
        partition = NAMES.room_subjects(room).stream
        good_seq = await stream_last_seq(server, partition)
        await asyncio.sleep(0.01)  # the flood's timestamps are after this moment
        moment = time.time()
        await asyncio.sleep(0.01)

        for n in range(150):  # the mistake
            await send(spammer, room, f"SPAM-{n}")
        flooded = await room_view(alice, room)
        token_after = (await sync(alice, timeout=0)).next_batch
        assert len(flooded["events"]) == len(good_room["events"]) + 150
        await backup(server, tmp_path / "backups")  # the backup holds the flood too
        await delete_stream(server, partition)  # and then a second mistake

        for name, cut in (
            ("by-time", ("--until", f"{moment:.6f}")),
            ("by-seq", ("--until-seq", f"{partition}={good_seq}")),
        ):
            err = await restore(tmp_path / "backups", tmp_path / name, *cut)
            assert "after the cut not applied" in err
            restored = serve_restored(tmp_path / name)
            try:
                alice2 = on(alice, restored.url)
                clients.append(alice2)
                assert expect(await alice2.whoami(), WhoamiResponse).user_id == alice.user_id
                assert await room_view(alice2, room) == good_room, name
                assert await room_view(alice2, other) == good_other, name
                later = await sync(alice2, timeout=0, since=token_before)
                assert room not in later.rooms.join or not later.rooms.join[room].timeline.events
                # A position from after the cut was never reached by the restored log.
                status, body = await api(
                    "GET", f"{restored.url}{V3}/sync", token=alice.access_token,
                    params={"since": token_after, "timeout": "0"},
                )  # fmt: skip
                assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
                await send(alice2, room, "back to normal")
            finally:
                restored.stop()
    finally:
        await close_all(*clients)
