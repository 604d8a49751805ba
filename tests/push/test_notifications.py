"""GET /notifications: what notified, from the same rows as the counts, with read flags."""

from __future__ import annotations

from typing import Any

from nio import AsyncClient

from tests.e2e.helpers import V3, api
from tests.push.test_counts import Pair, pair, plain, send

__all__ = ["pair"]


async def notifications(client: AsyncClient, **params: str) -> dict[str, Any]:
    url = f"{client.homeserver}{V3}/notifications"
    status, body = await api("GET", url, None, client.access_token, params)
    assert status == 200, body
    assert isinstance(body, dict)
    return body


async def test_lists_what_notified_newest_first_with_read_flags(pair: Pair) -> None:
    alice, bob, room = pair
    first = await send(bob, room, plain("hello"))
    mention = await send(bob, room, plain("hey", **{"m.mentions": {"user_ids": [alice.user_id]}}))
    status, _ = await api(
        "POST",
        f"{alice.homeserver}{V3}/rooms/{room}/receipt/m.read/{first}",
        {},
        alice.access_token,
    )
    assert status == 200
    await send(alice, room, plain("my own message never notifies me"))
    await send(bob, room, plain("quiet", msgtype="m.notice"))  # .m.rule.suppress_notices

    body = await notifications(alice)
    listed = [(n["event"]["event_id"], n["read"], n["room_id"]) for n in body["notifications"]]
    assert listed == [(mention, False, room), (first, True, room)]
    newest = body["notifications"][0]
    assert {"set_tweak": "highlight"} in newest["actions"] and "notify" in newest["actions"]
    assert newest["ts"] == newest["event"]["origin_server_ts"]
    assert "next_token" not in body

    only = await notifications(alice, only="highlight")
    assert [n["event"]["event_id"] for n in only["notifications"]] == [mention]
    # Bob sent everything else; his invite notified him (.m.rule.invite_for_me).
    for_bob = [n["event"] for n in (await notifications(bob))["notifications"]]
    assert [(e["type"], e["sender"]) for e in for_bob] == [
        ("m.room.message", alice.user_id),
        ("m.room.member", alice.user_id),
    ]
    assert for_bob[1]["state_key"] == bob.user_id


async def test_pages_with_next_token(pair: Pair) -> None:
    alice, bob, room = pair
    sent = [await send(bob, room, plain(f"message {i}")) for i in range(5)]
    seen: list[str] = []
    token: str | None = None
    for _ in range(10):
        params = {"limit": "2"} if token is None else {"limit": "2", "from": token}
        page = await notifications(alice, **params)
        seen += [n["event"]["event_id"] for n in page["notifications"]]
        token = page.get("next_token")
        if token is None:
            break
    assert seen == list(reversed(sent))


async def test_bad_parameters_are_matrix_errors(pair: Pair) -> None:
    alice, _, _ = pair
    url = f"{alice.homeserver}{V3}/notifications"
    for params in ({"from": "nonsense"}, {"limit": "x"}, {"from": "1.2"}):
        status, body = await api("GET", url, None, alice.access_token, params)
        assert status == 400 and body["errcode"].startswith("M_"), (params, body)
