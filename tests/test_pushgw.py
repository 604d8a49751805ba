"""The test push gateway: real HTTP on loopback, records, faults on demand, the CLI."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from outlast.core.push_gateway import Pusher, badge_notification, event_notification
from outlast.drill.pushgw import NOTIFY_PATH, PushGateway, problems

ROOT = Path(__file__).resolve().parents[1]
ALICE = "@alice:example.org"
EVENT = {
    "event_id": "$ev1",
    "room_id": "!r:example.org",
    "type": "m.room.message",
    "sender": "@bob:example.org",
    "content": {"msgtype": "m.text", "body": "hi"},
}


def pusher(url: str, pushkey: str = "key-1", **data: Any) -> Pusher:
    stored = {"kind": "http", "app_id": "app", "pushkey": pushkey, "data": {"url": url, **data}}
    made = Pusher.from_stored(stored, 1700000000)
    assert made is not None
    return made


@pytest.fixture
async def gateway() -> AsyncIterator[PushGateway]:
    async with PushGateway() as gw:
        yield gw


async def post(url: str, body: Any, timeout: float = 10.0) -> tuple[int, Any]:
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with (
        aiohttp.ClientSession(timeout=client_timeout) as session,
        session.post(url, data=json.dumps(body)) as resp,
    ):
        return resp.status, await resp.json(content_type=None)


async def test_records_what_the_core_builds(gateway: PushGateway) -> None:
    body = event_notification(EVENT, pusher(gateway.url), ALICE, {"sound": "default"}, 1)
    assert await post(gateway.url, body) == (200, {"rejected": []})
    badge = badge_notification(pusher(gateway.url, format="event_id_only"), 0)
    assert await post(gateway.url, badge) == (200, {"rejected": []})
    assert gateway.event_ids() == ["$ev1"] and gateway.event_ids("other") == []
    assert gateway.badges("key-1") == [0]
    first = gateway.accepted()[0]
    assert first.status == 200 and first.problems == () and first.body == body
    assert gateway.duplicates() == {}


async def test_duplicates_are_counted_per_event_and_pushkey(gateway: PushGateway) -> None:
    one = event_notification(EVENT, pusher(gateway.url), ALICE, {}, 1)
    other_key = event_notification(EVENT, pusher(gateway.url, "key-2"), ALICE, {}, 1)
    for body in (one, other_key, one):
        assert (await post(gateway.url, body))[0] == 200
    assert gateway.duplicates() == {("$ev1", "key-1"): 2}


async def test_failures_then_recovery(gateway: PushGateway) -> None:
    body = event_notification(EVENT, pusher(gateway.url), ALICE, {}, 1)
    gateway.fail_next(2, status=502)
    assert (await post(gateway.url, body))[0] == 502
    assert (await post(gateway.url, body))[0] == 502
    assert (await post(gateway.url, body))[0] == 200
    gateway.go_down()
    assert (await post(gateway.url, body))[0] == 503
    gateway.come_back()
    assert (await post(gateway.url, body))[0] == 200
    assert [r.status for r in gateway.received] == [502, 502, 200, 503, 200]
    assert len(gateway.accepted()) == 2


async def test_hang_makes_the_client_time_out(gateway: PushGateway) -> None:
    body = event_notification(EVENT, pusher(gateway.url), ALICE, {}, 1)
    gateway.hang_next(1)
    gateway.hang_next(1, delivered=True)
    for _ in range(2):
        with pytest.raises(asyncio.TimeoutError):
            await post(gateway.url, body, timeout=0.3)
    assert (await post(gateway.url, body))[0] == 200
    assert [r.status for r in gateway.received] == [None, None, 200]
    # The second hang reached the phone before the answer was lost: the retry duplicates it.
    assert gateway.duplicates() == {("$ev1", "key-1"): 2}


async def test_rejected_pushkeys(gateway: PushGateway) -> None:
    gateway.reject("key-2")
    body = event_notification(EVENT, pusher(gateway.url), ALICE, {}, 1)
    body["notification"]["devices"].append(pusher(gateway.url, "key-2").device())
    assert await post(gateway.url, body) == (200, {"rejected": ["key-2"]})


async def test_spec_errors(gateway: PushGateway) -> None:
    base = gateway.url.removesuffix(NOTIFY_PATH)
    async with aiohttp.ClientSession() as session:
        async with session.get(gateway.url) as resp:
            assert resp.status == 405 and (await resp.json())["errcode"] == "M_UNRECOGNIZED"
        async with session.post(base + "/_matrix/push/v1/other", data="{}") as resp:
            assert resp.status == 404 and (await resp.json())["errcode"] == "M_UNRECOGNIZED"
        async with session.post(gateway.url, data="not json") as resp:
            assert resp.status == 400 and (await resp.json())["errcode"] == "M_BAD_JSON"
    assert gateway.received[0].status == 400 and gateway.accepted() == []


def test_problems_checks_the_schema() -> None:
    device = {"app_id": "a", "pushkey": "k"}
    assert problems({"notification": {"devices": [device]}}) == []
    assert problems({}) == ["notification must be an object"]
    assert problems({"notification": {"devices": []}}) == ["devices must be a non-empty list"]
    bad = {
        "notification": {
            "event_id": "$e",
            "prio": "urgent",
            "counts": {"unread": "2"},
            "devices": [{"app_id": "a"}, {**device, "data": {"url": "http://x"}}],
        }
    }
    assert problems(bad) == [
        "each device needs string app_id and pushkey",
        "device data must not carry the pusher's url",
        "room_id is required with event_id",
        "prio must be high or low",
        "counts must map names to integers",
    ]


async def test_wait_for_is_bounded(gateway: PushGateway) -> None:
    with pytest.raises(TimeoutError):
        await gateway.wait_for(lambda g: len(g.accepted()) > 0, timeout=0.05)
    body = event_notification(EVENT, pusher(gateway.url), ALICE, {}, 1)
    waiter = asyncio.create_task(gateway.wait_for(lambda g: g.event_ids() == ["$ev1"], 10))
    await post(gateway.url, body)
    await waiter


async def test_cli_records_json_lines(tmp_path: Path) -> None:
    record = tmp_path / "push.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "outlast.drill.pushgw", "--record", str(record)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = (await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)).strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith(NOTIFY_PATH)
        body = event_notification(EVENT, pusher(url), ALICE, {}, 3)
        assert (await post(url, body))[0] == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert lines == [{"body": body, "status": 200, "delivered": True}]
