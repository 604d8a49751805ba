"""A view seeded from a snapshot answers exactly like one replayed from the whole log,
having replayed only the log after the snapshot; a snapshot that fails its checksum
is never installed."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nio import AsyncClient, JoinResponse, RoomCreateResponse, RoomSendResponse, RoomVisibility

from outlast.config import Config
from outlast.log.client import LogClient
from outlast.log.names import Names
from outlast.log.objects import ObjectBucket, StoredObject
from outlast.site import Site
from outlast.view.snapshot import (
    MANIFEST_KEY,
    Manifest,
    fetch_into,
    file_sha256,
    manifests,
    seed_view,
    upload,
)
from outlast.view.store import SCHEMA_VERSION
from tests.e2e.helpers import V3, api, close_all, expect, register, text
from tests.testrig import delete_everything, new_prefix, site_config


@pytest.fixture
async def origin(shared_nats: str, tmp_path: Path) -> AsyncIterator[Site]:
    """A site whose log the rebuilt views read; its streams are deleted after the test."""
    config = site_config(tmp_path / "origin", shared_nats, new_prefix())
    site = Site(config)
    try:
        await site.start()
        yield site
    finally:
        await site.stop()
        await delete_everything(shared_nats, Names(config.log.prefix, config.log.partitions))


def worker_like(origin: Site, directory: Path) -> Config:
    """Another worker of the origin's deployment, with a view of its own."""
    config = site_config(directory, origin.config.log.nats_urls[0], origin.config.log.prefix)
    assert config.view_path != origin.config.view_path
    return config


async def chat(url: str, rounds: int, names: tuple[str, str]) -> tuple[list[AsyncClient], str]:
    """Two users, a public room with state changes and ``rounds`` messages each."""
    a = await register(url, names[0])
    b = await register(url, names[1])
    room = expect(
        await a.room_create(visibility=RoomVisibility.public, name=f"room-{names[0]}"),
        RoomCreateResponse,
    ).room_id
    expect(await b.join(room), JoinResponse)
    for i in range(rounds):
        for who in (a, b):
            expect(
                await who.room_send(room, "m.room.message", text(f"{who.user_id} {i}")),
                RoomSendResponse,
            )
    status, _ = await api(
        "PUT",
        f"{url}{V3}/rooms/{room}/state/m.room.topic/",
        {"topic": f"after {rounds}"},
        token=a.access_token,
    )
    assert status == 200
    return [a, b], room


async def answers(
    url: str, clients: list[AsyncClient], rooms: dict[str, AsyncClient]
) -> dict[str, Any]:
    """What the API says at ``url``: every room's whole /messages, members and state, and
    who each token belongs to."""
    seen: dict[str, Any] = {}
    for client in clients:
        token = client.access_token
        status, who = await api("GET", f"{url}{V3}/account/whoami", token=token)
        assert status == 200
        status, joined = await api("GET", f"{url}{V3}/joined_rooms", token=token)
        assert status == 200
        seen[f"{client.user_id} whoami"] = who
        seen[f"{client.user_id} rooms"] = sorted(joined["joined_rooms"])
    for room, member in rooms.items():
        token = member.access_token
        status, page = await api(
            "GET",
            f"{url}{V3}/rooms/{room}/messages",
            token=token,
            params={"dir": "b", "limit": "1000"},
        )
        assert status == 200, page
        assert len(page["chunk"]) < 1000  # the whole history in one page
        seen[f"{room} messages"] = [ageless(e) for e in page["chunk"]]
        status, state = await api("GET", f"{url}{V3}/rooms/{room}/state", token=token)
        assert status == 200
        seen[f"{room} state"] = sorted(
            (ageless(e) for e in state), key=lambda e: (e["type"], e["state_key"])
        )
    return seen


def ageless(event: dict[str, Any]) -> dict[str, Any]:
    """An event without ``unsigned.age``, which changes with the moment of asking."""
    unsigned = {k: v for k, v in event.get("unsigned", {}).items() if k != "age"}
    return {**event, "unsigned": unsigned}


def table_rows(conn: sqlite3.Connection, table: str) -> list[tuple[Any, ...]]:
    return sorted(tuple(r) for r in conn.execute(f'SELECT * FROM "{table}"'))


async def start(config: Config, seeded: list[Manifest] | None = None) -> tuple[Site, list[str]]:
    """A worker whose view starts empty; with ``seeded`` it is seeded from a snapshot
    (the manifest it used is appended, if any). Also returns what the seeding said."""

    async def seed(log_client: LogClient, names: Names) -> None:
        manifest = await seed_view(log_client, names, config.view_path, said.append)
        if manifest is not None and seeded is not None:
            seeded.append(manifest)

    said: list[str] = []
    site = Site(config, seed=seed if seeded is not None else None)
    await site.start()
    return site, said


async def log_total(site: Site) -> int:
    assert site.ctx is not None
    return sum([await site.ctx.log.last_seq(s) for s in site.ctx.stream_names])


async def only_snapshot(origin: Site) -> tuple[ObjectBucket, StoredObject]:
    """The site's snapshot bucket and the one snapshot it holds."""
    assert origin.ctx is not None
    bucket = ObjectBucket(origin.ctx.log, origin.ctx.names.snapshot_bucket)
    [(stored, _)] = await manifests(bucket)
    return bucket, stored


async def test_a_view_seeded_from_a_snapshot_answers_like_a_full_replay(
    origin: Site, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{origin.port}"
    first, room1 = await chat(url, 8, ("alice", "bob"))
    manifest = await origin.snapshot()
    assert manifest.schema_version == SCHEMA_VERSION
    _, stored = await only_snapshot(origin)
    assert manifest.compression == "zlib" and stored.size < manifest.size
    assert stored.sha256_hex() == manifest.sha256  # the stored (compressed) bytes' hash
    assert origin.ctx is not None
    assert manifest.positions == dict(
        zip(
            origin.ctx.stream_names,
            origin.ctx.positions.snapshot(origin.ctx.stream_names),
            strict=True,
        )
    )
    # More history after the snapshot: new accounts, a new room, more in the old one.
    second, room2 = await chat(url, 5, ("carol", "dave"))
    expect(await first[1].room_send(room1, "m.room.message", text("tail")), RoomSendResponse)
    clients, rooms = [*first, *second], {room1: first[0], room2: second[0]}
    total = await log_total(origin)
    tail = total - manifest.total
    assert tail > 0 and manifest.total > 0

    seeded: list[Manifest] = []
    from_snapshot, _ = await start(worker_like(origin, tmp_path / "seeded"), seeded)
    full, _ = await start(worker_like(origin, tmp_path / "full"))
    try:
        assert seeded == [manifest]
        assert from_snapshot.projector is not None and full.projector is not None
        assert full.projector.applied_count == total
        assert from_snapshot.projector.applied_count == tail
        assert from_snapshot.ctx is not None and full.ctx is not None
        names = full.ctx.stream_names
        assert from_snapshot.ctx.positions.snapshot(names) == full.ctx.positions.snapshot(names)

        expected = await answers(url, clients, rooms)
        assert len(expected[f"{room1} messages"]) > 16
        assert await answers(f"http://127.0.0.1:{from_snapshot.port}", clients, rooms) == expected
        assert await answers(f"http://127.0.0.1:{full.port}", clients, rooms) == expected
        # Accounts and positions are the same rows, not only the same answers.
        for table in ("users", "devices", "tokens", "positions", "members", "state"):
            assert table_rows(from_snapshot.ctx.conn, table) == table_rows(full.ctx.conn, table)
    finally:
        await from_snapshot.stop()
        await full.stop()
        await close_all(*clients)


async def test_a_snapshot_with_a_bad_checksum_is_never_installed(
    origin: Site, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{origin.port}"
    clients, room = await chat(url, 3, ("erin", "frank"))
    good = await origin.snapshot()
    bucket, stored = await only_snapshot(origin)
    # A newer snapshot whose bytes are not what its manifest says.
    copy = tmp_path / "copy.sqlite"
    with copy.open("wb") as sink:
        await bucket.read_into(stored, sink)
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    newer = Manifest(**{**good.__dict__, "created_ms": good.created_ms + 1})
    await upload(bucket, copy, newer)
    total = await log_total(origin)

    # The newest is refused; the older, intact one is used instead.
    seeded: list[Manifest] = []
    site, said = await start(worker_like(origin, tmp_path / "older"), seeded)
    try:
        assert seeded == [good]
        assert any("checksum" in line for line in said)
        assert site.projector is not None
        assert site.projector.applied_count == total - good.total
    finally:
        await site.stop()

    # With only the corrupted one left, the view replays the whole log.
    await bucket.delete(stored)
    assert [m for _, m in await manifests(bucket)] == [newer]
    seeded = []
    site, said = await start(worker_like(origin, tmp_path / "fallback"), seeded)
    try:
        assert seeded == []
        assert any("checksum" in line for line in said)
        assert any("replaying the whole log" in line for line in said)
        assert site.projector is not None
        assert site.projector.applied_count == total
        assert await answers(
            f"http://127.0.0.1:{site.port}", clients, {room: clients[0]}
        ) == await answers(url, clients, {room: clients[0]})
    finally:
        await site.stop()
        await close_all(*clients)


async def test_only_the_newest_snapshots_are_kept(origin: Site) -> None:
    origin.config.view.snapshot_keep = 2
    made = [await origin.snapshot() for _ in range(3)]
    assert origin.ctx is not None
    bucket = ObjectBucket(origin.ctx.log, origin.ctx.names.snapshot_bucket)
    kept = [m for _, m in await manifests(bucket)]
    assert kept == [made[2], made[1]]


async def test_no_snapshot_means_a_full_replay(origin: Site, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{origin.port}"
    clients, _ = await chat(url, 2, ("gina", "hal"))
    total = await log_total(origin)
    seeded: list[Manifest] = []
    site, said = await start(worker_like(origin, tmp_path / "none"), seeded)
    try:
        assert seeded == []
        assert any("no view snapshot" in line for line in said)
        assert site.projector is not None and site.projector.applied_count == total
    finally:
        await site.stop()
        await close_all(*clients)


async def test_a_snapshot_taken_under_writes_matches_its_positions(
    origin: Site, tmp_path: Path
) -> None:
    """The copy runs in a thread while the projector commits: whatever moment it
    captures, its rows and positions agree, so the tail replay neither repeats nor
    skips anything."""
    url = f"http://127.0.0.1:{origin.port}"
    writing = asyncio.create_task(chat(url, 25, ("ivan", "judy")))
    made: list[Manifest] = []
    while (not writing.done() or len(made) < 2) and len(made) < 20:
        made.append(await origin.snapshot())
    clients, room = await writing
    try:
        assert len(made) >= 2 and made[-1].total > made[0].total  # taken mid-stream
        total = await log_total(origin)
        seeded: list[Manifest] = []
        site, _ = await start(worker_like(origin, tmp_path / "seeded"), seeded)
        try:
            assert seeded == [made[-1]]
            assert site.projector is not None
            assert site.projector.applied_count == total - made[-1].total
            rooms = {room: clients[0]}
            assert await answers(f"http://127.0.0.1:{site.port}", clients, rooms) == (
                await answers(url, clients, rooms)
            )
        finally:
            await site.stop()
    finally:
        await close_all(*clients)


async def test_a_snapshot_ahead_of_the_log_is_never_installed(
    origin: Site, shared_nats: str, tmp_path: Path
) -> None:
    """A log recreated since the snapshot (sequences start again) must not get a view
    holding facts it does not have."""
    url = f"http://127.0.0.1:{origin.port}"
    clients, _ = await chat(url, 2, ("kim", "lee"))
    await close_all(*clients)
    await origin.snapshot()
    config = worker_like(origin, tmp_path / "new-log")
    await origin.stop()
    nc = await nats.connect(shared_nats, connect_timeout=5)
    try:
        for spec in Names(config.log.prefix, config.log.partitions).streams():
            await nc.jetstream(timeout=5).delete_stream(spec.name)
    finally:
        await nc.close()
    seeded: list[Manifest] = []
    site, said = await start(config, seeded)
    try:
        assert seeded == []
        assert any("ahead of the log" in line for line in said), said
        assert site.ctx is not None
        assert set(site.ctx.positions.snapshot(site.ctx.stream_names)) == {0}
    finally:
        await site.stop()


async def test_an_uncompressed_snapshot_from_an_older_version_is_installed(
    origin: Site, tmp_path: Path
) -> None:
    """Older versions stored the view file as it is, their manifest without ``compression``
    and with the file's SHA-256: such a snapshot is still installed, and checked."""
    url = f"http://127.0.0.1:{origin.port}"
    clients, room = await chat(url, 3, ("mia", "ned"))
    made = await origin.snapshot()
    bucket, stored = await only_snapshot(origin)
    plain = tmp_path / "plain.sqlite"
    with plain.open("wb") as sink:
        assert await fetch_into(bucket, stored, made, sink) is None
    assert plain.stat().st_size == made.size
    old = {k: v for k, v in json.loads(made.to_json()).items() if k != "compression"}
    old["sha256"] = file_sha256(plain)
    with plain.open("rb") as source:
        await bucket.put("view-old-format", source, {MANIFEST_KEY: json.dumps(old)}, expected_seq=0)
    await bucket.delete(stored)
    [(_, read_back)] = await manifests(bucket)
    assert read_back.compression == "none" and read_back.sha256 == old["sha256"]
    total = await log_total(origin)

    seeded: list[Manifest] = []
    site, said = await start(worker_like(origin, tmp_path / "old"), seeded)
    try:
        assert seeded == [read_back], said
        assert site.projector is not None
        assert site.projector.applied_count == total - made.total
        rooms = {room: clients[0]}
        assert await answers(f"http://127.0.0.1:{site.port}", clients, rooms) == (
            await answers(url, clients, rooms)
        )
    finally:
        await site.stop()
        await close_all(*clients)


async def test_a_compressed_snapshot_that_does_not_inflate_whole_is_never_installed(
    origin: Site, tmp_path: Path
) -> None:
    """The stored bytes match their checksum, but they are a cut-short zlib stream: the
    seed refuses it and replays the whole log instead."""
    url = f"http://127.0.0.1:{origin.port}"
    clients, _ = await chat(url, 2, ("olga", "pete"))
    made = await origin.snapshot()
    bucket, stored = await only_snapshot(origin)
    packed = tmp_path / "packed"
    with packed.open("wb") as sink:
        await bucket.read_into(stored, sink)
    cut = packed.read_bytes()[: stored.size // 2]
    packed.write_bytes(cut)
    await bucket.delete(stored)
    await upload(
        bucket, packed, Manifest(**{**made.__dict__, "sha256": hashlib.sha256(cut).hexdigest()})
    )
    total = await log_total(origin)

    seeded: list[Manifest] = []
    site, said = await start(worker_like(origin, tmp_path / "cut"), seeded)
    try:
        assert seeded == []
        assert any("ends early" in line for line in said), said
        assert any("replaying the whole log" in line for line in said)
        assert site.projector is not None and site.projector.applied_count == total
    finally:
        await site.stop()
        await close_all(*clients)
