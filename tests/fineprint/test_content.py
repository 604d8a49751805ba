"""Event content must be canonical JSON: no floats, no unsafe integers (400 M_BAD_JSON)."""

from __future__ import annotations

from typing import Any

import pytest
from nio import AsyncClient, RoomCreateResponse

from tests.e2e.helpers import V3, api, expect


@pytest.mark.parametrize(
    "content",
    [
        {"msgtype": "m.text", "body": "x", "n": 1.5},
        {"msgtype": "m.text", "body": "x", "deep": [{"n": 0.25}]},
        {"msgtype": "m.text", "body": "x", "n": 2**53},
    ],
)
async def test_non_canonical_content_is_refused(
    url: str, pair: tuple[AsyncClient, AsyncClient], content: dict[str, Any]
) -> None:
    alice, _ = pair
    room_id = expect(await alice.room_create(), RoomCreateResponse).room_id
    base = f"{url}{V3}/rooms/{room_id}"
    status, body = await api("PUT", f"{base}/send/m.room.message/t1", content, alice.access_token)
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")
    status, body = await api("PUT", f"{base}/state/org.example.x", content, alice.access_token)
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")
    status, body = await api(
        "POST",
        f"{url}{V3}/createRoom",
        {"initial_state": [{"type": "org.example.x", "content": content}]},
        alice.access_token,
    )
    assert (status, body["errcode"]) == (400, "M_BAD_JSON")
    # Whole numbers within the safe range are fine.
    status, _ = await api(
        "PUT", f"{base}/send/m.room.message/t2", {"body": "x", "n": 2**53 - 1}, alice.access_token
    )
    assert status == 200
