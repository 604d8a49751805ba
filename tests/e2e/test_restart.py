"""Durability across restarts: the process restarts, and the view is rebuilt from the log."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from nio import (
    AsyncClient,
    JoinedRoomsResponse,
    JoinResponse,
    LoginResponse,
    RoomCreateResponse,
    RoomLeaveResponse,
    RoomPutStateResponse,
    RoomSendResponse,
    RoomVisibility,
    WhoamiResponse,
)

from tests.e2e.helpers import (
    all_messages,
    api,
    close_all,
    expect,
    ids,
    new_client,
    register,
    sync,
    text,
)
from tests.servers import OutlastProcess

V3 = "/_matrix/client/v3"


async def setup_conversation(
    server: OutlastProcess,
) -> tuple[AsyncClient, AsyncClient, str, list[str]]:
    alice = await register(server.url, "alice", "wonderland")
    bob = await register(server.url, "bob", "builder")
    room = expect(
        await alice.room_create(visibility=RoomVisibility.public, name="durable", alias="durable"),
        RoomCreateResponse,
    ).room_id
    expect(await bob.join(room), JoinResponse)
    sent = []
    for i in range(12):
        who = alice if i % 2 == 0 else bob
        sent.append(
            expect(
                await who.room_send(room, "m.room.message", text(f"msg {i}"), tx_id=f"t{i}"),
                RoomSendResponse,
            ).event_id
        )
    return alice, bob, room, sent


async def snapshot(client: AsyncClient, room: str) -> dict[str, Any]:
    """What a client sees of a room: its /messages history and an initial /sync."""
    history = await all_messages(client, room, limit=7)
    first = await sync(
        client, timeout=0, since=None, sync_filter={"room": {"timeline": {"limit": 5}}}
    )
    joined = first.rooms.join[room]
    state = sorted(
        (e.source["type"], e.source["state_key"], e.source["event_id"]) for e in joined.state
    )
    status, members = await api(
        "GET", client.homeserver + V3 + f"/rooms/{room}/joined_members", token=client.access_token
    )
    assert status == 200
    return {
        "history": ids(history),
        "timeline": [e.event_id for e in joined.timeline.events],
        "limited": joined.timeline.limited,
        "state": state,
        "members": sorted(members["joined"]),
        "joined_rooms": sorted(expect(await client.joined_rooms(), JoinedRoomsResponse).rooms),
    }


def fresh_client_at(client: AsyncClient, url: str) -> AsyncClient:
    """A new nio client at ``url`` reusing ``client``'s session (no local sync state)."""
    other = new_client(url, client.user_id, client.device_id)
    other.access_token = client.access_token
    other.user_id = client.user_id
    return other


async def test_everything_survives_a_restart(server: OutlastProcess) -> None:
    alice, bob, room, sent = await setup_conversation(server)
    try:
        before = await snapshot(alice, room)
        assert [i for i in before["history"] if i in sent] == sent
        server.restart()

        # Old tokens still work; passwords still log in; the alias still resolves.
        again = [fresh_client_at(alice, server.url), fresh_client_at(bob, server.url)]
        login = new_client(server.url, "alice")
        try:
            expect(await again[0].whoami(), WhoamiResponse)
            expect(await login.login("wonderland"), LoginResponse)
            assert await snapshot(again[0], room) == before
            assert (await snapshot(login, room))["history"] == before["history"]
            assert expect(await again[1].join("#durable:localhost"), JoinResponse).room_id == room

            # A txnId retried after the restart returns the original event, stored once.
            retry = expect(
                await again[0].room_send(room, "m.room.message", text("msg 0"), tx_id="t0"),
                RoomSendResponse,
            )
            assert retry.event_id == sent[0]
            # New writes continue the same order.
            new = expect(
                await again[1].room_send(room, "m.room.message", text("after")), RoomSendResponse
            ).event_id
            history = ids(await all_messages(login, room))
            assert history == before["history"] + [new]
        finally:
            await close_all(*again, login)
    finally:
        await close_all(alice, bob)


def rebuild_view(
    server: OutlastProcess, *options: str, ok: bool = True
) -> subprocess.CompletedProcess[str]:
    """``outlast view ACTION`` (rebuild by default) on the server's data."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "outlast",
            "view",
            *(options or ("rebuild",)),
            "--config",
            str(server.config_path),
            "--data-dir",
            str(server.data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (result.returncode == 0) == ok, result.stdout + result.stderr
    return result


def skip_rebuild_on_postgresql(view_backend: str) -> None:
    """View snapshots in the object store are of SQLite views; a PostgreSQL view is copied
    from another site's database with pg_dump instead (tests/cluster/test_postgres_cluster.py)."""
    if view_backend == "postgresql":
        pytest.skip("no object-store snapshots of a PostgreSQL view: it is copied with pg_dump")


async def test_view_rebuild_answers_the_same(server: OutlastProcess, view_backend: str) -> None:
    alice, bob, room, sent = await setup_conversation(server)
    try:
        # Some membership churn and state so the rebuild has more than messages to replay.
        expect(
            await alice.room_put_state(room, "m.room.topic", {"topic": "rebuilt"}),
            RoomPutStateResponse,
        )
        expect(await bob.room_leave(room), RoomLeaveResponse)
        expect(await bob.join(room), JoinResponse)
        before_alice = await snapshot(alice, room)
        before_bob = await snapshot(bob, room)
        token = (await sync(bob, timeout=0)).next_batch
        server.stop()
        view = server.data_dir / "view.sqlite"
        assert view.exists() == (view_backend == "sqlite")
        rebuild_view(server)
        server.restart()

        a = fresh_client_at(alice, server.url)
        b = fresh_client_at(bob, server.url)
        try:
            assert await snapshot(a, room) == before_alice
            assert await snapshot(b, room) == before_bob
            # A sync token from before the rebuild is still valid and has nothing new.
            quiet = await sync(b, timeout=0, since=token)
            assert room not in quiet.rooms.join
            # And the next message shows up after it.
            new = expect(
                await a.room_send(room, "m.room.message", text("post-rebuild")), RoomSendResponse
            ).event_id
            later = await sync(b, timeout=0, since=token)
            assert [e.event_id for e in later.rooms.join[room].timeline.events] == [new]
        finally:
            await close_all(a, b)
    finally:
        await close_all(alice, bob)


async def test_view_rebuild_from_a_snapshot_replays_only_the_tail(
    server: OutlastProcess, view_backend: str
) -> None:
    skip_rebuild_on_postgresql(view_backend)
    alice, bob, room, _ = await setup_conversation(server)
    try:
        # The running server holds the view: the command says so and changes nothing.
        refused = rebuild_view(server, "snapshot", ok=False)
        assert "in use by a running server" in refused.stderr
        server.stop()
        stored = rebuild_view(server, "snapshot")
        assert "view snapshot stored" in stored.stdout
        server.restart()
        # History the snapshot does not hold.
        late = fresh_client_at(bob, server.url)
        try:
            expect(await late.room_send(room, "m.room.message", text("late")), RoomSendResponse)
        finally:
            await close_all(late)
        server.stop()
        full = rebuild_view(server, "rebuild")
        assert "from the whole log" in full.stdout
        server.restart()
        a = fresh_client_at(alice, server.url)
        try:
            expected = await snapshot(a, room)
        finally:
            await close_all(a)
        server.stop()

        seeded = rebuild_view(server, "rebuild", "--from-snapshot")
        assert "installed" in seeded.stderr, seeded.stderr
        assert "from a snapshot and the log after it" in seeded.stdout
        replayed = [
            int(r.stdout.split(" log messages replayed")[0].split()[-1]) for r in (full, seeded)
        ]
        assert 0 < replayed[1] < replayed[0]
        server.restart()
        a = fresh_client_at(alice, server.url)
        try:
            assert await snapshot(a, room) == expected
        finally:
            await close_all(a)
    finally:
        await close_all(alice, bob)
