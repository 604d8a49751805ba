"""Fixtures several end-to-end modules share."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from nio import AsyncClient, JoinResponse, RoomCreateResponse, RoomPreset

from tests.e2e.helpers import close_all, expect, register
from tests.servers import OutlastProcess


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
