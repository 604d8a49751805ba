"""Rate limits: who a request is counted against, and how much each one may do.

On by default (``[limits]`` in docs/config.md; ``enabled = false`` turns all
of it off for load tests and conformance runs). Over a budget, a request gets
the spec's ``429 M_LIMIT_EXCEEDED`` with ``retry_after_ms`` and a
``Retry-After`` header.

- **Whom a request counts against.** The account, when its access token
  resolves; otherwise the client's address. A request with an unknown or
  made-up token counts against its address too, so inventing a new token per
  request never buys a fresh bucket.
- **The client's address** is the connection's peer, unless that peer is a
  trusted proxy (``server.trusted_proxies``, e.g. the front door): then the
  nearest untrusted hop of ``X-Forwarded-For``. IPv6 addresses count per /64,
  the block one subscriber usually holds.
- **Budgets.** Every request takes from the general bucket of its account or
  address; registrations (per address), password login attempts (per
  address) and room writes (per account) also take from their own, stricter
  buckets.
- **Password guessing.** Failed password checks back off exponentially per
  (account, address): after ``login_failures_before_backoff`` failures each
  further attempt from that address must wait 1 s, 2 s, 4 s ... up to
  ``login_backoff_max_seconds``, and is refused without checking the
  password. The victim logging in from anywhere else is not slowed, so an
  attacker cannot lock anyone out; a success clears the count.

Buckets live in each worker's memory: limits are per worker process and per
site, not global (documented). Their number is bounded; the least recently
used key is forgotten first (a full bucket is the same as a forgotten one).
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from outlast.config import Config
from outlast.core.errors import MatrixError

Clock = Callable[[], float]
MAX_KEYS = 100_000
# A backoff count is forgotten after this long without a failure.
FAILURE_MEMORY_SECONDS = 3600.0


def limit_exceeded(wait: float, what: str = "too many requests") -> MatrixError:
    """Spec: 429 M_LIMIT_EXCEEDED with retry_after_ms (and Retry-After for HTTP clients)."""
    return MatrixError(
        429,
        "M_LIMIT_EXCEEDED",
        what,
        headers={"Retry-After": str(max(1, math.ceil(wait)))},
        extra={"retry_after_ms": max(1, math.ceil(wait * 1000))},
    )


@dataclass(frozen=True)
class Budget:
    per_second: float
    burst: int

    @property
    def on(self) -> bool:
        return self.per_second > 0


class Buckets:
    """One token bucket per key: ``burst`` at once, then ``per_second``."""

    def __init__(
        self, budget: Budget, clock: Clock = time.monotonic, max_keys: int = MAX_KEYS
    ) -> None:
        self.budget = budget
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str) -> float:
        """0 if the request may go ahead (and it is counted), else seconds to wait."""
        if not self.budget.on:
            return 0.0
        now = self.clock()
        burst = float(self.budget.burst)
        tokens, last = self._buckets.pop(key, (burst, now))
        tokens = min(burst, tokens + (now - last) * self.budget.per_second)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.budget.per_second
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait


class LoginBackoff:
    """Failed password checks per key; after ``free`` of them, exponential waits."""

    def __init__(
        self,
        free: int,
        max_seconds: float,
        clock: Clock = time.monotonic,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self.free = free
        self.max_seconds = max_seconds
        self.clock = clock
        self.max_keys = max_keys
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def wait(self, key: str) -> float:
        """Seconds before this key may try a password again (0: now)."""
        entry = self._failures.get(key)
        if entry is None:
            return 0.0
        count, last = entry
        now = self.clock()
        if now - last > max(FAILURE_MEMORY_SECONDS, self.max_seconds):
            del self._failures[key]
            return 0.0
        if count < self.free:
            return 0.0
        delay = min(self.max_seconds, 2.0 ** min(count - self.free, 62))
        return max(0.0, last + delay - now)

    def failed(self, key: str) -> None:
        count = self._failures.pop(key, (0, 0.0))[0]
        self._failures[key] = (count + 1, self.clock())
        if len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)


class ClientAddresses:
    """The client's address, believing X-Forwarded-For only from trusted proxies."""

    def __init__(self, trusted: list[str]) -> None:
        self.networks = [ipaddress.ip_network(t, strict=False) for t in trusted]

    def trusted(self, address: str | None) -> bool:
        ip = _ip(address)
        return ip is not None and any(ip in net for net in self.networks)

    def resolve(self, peer: str | None, forwarded_for: str | None) -> str:
        """Walk X-Forwarded-For from the right while the hop is a trusted proxy."""
        address = peer or "?"
        if not forwarded_for or not self.trusted(address):
            return address
        for hop in reversed(forwarded_for.split(",")):
            hop = hop.strip()
            if _ip(hop) is None:
                break  # garbage: stay with the last hop we could trust
            address = hop
            if not self.trusted(hop):
                break
        return address


def _ip(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not text:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def address_key(address: str) -> str:
    """IPv4 as is; IPv6 by its /64 (one subscriber usually holds a whole /64)."""
    ip = _ip(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        return "a" + str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return "a" + str(ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else address)


class RateLimits:
    """Every budget of one worker, asked by the middleware and a few handlers."""

    def __init__(self, config: Config, clock: Clock = time.monotonic) -> None:
        limits = config.limits
        self.enabled = limits.enabled
        self.body_timeout = limits.body_timeout_seconds
        self.addresses = ClientAddresses(config.server.trusted_proxies)
        self.general = Buckets(Budget(limits.rate_limit_per_second, limits.rate_limit_burst), clock)
        self.register = Buckets(Budget(limits.register_per_second, limits.register_burst), clock)
        self.login = Buckets(Budget(limits.login_per_second, limits.login_burst), clock)
        self.send = Buckets(Budget(limits.send_per_second, limits.send_burst), clock)
        self.backoff = LoginBackoff(
            limits.login_failures_before_backoff, limits.login_backoff_max_seconds, clock
        )
        self.refused: dict[str, int] = {}  # 429s by budget, for the metrics

    def address(self, request: web.Request) -> str:
        return self.addresses.resolve(request.remote, request.headers.get("X-Forwarded-For"))

    def _take(self, buckets: Buckets, key: str, budget: str, what: str) -> None:
        if self.enabled:
            wait = buckets.take(key)
            if wait > 0:
                self._refuse(budget)
                raise limit_exceeded(wait, what)

    def _refuse(self, budget: str) -> None:
        self.refused[budget] = self.refused.get(budget, 0) + 1

    def check_request(self, key: str) -> None:
        self._take(self.general, key, "request", "too many requests")

    def check_registration(self, request: web.Request) -> None:
        address = address_key(self.address(request))
        self._take(self.register, address, "register", "too many registrations")

    def check_send(self, user_id: str) -> None:
        self._take(self.send, "u" + user_id, "send", "too many messages")

    def _login_key(self, request: web.Request, user_id: str) -> str:
        return user_id + " " + address_key(self.address(request))

    def check_login(self, request: web.Request, user_id: str | None) -> None:
        """Before a password is checked: the address's attempt budget, then any backoff."""
        if not self.enabled:
            return
        if user_id is not None:
            wait = self.backoff.wait(self._login_key(request, user_id))
            if wait > 0:
                self._refuse("login_backoff")
                raise limit_exceeded(wait, "too many failed logins; try again later")
        address = address_key(self.address(request))
        self._take(self.login, address, "login", "too many login attempts")

    def login_failed(self, request: web.Request, user_id: str) -> None:
        if self.enabled:
            self.backoff.failed(self._login_key(request, user_id))

    def login_succeeded(self, request: web.Request, user_id: str) -> None:
        if self.enabled:
            self.backoff.succeeded(self._login_key(request, user_id))


LIMITS_KEY: web.AppKey[RateLimits] = web.AppKey("limits", RateLimits)
