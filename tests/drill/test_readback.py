"""Reading one's own write back at the survivors right after a fault (outlast.drill.readback)."""

from __future__ import annotations

import asyncio
from typing import Any

from outlast.drill.readback import OwnWrites
from outlast.drill.verdict import Send

SURVIVORS = {"a": "http://a", "b": "http://b"}


def send(body: str, acked_at: float, event_id: str = "$e1") -> Send:
    return Send("u1", "!r:x", "t1", body, True, event_id, acked_at=acked_at)


class Sites:
    """Answers per site: a list of (status, body) given one by one, the last repeated."""

    def __init__(self, answers: dict[str, list[tuple[int, Any]]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def request(
        self, method: str, path: str, body: Any, token: str | None, base: str
    ) -> tuple[int, Any, str]:
        site = base.removeprefix("http://")
        self.asked.append(site)
        queue = self.answers[site]
        status, data = queue.pop(0) if len(queue) > 1 else queue[0]
        return status, data, site


async def test_the_first_write_after_the_fault_is_read_at_every_other_survivor() -> None:
    sites = Sites({"a": [(200, {"event_id": "$e2"})], "b": [(200, {"event_id": "$e2"})]})
    own = OwnWrites(sites.request, SURVIVORS, since=10.0)
    own.on_ack("u1", "tok", send("before", 9.0), "a")  # acknowledged before the fault
    own.on_ack("u1", "tok", send("after", 11.0, "$e2"), "a")
    own.on_ack("u1", "tok", send("later", 12.0, "$e3"), "b")  # only the first one counts
    result = await own.report()
    assert sites.asked == ["b"]  # not at a, which acknowledged it
    assert (result["clients"], result["reads"], result["fresh"], result["stale"]) == (1, 1, 1, 0)


async def test_a_404_is_stale_and_a_503_is_retried() -> None:
    sites = Sites(
        {"a": [(404, {"errcode": "M_NOT_FOUND"})], "b": [(503, {}), (200, {"event_id": "$e1"})]}
    )
    own = OwnWrites(sites.request, {**SURVIVORS, "c": "http://c"}, since=0.0)
    own.on_ack("u1", "tok", send("x", 1.0), "c")
    result = await own.report()
    assert result["stale"] == 1 and result["fresh"] == 1
    assert "at a: 404" in result["examples"]["stale"][0]
    assert sites.asked.count("b") == 2


async def test_a_site_that_never_shows_it_is_current_counts_as_unavailable() -> None:
    sites = Sites({"a": [(503, {})], "b": [(200, {"event_id": "$e1"})]})
    own = OwnWrites(sites.request, SURVIVORS, since=0.0, retry_seconds=0.3)
    own.on_ack("u1", "tok", send("x", 1.0), "b")
    result = await asyncio.wait_for(own.report(), 5)
    assert (result["unavailable"], result["stale"], result["fresh"]) == (1, 0, 0)
