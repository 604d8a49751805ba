"""Rate limits against hostile clients, on the defaults (limits on).

The module's server trusts 127.0.0.1 as a proxy, so a test can speak from
several client addresses with X-Forwarded-For, as clients behind the front
door do; a second server trusts nobody and shows a made-up X-Forwarded-For
buys nothing.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.e2e.hostile import Reply, assert_limited, login, register, request
from tests.servers import OutlastProcess, start_outlast

TRUST_LOOPBACK = 'trusted_proxies = ["127.0.0.1"]'


@pytest.fixture(scope="module")
def proc(tmp_path_factory: pytest.TempPathFactory, view_backend: str) -> Iterator[OutlastProcess]:
    directory = tmp_path_factory.mktemp("hostile-limits") / "site"
    server = start_outlast(directory, limits="", server_extra=TRUST_LOOPBACK)
    try:
        yield server
    finally:
        server.stop()


def at(address: str) -> dict[str, str]:
    """Headers as the front door sends them for a client at ``address``."""
    return {"X-Forwarded-For": address}


def allowance(burst: int, per_second: float, started: float) -> int:
    """The most a token bucket can have let through since ``started``."""
    return int(burst + per_second * (time.monotonic() - started)) + 1


def new_user(proc: OutlastProcess, name: str) -> str:
    """Register from an address of its own (so tests do not share a registration budget)."""
    reply = register(proc, name, f"pw-{name}", headers=at(f"192.0.2.{secrets.randbelow(250) + 1}"))
    assert reply.status == 200, reply
    return str(reply.body["access_token"])


def test_registrations_from_one_address_are_limited(proc: OutlastProcess) -> None:
    """Was: 30 of 30 registrations from one address succeeded, each an argon2 hash."""
    started = time.monotonic()
    replies = [register(proc, f"flood{i}", headers=at("198.51.100.1")) for i in range(15)]
    allowed = allowance(5, 0.1, started)  # register_burst, register_per_second
    statuses = [r.status for r in replies]
    assert 429 in statuses and statuses.count(200) <= allowed, (statuses, allowed)
    assert statuses[:3] == [200, 200, 200], statuses
    for reply in replies:
        if reply.status != 200:
            assert_limited(reply)
    # A made-up Bearer token per request does not buy a fresh budget ...
    reply = request(
        proc,
        "POST",
        "/register",
        {"username": "flood99", "password": "pw", "auth": {"type": "m.login.dummy"}},
        token=secrets.token_urlsafe(32),
        headers=at("198.51.100.1"),
    )
    assert_limited(reply)
    # ... while another address is not affected.
    assert register(proc, "elsewhere", headers=at("198.51.100.2")).status == 200


def test_unknown_tokens_count_against_the_address(proc: OutlastProcess) -> None:
    """Was: the limiter keyed on the Authorization header, so a random token per
    request escaped it. Now each unknown token counts against its address."""

    def probe(i: int) -> int:
        return request(
            proc, "GET", "/account/whoami", token=f"bogus{i}", headers=at("198.51.100.3")
        ).status

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(probe, range(250)))
    allowed = allowance(100, 10.0, started)  # rate_limit_burst, rate_limit_per_second
    assert set(statuses) == {401, 429}, set(statuses)
    assert statuses.count(401) <= allowed, (statuses.count(401), allowed)
    # The bucket refills 10 tokens/s: on a busy machine one more request may find a
    # token again (CI saw a 401 here), so a short burst of new tokens must run dry.
    burst = [
        request(proc, "GET", "/account/whoami", token=f"bogus-last{i}", headers=at("198.51.100.3"))
        for i in range(30)
    ]
    assert_limited(next((r for r in burst if r.status == 429), burst[-1]))


def test_authenticated_requests_count_against_the_account(proc: OutlastProcess) -> None:
    token = new_user(proc, "busy")
    other = new_user(proc, "calm")
    second = login(proc, "busy", "pw-busy", headers=at("192.0.2.200"))
    assert second.status == 200, second

    def probe(i: int) -> int:
        return request(
            proc, "GET", "/account/whoami", token=token, headers=at(f"203.0.113.{i % 200}")
        ).status

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(probe, range(250)))
    allowed = allowance(100, 10.0, started)
    assert 429 in statuses and statuses.count(200) <= allowed, (statuses.count(200), allowed)
    # The account's other device shares the bucket; another account does not,
    # even from the same address.
    # The bucket refills 10 tokens/s, so on a slow machine a single request may find a
    # token again: a short burst from the second device must still run dry well before
    # its own (unshared) 100 would.
    burst = [
        request(proc, "GET", "/account/whoami", token=second.body["access_token"])
        for _ in range(30)
    ]
    assert_limited(next((r for r in burst if r.status == 429), burst[-1]))
    assert request(proc, "GET", "/account/whoami", token=other).status == 200


def test_password_guessing_backs_off_without_locking_the_owner_out(proc: OutlastProcess) -> None:
    """Was: 30 wrong passwords at 3.3/s with no backoff (each an argon2 hash)."""
    new_user(proc, "victim")
    attacker = at("203.0.113.66")
    replies: list[Reply] = []
    for _ in range(10):
        replies.append(login(proc, "victim", "guess", headers=attacker))
        if replies[-1].status == 429:
            break
    statuses = [r.status for r in replies]
    assert statuses[:3] == [403, 403, 403], statuses  # login_failures_before_backoff = 3
    assert_limited(replies[-1])
    # Each further failure doubles the wait: 1 s, 2 s, 4 s ...
    waits = [replies[-1].body["retry_after_ms"]]
    for _ in range(2):
        time.sleep(waits[-1] / 1000 + 0.1)
        assert login(proc, "victim", "guess", headers=attacker).status == 403
        refused = login(proc, "victim", "guess", headers=attacker)
        assert_limited(refused)
        waits.append(refused.body["retry_after_ms"])
    assert waits[0] <= 1000 < waits[1] <= 2000 < waits[2] <= 4000, waits
    # While it lasts even the right password is refused from there (nothing is checked) ...
    assert_limited(login(proc, "victim", "pw-victim", headers=attacker))
    # ... but the owner, from anywhere else, logs in at once: no lockout to abuse.
    assert login(proc, "victim", "pw-victim", headers=at("198.51.100.77")).status == 200
    # And it ends: afterwards the right password works from the same address too.
    time.sleep(waits[-1] / 1000 + 0.1)
    assert login(proc, "victim", "pw-victim", headers=attacker).status == 200
    assert login(proc, "victim", "guess", headers=attacker).status == 403  # count was reset


def test_password_stage_of_account_changes_backs_off_too(proc: OutlastProcess) -> None:
    token = new_user(proc, "stolen")
    body = {"auth": {"type": "m.login.password", "password": "guess"}, "new_password": "x"}
    statuses: list[int] = []
    while len(statuses) < 10 and 429 not in statuses:
        statuses.append(request(proc, "POST", "/account/password", body, token=token).status)
    assert statuses[:3] == [401, 401, 401] and statuses[-1] == 429, statuses


def test_sends_are_limited_per_account(proc: OutlastProcess) -> None:
    """Was: 200 sends at 276/s from one account."""
    token = new_user(proc, "chatty")
    other = new_user(proc, "quiet")
    room = request(proc, "POST", "/createRoom", {}, token=token).body["room_id"]
    path = f"/rooms/{quote(room)}/send/m.room.message/"
    started = time.monotonic()
    replies: list[Reply] = []
    while len(replies) < 200 and (not replies or replies[-1].status == 200):
        body = {"msgtype": "m.text", "body": str(len(replies))}
        replies.append(request(proc, "PUT", path + f"t{len(replies)}", body, token=token))
    statuses = [r.status for r in replies]
    assert statuses[:30] == [200] * 30, statuses  # the burst covers a normal flurry
    assert_limited(replies[-1])
    assert statuses.count(200) <= allowance(30, 3.0, started), statuses.count(200)
    other_room = request(proc, "POST", "/createRoom", {}, token=other).body["room_id"]
    reply = request(
        proc,
        "PUT",
        f"/rooms/{quote(other_room)}/send/m.room.message/x",
        {"msgtype": "m.text", "body": "hi"},
        token=other,
    )
    assert reply.status == 200, reply


def test_health_is_never_throttled(proc: OutlastProcess) -> None:
    def probe(i: int) -> int:
        return request(proc, "GET", "/_matrix/client/versions", headers=at("10.9.9.9")).status

    with ThreadPoolExecutor(max_workers=8) as pool:  # the address's budget is spent ...
        assert 429 in set(pool.map(probe, range(400)))
    statuses = {  # ... and the front door's health checks still pass
        request(proc, "GET", "/_outlast/health", headers=at("10.9.9.9")).status for _ in range(300)
    }
    assert statuses == {200}


def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(tmp_path: Path) -> None:
    proc = start_outlast(tmp_path / "untrusting", limits="")
    try:
        statuses = [
            register(proc, f"spoof{i}", headers=at(f"198.51.100.{i + 1}")).status for i in range(12)
        ]
        assert statuses.count(200) <= 6 and 429 in statuses, statuses
    finally:
        proc.stop()
