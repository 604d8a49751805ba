"""A client cannot tell the sites apart: it reads its own writes and its logouts stick.

Through the front door (HAProxy, round robin, no affinity), each of many
simulated clients writes and at once reads back what it wrote, for every kind
of read docs/consistency.md promises: ``/event``, ``/context``, ``/state``,
``/messages``, ``/sync``, ``/members``, profile, account data and devices.
A pair counts towards the goal only when the read was answered by another
site than the write (``X-Outlast-Site``); same-site pairs are checked too.
A stale read is any answer that does not show the write. One more kind is a
write whose permission is another write: a join, then at once a send into
the room (a 403 is stale).

Then 200 revocations — logout, logout-all, a deleted device, a password change
that logs the other devices out, a deactivation — each followed at once by
the revoked token used at every site directly and through the front door:
not one may be accepted.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from tests.cluster.harness import V3, Cluster, start_cluster

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One three-site cluster for both tests: neither cuts nor burns a site."""
    c = start_cluster(tmp_path_factory.mktemp("consistency") / "cluster")
    try:
        yield c
    finally:
        c.down()


PAIRS = 1000  # cross-site write-then-read pairs per kind
LANES = 4  # concurrent clients per kind
REVOCATIONS = 200
BUDGET = 600.0  # the whole test's bound, seconds (it takes a fraction on a quiet machine)
RETRY_FOR = 30.0  # a request answered 503 (or not at all) is retried this long, like a client

Answer = tuple[int, Any, str]  # status, JSON body, the site that answered ("" if unknown)


class Client:
    """Raw Client-Server API calls through one shared connection pool."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def once(
        self, method: str, path: str, body: Any = None, token: str | None = None, base: str = ""
    ) -> Answer:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            async with self.session.request(
                method, (base or self.base) + V3 + path, json=body, headers=headers
            ) as resp:
                raw = await resp.read()
                data = json.loads(raw) if raw else None
                return resp.status, data, resp.headers.get("X-Outlast-Site", "")
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError):
            return 0, None, ""

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        tally: Tally | None = None,
    ) -> Answer:
        """Like a client: a 5xx or no answer is retried with the same request (bounded)."""
        deadline = time.monotonic() + RETRY_FOR
        while True:
            status, data, site = await self.once(method, path, body, token)
            if status and status < 500:
                return status, data, site
            if tally is not None:
                tally.retried += 1
            assert time.monotonic() < deadline, (method, path, status, data)
            await asyncio.sleep(0.1)


@dataclass
class Tally:
    goal: int = PAIRS
    pairs: int = 0
    cross_site: int = 0
    retried: int = 0  # 503s (a site that could not show it was current) and lost answers
    stale: list[str] = field(default_factory=list)

    def done(self) -> bool:
        return self.cross_site >= self.goal


def ok(answer: Answer, what: str) -> Any:
    assert answer[0] == 200, (what, answer)
    return answer[1]


@dataclass
class Lane:
    """One simulated client: its account, device and (for room kinds) its own room."""

    user_id: str
    token: str
    device_id: str
    room: str = ""
    helper_token: str = ""
    helper_id: str = ""
    since: str = ""
    joined: bool = True


# A write, then a check of the read that should show it: (write, read) -> (fresh?, what was seen)
Pair = Callable[[Client, Lane, int, Tally], Awaitable[tuple[str, str, bool, str]]]


async def _send(c: Client, lane: Lane, i: int, tally: Tally) -> tuple[str, str]:
    txn = f"rw-{i}"
    answer = await c.call(
        "PUT",
        f"/rooms/{quote(lane.room)}/send/m.room.message/{txn}",
        {"msgtype": "m.text", "body": f"pair {i}"},
        lane.token,
        tally,
    )
    return str(ok(answer, "send")["event_id"]), answer[2]


async def pair_event(c: Client, lane: Lane, i: int, tally: Tally) -> tuple[str, str, bool, str]:
    event_id, wrote_at = await _send(c, lane, i, tally)
    status, data, read_at = await c.call(
        "GET", f"/rooms/{quote(lane.room)}/event/{quote(event_id)}", None, lane.token, tally
    )
    fresh = status == 200 and data.get("event_id") == event_id
    return wrote_at, read_at, fresh, f"{status} {str(data)[:120]}"


async def pair_context(c: Client, lane: Lane, i: int, tally: Tally) -> tuple[str, str, bool, str]:
    event_id, wrote_at = await _send(c, lane, i, tally)
    status, data, read_at = await c.call(
        "GET",
        f"/rooms/{quote(lane.room)}/context/{quote(event_id)}?limit=2",
        None,
        lane.token,
        tally,
    )
    fresh = status == 200 and data["event"]["event_id"] == event_id
    return wrote_at, read_at, fresh, f"{status} {str(data)[:120]}"


async def pair_messages(c: Client, lane: Lane, i: int, tally: Tally) -> tuple[str, str, bool, str]:
    event_id, wrote_at = await _send(c, lane, i, tally)
    status, data, read_at = await c.call(
        "GET", f"/rooms/{quote(lane.room)}/messages?dir=b&limit=5", None, lane.token, tally
    )
    ids = [e["event_id"] for e in data.get("chunk", [])] if status == 200 else []
    return wrote_at, read_at, event_id in ids, f"{status} newest {ids[:2]}"


async def pair_sync(c: Client, lane: Lane, i: int, tally: Tally) -> tuple[str, str, bool, str]:
    event_id, wrote_at = await _send(c, lane, i, tally)
    sync_filter = quote(json.dumps({"room": {"rooms": [lane.room], "timeline": {"limit": 20}}}))
    status, data, read_at = await c.call(
        "GET",
        f"/sync?timeout=0&since={quote(lane.since)}&filter={sync_filter}",
        None,
        lane.token,
        tally,
    )
    room = data.get("rooms", {}).get("join", {}).get(lane.room, {}) if status == 200 else {}
    ids = [e["event_id"] for e in room.get("timeline", {}).get("events", [])]
    if status == 200:
        lane.since = data["next_batch"]
    return wrote_at, read_at, event_id in ids, f"{status} timeline {ids}"


async def pair_state(c: Client, lane: Lane, i: int, tally: Tally) -> tuple[str, str, bool, str]:
    answer = await c.call(
        "PUT",
        f"/rooms/{quote(lane.room)}/state/org.outlast.test.rw/{quote(lane.user_id)}",
        {"n": i},
        lane.token,
        tally,
    )
    ok(answer, "put state")
    status, data, read_at = await c.call(
        "GET", f"/rooms/{quote(lane.room)}/state", None, lane.token, tally
    )
    mine = [
        e["content"].get("n")
        for e in (data if status == 200 else [])
        if e["type"] == "org.outlast.test.rw" and e["state_key"] == lane.user_id
    ]
    return answer[2], read_at, mine == [i], f"{status} saw n={mine}"


async def pair_members(c: Client, lane: Lane, i: int, tally: Tally) -> tuple[str, str, bool, str]:
    action = "leave" if lane.joined else "join"
    answer = await c.call(
        "POST", f"/rooms/{quote(lane.room)}/{action}", {}, lane.helper_token, tally
    )
    ok(answer, action)
    lane.joined = not lane.joined
    status, data, read_at = await c.call(
        "GET", f"/rooms/{quote(lane.room)}/members", None, lane.token, tally
    )
    seen = [
        e["content"]["membership"]
        for e in (data.get("chunk", []) if status == 200 else [])
        if e["state_key"] == lane.helper_id
    ]
    return answer[2], read_at, seen == [action], f"{status} saw {seen}"


async def pair_send_after_join(
    c: Client, lane: Lane, i: int, tally: Tally
) -> tuple[str, str, bool, str]:
    """A write whose permission is another write: join, then send at once (the send's
    membership check must not run against a view that has not seen the join)."""
    if lane.joined:
        ok(await c.call("POST", f"/rooms/{quote(lane.room)}/leave", {}, lane.helper_token), "leave")
    answer = await c.call("POST", f"/rooms/{quote(lane.room)}/join", {}, lane.helper_token, tally)
    ok(answer, "join")
    lane.joined = True
    path = f"/rooms/{quote(lane.room)}/send/m.room.message/after-join-{i}"
    body = {"msgtype": "m.text", "body": f"just joined {i}"}
    status, data, sent_at = await c.call("PUT", path, body, lane.helper_token, tally)
    return answer[2], sent_at, status == 200, f"{status} {str(data)[:120]}"


async def _put_then_get(
    c: Client, lane: Lane, tally: Tally, path: str, body: dict[str, Any]
) -> tuple[str, str, bool, str]:
    """PUT a small JSON document of the client's own, then GET it back."""
    answer = await c.call("PUT", path, body, lane.token, tally)
    ok(answer, f"PUT {path}")
    status, data, read_at = await c.call("GET", path, None, lane.token, tally)
    ((key, value),) = body.items()
    seen = data.get(key) if status == 200 else None
    return answer[2], read_at, seen == value, f"{status} saw {seen!r}"


async def pair_profile(c: Client, lane: Lane, i: int, tally: Tally) -> tuple[str, str, bool, str]:
    path = f"/profile/{quote(lane.user_id)}/displayname"
    return await _put_then_get(c, lane, tally, path, {"displayname": f"name {i}"})


async def pair_account_data(
    c: Client, lane: Lane, i: int, tally: Tally
) -> tuple[str, str, bool, str]:
    path = f"/user/{quote(lane.user_id)}/account_data/org.outlast.test.rw"
    return await _put_then_get(c, lane, tally, path, {"n": i})


async def pair_devices(c: Client, lane: Lane, i: int, tally: Tally) -> tuple[str, str, bool, str]:
    path = f"/devices/{quote(lane.device_id)}"
    return await _put_then_get(c, lane, tally, path, {"display_name": f"device {i}"})


KINDS: dict[str, Pair] = {
    "event": pair_event,
    "context": pair_context,
    "state": pair_state,
    "messages": pair_messages,
    "sync": pair_sync,
    "members": pair_members,
    "profile": pair_profile,
    "account_data": pair_account_data,
    "devices": pair_devices,
    "send_after_join": pair_send_after_join,
}
ROOM_KINDS = {"event", "context", "state", "messages", "sync", "members", "send_after_join"}
# Beyond the reads the rule lists: fewer pairs, to keep the test's time down.
GOALS = {"send_after_join": 300}


async def register(c: Client, name: str, password: str = "pw") -> tuple[str, str, str]:
    body = {"username": name, "password": password, "auth": {"type": "m.login.dummy"}}
    data = ok(await c.call("POST", "/register", body), f"register {name}")
    return str(data["user_id"]), str(data["access_token"]), str(data["device_id"])


async def make_lane(c: Client, kind: str, n: int) -> Lane:
    user_id, token, device_id = await register(c, f"rw{kind.replace('_', '')}{n}")
    lane = Lane(user_id, token, device_id)
    if kind not in ROOM_KINDS:
        return lane
    lane.room = ok(await c.call("POST", "/createRoom", {"preset": "public_chat"}, token), "room")[
        "room_id"
    ]
    if kind in ("members", "send_after_join"):
        lane.helper_id, lane.helper_token, _ = await register(c, f"rwhelper{kind[:4]}{n}")
        ok(await c.call("POST", f"/rooms/{quote(lane.room)}/join", {}, lane.helper_token), "join")
    if kind == "sync":
        lane.since = ok(await c.call("GET", "/sync?timeout=0", None, token), "sync")["next_batch"]
    return lane


async def run_lane(c: Client, kind: str, lane: Lane, tally: Tally, deadline: float) -> None:
    i = 0
    while not tally.done() and time.monotonic() < deadline:
        wrote_at, read_at, fresh, seen = await KINDS[kind](c, lane, i, tally)
        tally.pairs += 1
        if wrote_at and read_at and wrote_at != read_at:
            tally.cross_site += 1
        if not fresh:
            tally.stale.append(f"{kind} #{i} written at {wrote_at!r}, read at {read_at!r}: {seen}")
        i += 1


async def test_a_client_reads_its_own_writes_at_another_site(cluster: Cluster) -> None:
    deadline = time.monotonic() + BUDGET
    timeout = aiohttp.ClientTimeout(total=40)
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        door = Client(session, cluster.front_door)
        lanes = {kind: [await make_lane(door, kind, n) for n in range(LANES)] for kind in KINDS}
        tallies = {kind: Tally(GOALS.get(kind, PAIRS)) for kind in KINDS}
        started = time.monotonic()
        await asyncio.gather(
            *(
                run_lane(door, kind, lane, tallies[kind], deadline)
                for kind, kind_lanes in lanes.items()
                for lane in kind_lanes
            )
        )
        took = time.monotonic() - started
    for kind, tally in tallies.items():
        print(
            f"read-your-writes {kind}: {tally.pairs} pairs, {tally.cross_site} across sites, "
            f"{len(tally.stale)} stale, {tally.retried} retried (503 or no answer)"
        )
    print(f"{sum(t.pairs for t in tallies.values())} pairs in {took:.1f}s")
    stale = [s for t in tallies.values() for s in t.stale]
    assert not stale, f"{len(stale)} stale reads, e.g. {stale[:5]}"
    short = {k: t.cross_site for k, t in tallies.items() if not t.done()}
    assert not short, f"too few cross-site pairs within {BUDGET}s: {short}"


@dataclass
class Revocations:
    done: dict[str, int] = field(default_factory=dict)
    accepted: list[str] = field(default_factory=list)
    refused: int = 0  # 503: a site that could not check the token said so
    rejected: int = 0  # 401 M_UNKNOWN_TOKEN


async def _login(c: Client, user_id: str, password: str) -> tuple[str, str]:
    body = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user_id},
        "password": password,
    }
    data = ok(await c.call("POST", "/login", body), "login")
    return str(data["access_token"]), str(data["device_id"])


async def _use_everywhere(
    c: Client, urls: list[str], token: str, what: str, tally: Revocations
) -> None:
    """The revoked token, used at once at every site and through the front door."""
    answers = await asyncio.gather(
        *(c.once("GET", "/account/whoami", None, token, base=url) for url in urls)
    )
    for url, (status, data, _) in zip(urls, answers, strict=True):
        if status == 200:
            tally.accepted.append(f"{what} token accepted at {url}: {data}")
        elif status == 503:
            tally.refused += 1
        else:
            assert (status, (data or {}).get("errcode")) == (401, "M_UNKNOWN_TOKEN"), (
                what,
                url,
                status,
                data,
            )
            tally.rejected += 1


async def _revoke_once(
    c: Client, urls: list[str], kind: str, n: int, lane: dict[str, str], tally: Revocations
) -> None:
    user_id, password = lane["user_id"], lane["password"]
    auth = {"type": "m.login.password", "user": user_id, "password": password}
    if kind == "deactivate":
        user_id, first, _ = await register(c, f"gone{n}", "pw-gone")
        auth = {"type": "m.login.password", "user": user_id, "password": "pw-gone"}
        victim, _ = await _login(c, user_id, "pw-gone")
        ok(await c.call("POST", "/account/deactivate", {"auth": auth}, first), kind)
    else:
        first, _ = await _login(c, user_id, password)
        victim, victim_device = (
            (first, "") if kind == "logout" else await _login(c, user_id, password)
        )
        if kind == "logout":
            ok(await c.call("POST", "/logout", {}, first), kind)
        elif kind == "logout_all":
            ok(await c.call("POST", "/logout/all", {}, first), kind)
        elif kind == "delete_device":
            path = f"/devices/{quote(victim_device)}"
            ok(await c.call("DELETE", path, {"auth": auth}, first), kind)
        else:  # password change, logging the other devices out
            lane["password"] = f"{password}+"
            body = {"new_password": lane["password"], "logout_devices": True, "auth": auth}
            ok(await c.call("POST", "/account/password", body, first), kind)
    await _use_everywhere(c, urls, victim, kind, tally)
    tally.done[kind] = tally.done.get(kind, 0) + 1


async def test_a_revoked_token_is_accepted_nowhere_after_the_revocation(cluster: Cluster) -> None:
    plan = ["logout"] * 140 + ["logout_all"] * 20 + ["delete_device"] * 20
    plan += ["password"] * 10 + ["deactivate"] * 10
    assert len(plan) == REVOCATIONS
    urls = [cluster.front_door, *(cluster.site_url(n) for n in cluster.names)]
    tally = Revocations()
    timeout = aiohttp.ClientTimeout(total=40)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        door = Client(session, cluster.front_door)
        lanes = []
        for n in range(8):
            user_id, _, _ = await register(door, f"revoker{n}", "pw-start")
            lanes.append({"user_id": user_id, "password": "pw-start"})
        started = time.monotonic()

        async def worker(w: int) -> None:
            for n in range(w, len(plan), len(lanes)):
                await _revoke_once(door, urls, plan[n], n, lanes[w], tally)

        await asyncio.wait_for(asyncio.gather(*(worker(w) for w in range(len(lanes)))), BUDGET)
        took = time.monotonic() - started
    print(
        f"revocations {tally.done} in {took:.1f}s; the revoked token used at "
        f"{len(urls)} places each time: {len(tally.accepted)} accepted, {tally.rejected} "
        f"rejected (401), {tally.refused} refused (503)"
    )
    assert sum(tally.done.values()) == REVOCATIONS
    assert not tally.accepted, tally.accepted[:5]
