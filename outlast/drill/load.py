"""Simulated users that talk the Client-Server API like real clients, keeping ledgers.

Each user sends one message at a time with its own txnId and, on any failure
(connection refused or reset, timeout, 5xx, 429), retries the same txnId with
bounded exponential backoff, exactly as a Matrix client does. Every send and
its outcome goes into the user's ledger; the verdict compares ledgers with
what the sites store.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp

from outlast.drill.verdict import Send

RETRY_GIVE_UP_SECONDS = 60.0


@dataclass
class Counters:
    sent: int = 0
    acked: int = 0
    errors: int = 0
    retries: int = 0
    # What the failed attempts were told: "503 M_UNAVAILABLE", "no answer (TimeoutError)".
    error_answers: dict[str, int] = field(default_factory=dict)
    acks_per_second: dict[int, int] = field(default_factory=dict)
    site_acks_per_second: dict[str, dict[int, int]] = field(default_factory=dict)


@dataclass
class SimUser:
    name: str
    token: str
    user_id: str
    ledger: list[Send] = field(default_factory=list)
    ack_times: list[float] = field(default_factory=list)
    # Every attempt: (started, ended, outcome, answering site), outcome "200" or what
    # the failure was told; lets a drill say what a long write gap was made of.
    attempts: list[tuple[float, float, str, str]] = field(default_factory=list)


class Load:
    """Register users, create rooms, and run senders through a base URL (the front door)."""

    def __init__(
        self,
        base_url: str,
        *,
        password: str = "drill-password",
        clock: Callable[[], float] = time.monotonic,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.tls = tls  # an HTTPS front door's CA (`cluster up --tls`)
        self.password = password
        self.clock = clock
        self.users: list[SimUser] = []
        self.rooms: list[str] = []
        self.counters = Counters()
        self.started_at = clock()
        # When ``run`` stops starting sends (sends in flight then still finish).
        self.sending_until: float | None = None
        # Told of every acknowledged send: (user name, token, the send, answering site).
        self.ack_hooks: list[Callable[[str, str, Send, str], None]] = []
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Load:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=15),
            connector=aiohttp.TCPConnector(
                limit=256, force_close=False, ssl=self.tls if self.tls is not None else True
            ),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        base: str | None = None,
    ) -> tuple[int, Any, str]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.session.request(
            method, (base or self.base_url) + path, json=body, headers=headers
        ) as resp:
            try:
                data = await resp.json(content_type=None)
            except ValueError:
                data = None
            return resp.status, data, resp.headers.get("X-Outlast-Site", "")

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        deadline_s: float = 60.0,
    ) -> Any:
        """A setup call retried until it succeeds (setup may run while a site is starting)."""
        deadline = self.clock() + deadline_s
        delay = 0.1
        status = 0
        while True:
            try:
                status, data, _ = await self.request(method, path, body, token)
                if status == 200:
                    return data
                if status < 500 and status != 429:
                    raise RuntimeError(f"{method} {path}: {status} {data}")
            except (TimeoutError, aiohttp.ClientError):
                pass
            if self.clock() > deadline:
                hint = (
                    " (429: the sites rate-limit this load; start the cluster with"
                    " `[limits] enabled = false` in its --site-config)"
                    if status == 429
                    else ""
                )
                raise TimeoutError(f"{method} {path} did not succeed in {deadline_s}s{hint}")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def setup(self, users: int, rooms: int, prefix: str | None = None) -> None:
        prefix = prefix or "drill" + uuid.uuid4().hex[:8]
        for i in range(users):
            name = f"{prefix}u{i}"
            body = {"username": name, "password": self.password, "auth": {"type": "m.login.dummy"}}
            try:
                data = await self.call("POST", "/_matrix/client/v3/register", body)
            except RuntimeError as exc:
                # A registration whose answer was lost (a timeout on a loaded machine)
                # was retried and found the name taken: by that first attempt, as the
                # prefix is this drill's own. Log in to it instead.
                if "M_USER_IN_USE" not in str(exc):
                    raise
                login = {
                    "type": "m.login.password",
                    "identifier": {"type": "m.id.user", "user": name},
                    "password": self.password,
                }
                data = await self.call("POST", "/_matrix/client/v3/login", login)
            self.users.append(SimUser(name, data["access_token"], data["user_id"]))
        owner = self.users[0]
        for _ in range(rooms):
            data = await self.call(
                "POST", "/_matrix/client/v3/createRoom", {"preset": "public_chat"}, owner.token
            )
            self.rooms.append(data["room_id"])
        for user in self.users[1:]:
            for room_id in self.rooms:
                await self.call("POST", f"/_matrix/client/v3/join/{quote(room_id)}", {}, user.token)

    async def send_one(self, user: SimUser, room_id: str, seq: int) -> Send:
        txn_id = f"{user.name}-{seq}"
        body = f"{user.name}#{seq}"
        path = f"/_matrix/client/v3/rooms/{quote(room_id)}/send/m.room.message/{quote(txn_id)}"
        started = self.clock()
        attempts = errors = 0
        delay = 0.05
        self.counters.sent += 1
        while True:
            attempts += 1
            tried = self.clock()
            site = ""
            try:
                status, data, site = await self.request(
                    "PUT", path, {"msgtype": "m.text", "body": body}, user.token
                )
                if status == 200 and isinstance(data, dict) and "event_id" in data:
                    now = self.clock()
                    second = int(now - self.started_at)
                    self.counters.acked += 1
                    self.counters.acks_per_second[second] = (
                        self.counters.acks_per_second.get(second, 0) + 1
                    )
                    per_site = self.counters.site_acks_per_second.setdefault(site or "?", {})
                    per_site[second] = per_site.get(second, 0) + 1
                    user.ack_times.append(now)
                    user.attempts.append((tried, now, "200", site))
                    send = Send(
                        user.name,
                        room_id,
                        txn_id,
                        body,
                        True,
                        data["event_id"],
                        attempts,
                        errors,
                        started,
                        now,
                    )
                    for hook in self.ack_hooks:
                        hook(user.name, user.token, send, site)
                    return send
                code = data.get("errcode", "") if isinstance(data, dict) else "not JSON"
                self._tally(f"{status} {code}")
                said = str(data.get("error", ""))[:60] if isinstance(data, dict) else ""
                user.attempts.append((tried, self.clock(), f"{status} {code} {said}", site))
                if 400 <= status < 500 and status != 429:
                    return Send(
                        user.name, room_id, txn_id, body, False, None, attempts, errors + 1, started
                    )
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                self._tally(f"no answer ({type(exc).__name__})")
                user.attempts.append(
                    (tried, self.clock(), f"no answer ({type(exc).__name__})", site)
                )
            errors += 1
            self.counters.errors += 1
            if self.clock() - started > RETRY_GIVE_UP_SECONDS:
                return Send(
                    user.name, room_id, txn_id, body, False, None, attempts, errors, started
                )
            self.counters.retries += 1
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, 1.0)

    def _tally(self, answer: str) -> None:
        self.counters.error_answers[answer] = self.counters.error_answers.get(answer, 0) + 1

    async def run(self, rate: float, duration: float, stop: asyncio.Event | None = None) -> None:
        """Every user sends at ``rate / users`` messages per second, one at a time."""
        per_user = rate / max(1, len(self.users))
        interval = 1.0 / per_user if per_user > 0 else 1.0
        end = self.sending_until = self.clock() + duration

        async def sender(user: SimUser) -> None:
            seq = len(user.ledger)
            next_at = self.clock() + random.uniform(0, interval)
            while self.clock() < end and not (stop and stop.is_set()):
                wait = next_at - self.clock()
                if wait > 0:
                    await asyncio.sleep(wait)
                room_id = self.rooms[seq % len(self.rooms)]
                user.ledger.append(await self.send_one(user, room_id, seq))
                seq += 1
                next_at = max(next_at + interval, self.clock())

        await asyncio.gather(*(sender(u) for u in self.users))

    def sends(self) -> list[Send]:
        return [s for u in self.users for s in u.ledger]

    async def timeline(
        self, base_url: str, room_id: str, token: str, deadline_s: float = 120.0
    ) -> list[dict[str, Any]]:
        """A room's whole timeline read back through one site, oldest first."""
        events: list[dict[str, Any]] = []
        token_from = ""
        end = self.clock() + deadline_s
        while self.clock() < end:
            path = f"/_matrix/client/v3/rooms/{quote(room_id)}/messages?dir=f&limit=500"
            if token_from:
                path += f"&from={quote(token_from)}"
            status, data, _ = await self.request("GET", path, None, token, base=base_url)
            if status != 200:
                await asyncio.sleep(0.5)
                continue
            events.extend(data.get("chunk", []))
            if not data.get("end") or not data.get("chunk"):
                return events
            token_from = data["end"]
        raise TimeoutError(f"reading {room_id} from {base_url} took over {deadline_s}s")
