"""Filters name rooms and users by valid IDs (400 M_BAD_JSON otherwise)."""

from __future__ import annotations

from typing import Any

import pytest
from nio import AsyncClient

from tests.e2e.helpers import V3, api


@pytest.mark.parametrize(
    "body",
    [
        {"room": {"rooms": ["not-a-room"]}},
        {"room": {"not_rooms": ["#alias:localhost"]}},
        {"room": {"timeline": {"rooms": ["!"]}}},
        {"room": {"timeline": {"senders": ["alice"]}}},
        {"presence": {"not_senders": ["@"]}},
    ],
)
async def test_malformed_ids_in_a_filter_are_refused(
    url: str, pair: tuple[AsyncClient, AsyncClient], body: dict[str, Any]
) -> None:
    alice, _ = pair
    path = f"{url}{V3}/user/@alice:localhost/filter"
    status, answer = await api("POST", path, body, alice.access_token)
    assert (status, answer["errcode"]) == (400, "M_BAD_JSON")


async def test_well_formed_ids_are_accepted(
    url: str, pair: tuple[AsyncClient, AsyncClient]
) -> None:
    alice, _ = pair
    body = {
        "room": {"rooms": ["!r:localhost"], "timeline": {"senders": ["@bob:localhost"]}},
        "presence": {"not_senders": ["@carol:localhost"]},
    }
    status, answer = await api(
        "POST", f"{url}{V3}/user/@alice:localhost/filter", body, alice.access_token
    )
    assert status == 200, answer
