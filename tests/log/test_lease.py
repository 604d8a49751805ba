"""Leases and once-only claims on a real nats-server's key-value bucket (outlast.log.lease)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from outlast.log.client import LogClient
from outlast.log.engine import NatsNode
from outlast.log.lease import KeyBucket, Lease, claim


@pytest.fixture
async def bucket(node: NatsNode) -> AsyncIterator[KeyBucket]:
    log = LogClient([node.url], name="lease-test")
    await log.connect()
    kv = KeyBucket(log, "LEASE_TEST")
    await kv.ensure(1)
    try:
        yield kv
    finally:
        await log.close()


async def test_one_holder_at_a_time_and_a_lapsed_lease_goes_to_the_next(
    bucket: KeyBucket,
) -> None:
    a = Lease(bucket, "lease", "a", ttl=2)
    b = Lease(bucket, "lease", "b", ttl=2)
    assert await a.hold()
    assert not await b.hold()
    assert await a.hold() and await a.hold()  # renewals, each against the last revision
    assert await b.holder_now() == "a"
    # a stops renewing (it died): the key lapses by its TTL and b's create succeeds.
    deadline = time.monotonic() + 15
    while not await b.hold():
        assert time.monotonic() < deadline, "the lease never lapsed"
        await asyncio.sleep(0.2)
    assert time.monotonic() - (deadline - 15) >= 1.0  # not before the TTL ran out
    assert await b.holder_now() == "b"
    # a comes back believing it holds: its renewal is refused, and it knows.
    assert not await a.hold() and not a.held
    assert await b.hold()


async def test_a_released_lease_goes_to_the_next_holder_without_waiting_for_its_ttl(
    bucket: KeyBucket,
) -> None:
    a = Lease(bucket, "lease", "a", ttl=60)
    b = Lease(bucket, "lease", "b", ttl=60)
    assert await a.hold() and not await b.hold()
    await a.release()
    assert not a.held
    deadline = time.monotonic() + 10  # far less than the 60 s TTL
    while not await b.hold():
        assert time.monotonic() < deadline, "the released lease was not taken"
        await asyncio.sleep(0.2)


async def test_of_many_claims_of_one_key_exactly_one_wins(bucket: KeyBucket) -> None:
    results = await asyncio.gather(
        *(claim(bucket, "period.42", f"site-{i}", ttl=60) for i in range(12))
    )
    assert results.count(True) == 1
    assert not await claim(bucket, "period.42", "late", ttl=60)
    assert await claim(bucket, "period.43", "next", ttl=60)
    found = await bucket.read("period.42")
    assert found is not None and found[1].decode() == f"site-{results.index(True)}"
