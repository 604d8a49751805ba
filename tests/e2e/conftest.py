"""Fixtures several end-to-end modules share."""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Iterator

import pytest
from nio import AsyncClient, JoinResponse, RoomCreateResponse, RoomPreset

from outlast.view.pg.private import PrivateCluster
from tests import servers
from tests.e2e.helpers import close_all, expect, register
from tests.servers import OutlastProcess

VIEW_BACKENDS = ("sqlite", "postgresql")
_databases = itertools.count()


@pytest.fixture(scope="module", params=VIEW_BACKENDS, autouse=True)
def view_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every end-to-end module runs on both view backends: with "postgresql" each
    server a test starts (tests/servers.py) gets a fresh database on the session's
    private PostgreSQL server. Module-scoped server fixtures take this fixture as an
    argument, so they are started again for the other backend."""
    backend = str(request.param)
    if backend == "sqlite":
        yield backend
        return
    cluster: PrivateCluster = request.getfixturevalue("pg_server")

    def section() -> str:
        dsn = cluster.create_database(f"e2e{os.getpid()}_{next(_databases)}")
        return f'\n[view]\nbackend = "postgresql"\ndsn = "{dsn}"\n'

    servers.VIEW_SECTION[0] = section
    try:
        yield backend
    finally:
        servers.VIEW_SECTION[0] = servers._no_view_section


@pytest.fixture
async def alice_bob_room(
    server: OutlastProcess,
) -> AsyncIterator[tuple[AsyncClient, AsyncClient, str]]:
    """Alice (the creator) and Bob, both joined to a public room, as matrix-nio clients."""
    alice, bob = await register(server.url, "alice"), await register(server.url, "bob")
    try:
        resp = await alice.room_create(preset=RoomPreset.public_chat)
        room_id = str(expect(resp, RoomCreateResponse).room_id)
        expect(await bob.join(room_id), JoinResponse)
        yield alice, bob, room_id
    finally:
        await close_all(alice, bob)
