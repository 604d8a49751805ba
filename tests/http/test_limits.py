"""Rate-limit arithmetic with a controllable clock (outlast.http.limits), no server."""

from __future__ import annotations

import pytest

from outlast.http.limits import (
    Buckets,
    Budget,
    ClientAddresses,
    LoginBackoff,
    address_key,
    limit_exceeded,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_its_rate() -> None:
    clock = Clock()
    buckets = Buckets(Budget(per_second=2.0, burst=3), clock)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)
    assert buckets.take("b") == 0.0  # keys are independent
    clock.now += 0.5
    assert buckets.take("a") == 0.0
    assert buckets.take("a") > 0
    clock.now += 100  # refills to the burst, never beyond
    assert [buckets.take("a") for _ in range(4)][-1] > 0


def test_a_refused_request_does_not_earn_credit() -> None:
    clock = Clock()
    buckets = Buckets(Budget(per_second=1.0, burst=1), clock)
    assert buckets.take("a") == 0.0
    waits = [buckets.take("a") for _ in range(50)]
    assert all(w > 0 for w in waits)
    clock.now += 1.0
    assert buckets.take("a") == 0.0


def test_a_rate_of_zero_is_off() -> None:
    buckets = Buckets(Budget(per_second=0.0, burst=1), Clock())
    assert all(buckets.take("a") == 0.0 for _ in range(1000))


def test_memory_is_bounded_and_the_least_recent_key_goes_first() -> None:
    clock = Clock()
    buckets = Buckets(Budget(per_second=0.001, burst=1), clock, max_keys=3)
    for key in ("a", "b", "c"):
        buckets.take(key)
    buckets.take("a")  # refused, and now the most recent
    buckets.take("d")  # evicts "b"
    assert buckets.take("a") > 0
    assert buckets.take("b") == 0.0  # forgotten: a full bucket again


def test_login_backoff_doubles_after_the_free_failures_and_is_capped() -> None:
    clock = Clock()
    backoff = LoginBackoff(free=3, max_seconds=8.0, clock=clock)
    for _ in range(3):
        assert backoff.wait("k") == 0.0
        backoff.failed("k")
    assert backoff.wait("k") == pytest.approx(1.0)
    clock.now += 1.0
    backoff.failed("k")
    assert backoff.wait("k") == pytest.approx(2.0)
    for _ in range(10):
        clock.now += 100
        backoff.failed("k")
    assert backoff.wait("k") == pytest.approx(8.0)  # never longer than the cap
    assert backoff.wait("other") == 0.0
    backoff.succeeded("k")
    assert backoff.wait("k") == 0.0


def test_login_failures_are_forgotten_after_an_hour_without_one() -> None:
    clock = Clock()
    backoff = LoginBackoff(free=0, max_seconds=300.0, clock=clock)
    backoff.failed("k")
    assert backoff.wait("k") > 0
    clock.now += 3601
    assert backoff.wait("k") == 0.0


def test_forwarded_for_is_believed_only_from_trusted_proxies() -> None:
    addresses = ClientAddresses(["10.0.0.0/8", "192.0.2.1"])
    assert addresses.resolve("203.0.113.5", "198.51.100.1") == "203.0.113.5"
    assert addresses.resolve("10.1.1.1", None) == "10.1.1.1"
    assert addresses.resolve("10.1.1.1", "198.51.100.1") == "198.51.100.1"
    # The nearest untrusted hop wins: whatever the client wrote further left is ignored.
    assert addresses.resolve("10.1.1.1", "6.6.6.6, 198.51.100.1, 192.0.2.1") == "198.51.100.1"
    assert addresses.resolve("10.1.1.1", "garbage, 10.2.2.2") == "10.2.2.2"
    assert addresses.resolve(None, "1.2.3.4") == "?"
    assert not ClientAddresses([]).trusted("127.0.0.1")


def test_ipv6_clients_count_per_64() -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::9")
    assert address_key("2001:db8:1:2::1") != address_key("2001:db8:1:3::1")
    assert address_key("::ffff:192.0.2.7") == address_key("192.0.2.7")
    assert address_key("?") == "a?"


def test_limit_exceeded_is_the_spec_error() -> None:
    error = limit_exceeded(1.2)
    assert (error.status, error.errcode) == (429, "M_LIMIT_EXCEEDED")
    assert error.extra == {"retry_after_ms": 1200}
    assert error.headers == {"Retry-After": "2"}
