"""What createRoom writes beyond the basics."""

from __future__ import annotations

from nio import AsyncClient, RoomCreateResponse

from tests.e2e.helpers import V3, api, expect


async def test_the_topic_is_written_plain_and_rich(
    url: str, pair: tuple[AsyncClient, AsyncClient]
) -> None:
    alice, _ = pair
    room_id = expect(await alice.room_create(topic="Earl Grey"), RoomCreateResponse).room_id
    assert await api(
        "GET", f"{url}{V3}/rooms/{room_id}/state/m.room.topic/", token=alice.access_token
    ) == (
        200,
        {
            "topic": "Earl Grey",
            "m.topic": {"m.text": [{"body": "Earl Grey", "mimetype": "text/plain"}]},
        },
    )
