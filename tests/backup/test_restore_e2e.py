"""Backup a serving site with matrix-nio clients writing, restore it into a new data
directory, serve that, and compare what clients see: timelines, state, members,
media bytes. The old access tokens and sync tokens keep working."""

from __future__ import annotations

import asyncio
import io
import json
import os
from pathlib import Path

from nio import (
    RoomCreateResponse,
    UploadResponse,
    WhoamiResponse,
)

from tests.backup.helpers import (
    backup,
    fill_rooms,
    media_hash,
    on,
    outlast,
    restore,
    room_view,
    send,
    serve_restored,
)
from tests.e2e.helpers import V3, api, close_all, expect, register, sync
from tests.servers import OutlastProcess


async def test_restore_serves_identical_rooms_media_and_tokens(
    server: OutlastProcess, tmp_path: Path
) -> None:
    alice = await register(server.url, "alice")
    bob = await register(server.url, "bob")
    clients = [alice, bob]
    try:
        rooms = await fill_rooms(alice, bob, rooms=3, messages=8)
        uploads = []
        for size in (1, 200_000, 300_001):
            resp, _ = await alice.upload(
                io.BytesIO(os.urandom(size)), content_type="application/octet-stream",
                filename=f"f{size}.bin", filesize=size,
            )  # fmt: skip
            uploads.append(expect(resp, UploadResponse).content_uri)
        token_before = (await sync(alice, timeout=0)).next_batch

        # The busy room keeps receiving messages while the backup runs (online backup).
        busy = rooms[0]
        sent_before_backup = [e[0] for e in (await room_view(alice, busy))["events"]]
        stop = asyncio.Event()

        async def keep_writing() -> int:
            n = 0
            while not stop.is_set() and n < 2000:
                await send(bob, busy, f"during-{n}")
                n += 1
            return n

        writer = asyncio.create_task(keep_writing())
        manifest_path = await backup(server, tmp_path / "backups")
        stop.set()
        assert await asyncio.wait_for(writer, 60) > 0

        manifest = json.loads(manifest_path.read_text())
        assert manifest["deployment"]["partitions"] == 2
        assert {s["name"] for s in manifest["streams"]} >= {
            "OUTLAST_USERS", "OUTLAST_DIRECTORY", "OUTLAST_ROOMS_0", "OUTLAST_ROOMS_1",
            "OBJ_OUTLAST_MEDIA",
        }  # fmt: skip
        for stream in manifest["streams"]:
            if stream["role"] == "log":  # nothing is ever deleted from the log streams
                assert stream["messages"] == stream["last_seq"] - stream["first_seq"] + 1 or (
                    stream["messages"] == 0 and stream["last_seq"] == 0
                )
        code, out, _ = await outlast("backup", "verify", str(tmp_path / "backups"))
        assert code == 0 and "OK" in out
        code, out, _ = await outlast("backup", "list", str(tmp_path / "backups"))
        assert (
            code == 0 and str(manifest_path.parent) in out and "OUTLAST_USERS\tsequences 1.." in out
        )

        # What the source shows now (the busy room has moved on past the backup point).
        before = {room: await room_view(alice, room) for room in rooms}
        hashes = {uri: await media_hash(alice, uri) for uri in uploads}

        await restore(tmp_path / "backups", tmp_path / "restored")
        restored = serve_restored(tmp_path / "restored")
        try:
            alice2, bob2 = on(alice, restored.url), on(bob, restored.url)
            clients += [alice2, bob2]
            # The old access tokens work: the accounts and token hashes are facts on the log.
            assert expect(await alice2.whoami(), WhoamiResponse).user_id == alice.user_id
            assert expect(await bob2.whoami(), WhoamiResponse).user_id == bob.user_id
            # A sync token from before the backup is still a valid position.
            later = await sync(alice2, timeout=0, since=token_before)
            assert later.next_batch
            for room in rooms[1:]:
                assert await room_view(alice2, room) == before[room]
                assert await room_view(bob2, room) == before[room]
            # The busy room: everything up to the backup point, in order, nothing after.
            got = await room_view(alice2, busy)
            source_events = before[busy]["events"]
            assert got["events"] == source_events[: len(got["events"])]
            assert [e[0] for e in got["events"]][: len(sent_before_backup)] == sent_before_backup
            assert got["members"] == before[busy]["members"]
            for uri, digest in hashes.items():
                assert await media_hash(alice2, uri) == digest
            # The restored deployment takes new writes at the next sequences.
            event = await send(alice2, rooms[1], "after restore")
            status, body = await api(
                "GET", f"{restored.url}{V3}/rooms/{rooms[1]}/event/{event}",
                token=bob2.access_token,
            )  # fmt: skip
            assert status == 200 and body["content"]["body"] == "after restore"
        finally:
            restored.stop()
    finally:
        await close_all(*clients)


async def test_verify_finds_a_damaged_backup(server: OutlastProcess, tmp_path: Path) -> None:
    alice = await register(server.url, "alice")
    try:
        room = expect(await alice.room_create(name="x"), RoomCreateResponse).room_id
        await send(alice, room, "hello")
        manifest_path = await backup(server, tmp_path / "backups")
    finally:
        await alice.close()
    manifest = json.loads(manifest_path.read_text())
    damaged = next(s for s in manifest["streams"] if s["messages"] > 0)
    path = manifest_path.parent / damaged["file"]
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    code, out, _ = await outlast("backup", "verify", str(manifest_path.parent))
    assert code == 1 and "checksum mismatch" in out
    code, _, err = await outlast(
        "backup", "restore", "--from", str(manifest_path.parent), "--data-dir",
        str(tmp_path / "never"),
    )  # fmt: skip
    assert code == 1 and "does not verify" in err
    assert not (tmp_path / "never").exists()
