"""Backup a running three-site cluster, destroy every site, restore into a new
three-site cluster and compare what clients see at every site: timelines, room
state, members, media bytes, with the old access tokens."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest
from nio import UploadResponse, WhoamiResponse

from tests.backup.helpers import fill_rooms, media_hash, on, outlast, room_view
from tests.cluster.harness import Cluster, start_cluster
from tests.e2e.helpers import close_all, expect, register

pytestmark = pytest.mark.slow


async def test_backup_destroy_everything_restore_a_new_cluster(
    cluster: Cluster, tmp_path: Path
) -> None:
    alice = await register(cluster.site_url("a"), "alice")
    bob = await register(cluster.site_url("b"), "bob")
    clients = [alice, bob]
    try:
        rooms = await fill_rooms(alice, bob, rooms=3, messages=6)
        resp, _ = await alice.upload(
            io.BytesIO(os.urandom(300_000)), content_type="application/octet-stream",
            filesize=300_000,
        )  # fmt: skip
        upload = expect(resp, UploadResponse).content_uri
        before = {room: await room_view(bob, room) for room in rooms}
        digest = await media_hash(bob, upload)

        code, out, err = await outlast(
            "backup", "create", "--to", str(tmp_path / "backups"), "--cluster",
            str(cluster.dir / "cluster.json"),
        )  # fmt: skip
        assert code == 0, err
        assert Path(out.strip().splitlines()[-1]).is_file()
    finally:
        await close_all(*clients)

    # Every site's data is gone.
    cluster.down()
    shutil.rmtree(cluster.dir)

    new_dir = tmp_path / "restored"
    code, _, err = await outlast(
        "backup", "restore", "--from", str(tmp_path / "backups"), "--cluster-dir",
        str(new_dir), "--sites", "3",
    )  # fmt: skip
    assert code == 0, err
    restored = start_cluster(new_dir)
    try:
        for name in restored.names:
            url = restored.site_url(name)
            alice2, bob2 = on(alice, url), on(bob, url)
            clients = [alice2, bob2]
            try:
                assert expect(await alice2.whoami(), WhoamiResponse).user_id == alice.user_id
                for room in rooms:
                    assert await room_view(bob2, room) == before[room], (name, room)
                assert await media_hash(alice2, upload) == digest
            finally:
                await close_all(*clients)
    finally:
        restored.down()
