"""Run the backup commands as an operator would, and serve a restored data directory."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from nio import (
    AsyncClient,
    JoinResponse,
    MemoryDownloadResponse,
    RoomCreateResponse,
    RoomSendResponse,
    RoomVisibility,
)

from tests.e2e.helpers import V3, all_messages, api, expect, text
from tests.servers import OutlastProcess, free_port

COMMAND_TIMEOUT = 180.0


async def send(client: AsyncClient, room: str, body: str) -> str:
    """A text message whose txnId is its body (so a retry cannot duplicate it)."""
    resp = await client.room_send(room, "m.room.message", text(body), tx_id=f"tx-{body}")
    return str(expect(resp, RoomSendResponse).event_id)


async def fill_rooms(alice: AsyncClient, bob: AsyncClient, rooms: int, messages: int) -> list[str]:
    """Public rooms ``room0``.. created by alice, joined by bob, each with ``messages``
    messages from both in turn; their ids."""
    created = []
    for i in range(rooms):
        room = expect(
            await alice.room_create(
                visibility=RoomVisibility.public, name=f"room {i}", alias=f"room{i}"
            ),
            RoomCreateResponse,
        ).room_id
        expect(await bob.join(room), JoinResponse)
        for n in range(messages):
            await send(alice if n % 2 else bob, room, f"r{i}-m{n}")
        created.append(room)
    return created


async def outlast(*args: str) -> tuple[int, str, str]:
    """``outlast ARGS`` in a child process: (exit status, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "outlast",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), COMMAND_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def backup(server: OutlastProcess, to: Path) -> Path:
    """``outlast backup create`` against a running embedded server; the manifest's path."""
    code, out, err = await outlast(
        "backup", "create", "--to", str(to), "--config", str(server.config_path),
        "--data-dir", str(server.data_dir),
    )  # fmt: skip
    assert code == 0, err
    manifest = Path(out.strip().splitlines()[-1])
    assert manifest.name == "manifest.json" and manifest.is_file(), out
    return manifest


async def restore(source: Path, new_dir: Path, *cut: str) -> str:
    code, out, err = await outlast(
        "backup", "restore", "--from", str(source), "--data-dir", str(new_dir), *cut
    )
    assert code == 0, err
    return err


def serve_restored(data_dir: Path) -> OutlastProcess:
    """``outlast serve --data-dir NEWDIR`` and nothing else: the data directory says the rest."""
    port = free_port()
    log_path = data_dir.parent / f"{data_dir.name}.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "outlast", "serve", "--data-dir", str(data_dir),
             "--listen", f"127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
    proc = OutlastProcess(data_dir, port, process, data_dir / "outlast.toml", log_path)
    try:
        proc.wait_ready()
    except BaseException:
        proc.stop()
        raise
    return proc


async def room_view(client: AsyncClient, room_id: str) -> dict[str, Any]:
    """What a member sees of a room: every event of /messages, its state and members."""
    events = await all_messages(client, room_id, limit=9)
    status, state = await api(
        "GET", f"{client.homeserver}{V3}/rooms/{room_id}/state", token=client.access_token
    )
    assert status == 200, state
    status, members = await api(
        "GET", f"{client.homeserver}{V3}/rooms/{room_id}/joined_members",
        token=client.access_token,
    )  # fmt: skip
    assert status == 200, members
    return {
        "events": [(e["event_id"], e["type"], e.get("content")) for e in events],
        "state": sorted((e["type"], e["state_key"], e["event_id"]) for e in state),
        "members": sorted(members["joined"]),
    }


async def media_hash(client: AsyncClient, uri: str) -> str:
    got = expect(await client.download(uri), MemoryDownloadResponse)
    return hashlib.sha256(got.body).hexdigest()


def on(client: AsyncClient, url: str) -> AsyncClient:
    """The same account and access token, talking to another server."""
    other = AsyncClient(url, client.user_id, device_id=client.device_id, config=client.config)
    other.access_token = client.access_token
    other.user_id = client.user_id
    return other
