"""Short calls the fine-print tests share."""

from __future__ import annotations

from typing import Any

from nio import AsyncClient, RoomCreateResponse, RoomPreset

from tests.e2e.helpers import V3, api, expect


async def get(url: str, client: AsyncClient, path: str, **params: str) -> Any:
    """GET ``path`` (from /_matrix on) as ``client``; the body, once it answered 200."""
    status, body = await api("GET", f"{url}{path}", token=client.access_token, params=params)
    assert status == 200, body
    return body


async def public_room(url: str, owner: AsyncClient, *joiners: AsyncClient) -> str:
    """A public room ``owner`` made, with ``joiners`` joined; its id."""
    made = await owner.room_create(preset=RoomPreset.public_chat)
    room_id: str = expect(made, RoomCreateResponse).room_id
    for client in joiners:
        await join(url, client, room_id)
    return room_id


async def join(url: str, client: AsyncClient, room_id: str) -> None:
    status, body = await api("POST", f"{url}{V3}/join/{room_id}", {}, client.access_token)
    assert status == 200, body
