"""A site cut off from the others (a minority partition) refuses writes, then heals by itself.

The cluster's control API cuts every relay between the victim's nats-server
and the other sites' nodes; the victim's own workers and clients still reach
it. Nothing written at the victim may be acknowledged while it is cut off:
every write answers 503 M_UNAVAILABLE with Retry-After (at the latest after
the log's publish timeout), its health endpoint turns 503 so the front door
drains it, and the majority keeps accepting writes. After healing, the victim
becomes healthy with no operator action and shows what the majority wrote, in
the same order.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from nio import (
    AsyncClient,
    JoinedRoomsResponse,
    JoinResponse,
    LoginResponse,
    LogoutResponse,
    RoomCreateResponse,
    RoomPreset,
    RoomSendResponse,
    SyncResponse,
)

from tests.cluster.harness import (
    V3,
    Cluster,
    close_all,
    event_ids,
    front_door_servers,
    heal,
    health,
    http,
    isolate,
    leader_site,
    move_leader,
    nio_client,
    nio_register,
    ok,
    send_retrying,
    session_at,
    stream_leaders,
    timeline,
    wait_for,
)

pytestmark = pytest.mark.slow

# outlast's default log.publish_timeout_seconds: the longest a write may wait for the log.
PUBLISH_TIMEOUT = 5.0
# Scheduling slack on a busy two-core machine, on top of the publish timeout.
SLACK = 2.0


@dataclass
class Attempt:
    """One write tried at the isolated site, as its client saw it."""

    what: str
    body: str
    at: float  # seconds after the cut
    seconds: float  # until the answer
    status: int | None
    errcode: str | None
    retry_after: str | None


@dataclass
class Ledger:
    attempts: list[Attempt] = field(default_factory=list)

    def acknowledged(self) -> list[Attempt]:
        return [a for a in self.attempts if a.status is not None and 200 <= a.status < 300]


@dataclass
class Figures:
    to_unhealthy: float = 0.0
    first_503: float = 0.0
    slowest_503: float = 0.0
    drained: float = 0.0
    majority_worst_ack: float = 0.0
    to_healthy: float = 0.0
    to_caught_up: float = 0.0


async def _try_write(
    ledger: Ledger,
    cut_at: float,
    what: str,
    body: str,
    method: str,
    url: str,
    payload: Any,
    token: str | None,
) -> None:
    started = time.monotonic()
    status, answer, headers = await http(method, url, payload, token=token, timeout=30)
    ledger.attempts.append(
        Attempt(
            what,
            body,
            round(started - cut_at, 3),
            round(time.monotonic() - started, 3),
            status,
            answer.get("errcode") if isinstance(answer, dict) else None,
            headers.get("Retry-After"),
        )
    )


async def _write_at_victim(
    ledger: Ledger, cut_at: float, url: str, room: str, member: str, owner: str, stop: asyncio.Event
) -> None:
    """Keep trying every kind of write at the isolated site, concurrently, until told to stop."""

    async def lane(kind: str) -> None:
        i = 0
        while not stop.is_set():
            body = f"isolated-{kind}-{i}"
            if kind == "register":
                await _try_write(
                    ledger,
                    cut_at,
                    kind,
                    body,
                    "POST",
                    url + V3 + "/register",
                    {
                        "username": f"isolated{i}",
                        "password": "pw",
                        "auth": {"type": "m.login.dummy"},
                    },
                    None,
                )
            elif kind == "createRoom":
                await _try_write(
                    ledger,
                    cut_at,
                    kind,
                    body,
                    "POST",
                    url + V3 + "/createRoom",
                    {"name": body},
                    member,
                )
            elif kind == "topic":
                await _try_write(
                    ledger,
                    cut_at,
                    kind,
                    body,
                    "PUT",
                    url + V3 + f"/rooms/{room}/state/m.room.topic",
                    {"topic": body},
                    owner,
                )
            else:
                await _try_write(
                    ledger,
                    cut_at,
                    "send",
                    body,
                    "PUT",
                    url + V3 + f"/rooms/{room}/send/m.room.message/{body}",
                    {"msgtype": "m.text", "body": body},
                    member,
                )
            i += 1
            await asyncio.sleep(0.1)

    await asyncio.gather(*(lane(k) for k in ("send", "send2", "register", "createRoom", "topic")))


@dataclass
class Acks:
    event_ids: list[str] = field(default_factory=list)
    worst: float = 0.0


async def _write_at_majority(
    client: AsyncClient, room: str, label: str, acks: Acks, stop: asyncio.Event
) -> None:
    k = 0
    while not stop.is_set():
        event_id, seconds, _ = await send_retrying(
            client, room, f"{label}-during-{k}", f"{label}-during-{k}", budget=40
        )
        acks.event_ids.append(event_id)
        acks.worst = max(acks.worst, seconds)
        k += 1
        await asyncio.sleep(0.2)


async def isolate_and_heal(cluster: Cluster, victim: str) -> Figures:
    majority = [n for n in cluster.names if n != victim]
    urls = {n: cluster.site_url(n) for n in cluster.names}
    figures = Figures()
    owner = await nio_register(urls[majority[0]], "owner")
    users = {n: await nio_register(urls[n], f"user{n}") for n in cluster.names}
    door = session_at(owner, cluster.front_door)
    # A second session of the owner, logged out at the majority while the victim is cut off.
    revoked = nio_client(urls[majority[0]], "@owner:localhost")
    clients = [owner, door, revoked, *users.values()]
    try:
        ok(await revoked.login("pw-owner", device_name="to be revoked"), LoginResponse)
        revoked_token = revoked.access_token
        await wait_for(lambda: _token_status(urls[victim], revoked_token, 200), timeout=5)
        created = await owner.room_create(preset=RoomPreset.public_chat)
        room = ok(created, RoomCreateResponse).room_id
        for name, user in users.items():
            ok(await user.join(room), JoinResponse)
            ok(
                await user.room_send(
                    room, "m.room.message", {"msgtype": "m.text", "body": f"{name} before"}
                ),
                RoomSendResponse,
            )

        since_before = ok(await users[victim].sync(timeout=0), SyncResponse).next_batch

        # -- the cut --
        await asyncio.get_running_loop().run_in_executor(None, isolate, cluster, victim)
        cut_at = time.monotonic()
        stop = asyncio.Event()
        ledger = Ledger()
        acks = {n: Acks() for n in majority}
        tasks = [
            asyncio.create_task(
                _write_at_victim(
                    ledger,
                    cut_at,
                    urls[victim],
                    room,
                    users[victim].access_token,
                    owner.access_token,
                    stop,
                )
            )
        ]
        tasks += [
            asyncio.create_task(_write_at_majority(users[n], room, n, acks[n], stop))
            for n in majority
        ]
        try:
            _, figures.to_unhealthy = await wait_for(
                lambda: _status_is(urls[victim], 503), timeout=15, interval=0.05
            )
            # The front door stops sending anything to the victim, and keeps serving.
            _, figures.drained = await wait_for(
                lambda: _drained(cluster, victim), timeout=15, interval=0.1
            )
            figures.drained += figures.to_unhealthy
            await wait_for(lambda: _acked(acks[majority[0]], 2), timeout=40, interval=0.2)
            roaming = asyncio.create_task(
                _roam(
                    users[victim],
                    urls[majority[0]],
                    urls[victim],
                    since_before,
                    list(acks[majority[0]].event_ids),
                )
            )
            door_acked = [
                await send_retrying(door, room, f"door-{k}", f"door-{k}", budget=40)
                for k in range(5)
            ]
            await _logout_retrying(revoked)
            # The cut-off site cannot learn of the logout, nor show that nothing was
            # revoked: it refuses the token (503) rather than accept it.
            victim_leads = await _users_leader_seen_by(cluster, victim) == victim
            status, answer, headers = await http(
                "GET", urls[victim] + V3 + "/account/whoami", token=revoked_token, timeout=15
            )
            assert status != 200, f"{victim} accepted a token revoked at the majority: {answer}"
            assert (status, answer["errcode"]) == (503, "M_UNAVAILABLE"), (status, answer)
            assert int(headers["Retry-After"]) >= 1
            # The majority keeps (or quickly resumes) committing.
            await wait_for(lambda: _enough(acks, ledger), timeout=40, interval=0.2)
            leaders, _ = await wait_for(
                lambda: _leaders_without(cluster, majority[0], victim), timeout=30, interval=0.5
            )
            ahead, refused_there, covered = await asyncio.wait_for(roaming, 60)
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 60)

        # Nothing was acknowledged at the isolated site; every answer was a prompt 503.
        assert ledger.attempts and not ledger.acknowledged(), ledger.acknowledged()
        for attempt in ledger.attempts:
            assert (attempt.status, attempt.errcode) == (503, "M_UNAVAILABLE"), attempt
            assert attempt.retry_after is not None and int(attempt.retry_after) >= 1, attempt
            assert attempt.seconds <= PUBLISH_TIMEOUT + SLACK, attempt
        figures.first_503 = ledger.attempts[0].seconds
        figures.slowest_503 = max(a.seconds for a in ledger.attempts)
        figures.majority_worst_ack = max(a.worst for a in acks.values())
        print(
            f"isolated {victim}: {len(ledger.attempts)} writes at {victim}, all 503 "
            f"(first answered in {figures.first_503:.2f}s, slowest {figures.slowest_503:.2f}s); "
            f"health 503 after {figures.to_unhealthy:.2f}s; front door drained after "
            f"{figures.drained:.2f}s; majority acks {[len(a.event_ids) for a in acks.values()]}, "
            f"slowest {figures.majority_worst_ack:.2f}s; front door acks "
            f"{[round(s, 2) for _, s, _ in door_acked]}; leaders {leaders}; token revoked at "
            f"the majority refused (503) at the cut-off {victim}, whose node "
            f"{'still called itself' if victim_leads else 'was no longer'} the users "
            f"stream's leader just before"
        )

        # -- the heal --
        await asyncio.get_running_loop().run_in_executor(None, heal, cluster, victim)
        healed_at = time.monotonic()
        _, figures.to_healthy = await wait_for(
            lambda: _status_is(urls[victim], 200), timeout=30, interval=0.1
        )
        written = [e for a in acks.values() for e in a.event_ids] + [e for e, _, _ in door_acked]
        reference = session_at(owner, urls[majority[0]])
        at_victim = users[victim]
        clients.append(reference)
        # Healthy means current: the moment it takes traffic again, the healed site
        # shows what the majority wrote and rejects what the majority revoked.
        missing = set(written) - set(event_ids(await timeline(at_victim, room)))
        assert not missing, f"{victim} healthy but {len(missing)} of {len(written)} missing"
        assert await _token_status(urls[victim], revoked_token, 401)

        async def same_history() -> list[str]:
            theirs = event_ids(await timeline(at_victim, room))
            ours = event_ids(await timeline(reference, room))
            return theirs if set(written) <= set(theirs) and theirs == ours else []

        history, _ = await wait_for(same_history, timeout=20, interval=0.2)
        figures.to_caught_up = time.monotonic() - healed_at
        assert len(history) == len(set(history))

        # None of the refused writes committed later, at any site: no message or topic,
        # no room, no account.
        refused = {a.body for a in ledger.attempts}
        for name in cluster.names:
            reader = session_at(owner, urls[name])
            clients.append(reader)
            events = await timeline(reader, room)
            stored = {e["content"].get("body") or e["content"].get("topic") for e in events}
            assert not refused & stored, (name, sorted(refused & stored))
        member = session_at(users[victim], urls[majority[0]])
        clients.append(member)
        assert ok(await member.joined_rooms(), JoinedRoomsResponse).rooms == [room]
        # The name the isolated site refused to register is still free.
        assert {a.what for a in ledger.attempts} == {"send", "register", "createRoom", "topic"}
        status, body, _ = await http(
            "GET", urls[majority[0]] + V3 + "/register/available?username=isolated0"
        )
        assert (status, body) == (200, {"available": True}), body

        # A sync token the user got at the majority, used at the cut-off site, was refused
        # there (503: it cannot show it is current); after the heal, syncing from it there
        # repeats nothing.
        assert refused_there == (503, "M_UNAVAILABLE"), refused_there
        pinned = session_at(users[victim], urls[victim])
        clients.append(pinned)
        again = ok(
            await pinned.sync(timeout=0, since=ahead, sync_filter=BIG_TIMELINE), SyncResponse
        )
        repeated = covered & {
            e.event_id for r in again.rooms.join.values() for e in r.timeline.events
        }
        assert not repeated, f"{len(repeated)} events delivered twice"

        # The healed site accepts writes again, and the front door uses it again.
        _, seconds, attempts = await send_retrying(
            users[victim], room, "after heal", "after-heal", budget=20
        )
        await wait_for(lambda: _in_rotation(cluster, victim), timeout=20, interval=0.2)
        # Its node is back in every stream's group and agrees on the leaders.
        await wait_for(
            lambda: _leaders_agree(cluster, victim, majority[0]), timeout=20, interval=0.5
        )
        print(
            f"healed {victim}: healthy after {figures.to_healthy:.2f}s, same history "
            f"({len(history)} events) after {figures.to_caught_up:.2f}s, first write after "
            f"heal acknowledged in {seconds:.2f}s ({attempts} attempt(s))"
        )
        return figures
    finally:
        await close_all(*clients)


BIG_TIMELINE = {"room": {"timeline": {"limit": 1000}}}


async def _acked(acks: Acks, n: int) -> bool:
    return len(acks.event_ids) >= n


async def _roam(
    user: AsyncClient, majority_url: str, victim_url: str, since: str, covered: list[str]
) -> tuple[str, tuple[int | None, str | None], set[str]]:
    """The user syncs at the majority, then takes that token to the cut-off site.

    Returns (token from the majority, the cut-off site's (status, errcode) for a sync
    from it, event ids the token covers for sure: acknowledged at the majority before it).
    """
    roamer = session_at(user, majority_url)
    try:
        # Like a client, honour a 503: a stream the victim led may still be electing
        # a leader among the majority (4-9 s after the cut), and /sync reads them all.
        deadline = time.monotonic() + 30
        while True:
            resp = await roamer.sync(timeout=0, since=since)
            status = resp.transport_response.status if resp.transport_response else None
            if isinstance(resp, SyncResponse) or status != 503 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        ahead = ok(resp, SyncResponse).next_batch
    finally:
        await close_all(roamer)
    status, body, _ = await http(
        "GET",
        victim_url + V3 + f"/sync?timeout=0&since={ahead}",
        token=user.access_token,
        timeout=90,
    )
    return ahead, (status, body.get("errcode") if isinstance(body, dict) else None), set(covered)


async def _users_leader_seen_by(cluster: Cluster, site: str) -> str:
    """Which site leads the users stream, as ``site``'s own node sees it ("" if none)."""
    try:
        leaders = await asyncio.get_running_loop().run_in_executor(
            None, stream_leaders, cluster, site
        )
    except OSError:
        return ""
    return leaders.get("OUTLAST_USERS", "")


async def _logout_retrying(client: AsyncClient, budget: float = 30.0) -> None:
    """Log out like a client: a 503 (the majority may still be electing) is retried."""
    started = time.monotonic()
    while True:
        resp = await client.logout()
        if isinstance(resp, LogoutResponse):
            return
        status = resp.transport_response.status if resp.transport_response else None
        assert status == 503 and time.monotonic() - started < budget, resp
        await asyncio.sleep(0.2)


async def _token_status(url: str, token: str, expected: int) -> bool:
    status, body, _ = await http("GET", url + V3 + "/account/whoami", token=token, timeout=5)
    if expected == 401 and status == 401:
        assert body["errcode"] == "M_UNKNOWN_TOKEN", body
    return status == expected


async def _status_is(url: str, status: int) -> bool:
    return await health(url, timeout=3) == status


async def _drained(cluster: Cluster, victim: str) -> bool:
    servers = await asyncio.get_running_loop().run_in_executor(None, front_door_servers, cluster)
    return servers.get(victim) == "DOWN"


async def _in_rotation(cluster: Cluster, victim: str) -> bool:
    servers = await asyncio.get_running_loop().run_in_executor(None, front_door_servers, cluster)
    return servers.get(victim) == "UP"


async def _enough(acks: dict[str, Acks], ledger: Ledger) -> bool:
    kinds = {a.what for a in ledger.attempts}
    return all(len(a.event_ids) >= 3 for a in acks.values()) and len(kinds) == 4


async def _leaders_without(cluster: Cluster, via: str, victim: str) -> dict[str, str]:
    """Every stream has a leader among the majority (as the majority sees it)."""
    try:
        leaders = await asyncio.get_running_loop().run_in_executor(
            None, stream_leaders, cluster, via
        )
    except OSError:
        return {}
    ok_ = leaders and all(site and site != victim for site in leaders.values())
    return leaders if ok_ else {}


async def _leaders_agree(cluster: Cluster, victim: str, via: str) -> bool:
    loop = asyncio.get_running_loop()
    try:
        mine = await loop.run_in_executor(None, stream_leaders, cluster, victim)
        theirs = await loop.run_in_executor(None, stream_leaders, cluster, via)
    except OSError:
        return False
    return bool(mine) and mine == theirs and all(mine.values())


async def test_isolated_minority_site_refuses_writes_then_heals(cluster: Cluster) -> None:
    figures = await isolate_and_heal(cluster, "c")
    assert figures.to_unhealthy < 10
    assert figures.to_healthy < 30


async def test_isolated_leader_site_loses_leadership_then_rejoins(cluster: Cluster) -> None:
    victim = leader_site(cluster)
    # The users stream led from the victim too: after the cut its node keeps calling
    # itself leader for a while, yet must not vouch for tokens the majority revoked.
    await move_leader(cluster, "OUTLAST_USERS", victim)
    led = [s for s, site in stream_leaders(cluster, victim).items() if site == victim]
    print(f"site {victim} leads {len(led)} streams: {led}")
    figures = await isolate_and_heal(cluster, victim)
    assert figures.to_unhealthy < 10
    assert figures.to_healthy < 30
