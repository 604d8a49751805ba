"""A site reads one clock (outlast.clock): timestamps, ages and expiries follow it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from outlast.accounts.service import Requester
from outlast.services import Services
from tests.clock import ManualClock
from tests.testrig import running_site, services_of


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def timed(shared_nats: str, tmp_path: Path, clock: ManualClock) -> AsyncIterator[Services]:
    async with running_site(tmp_path / "site", shared_nats, clock=clock) as site:
        yield services_of(site)


async def user(services: Services, name: str) -> Requester:
    reply = await services.accounts.register(
        name, "secret password", device_id=None, display_name=None, inhibit_login=False
    )
    return await services.accounts.authenticate(str(reply["access_token"]))


async def test_events_are_stamped_and_aged_by_the_site_clock(
    timed: Services, clock: ManualClock
) -> None:
    alice = await user(timed, "alice")
    room_id = (await timed.creator.create(alice.user_id, {}))["room_id"]
    event_id = await timed.messages.send(alice, room_id, "m.room.message", "t1", {"body": "hi"})
    clock.advance(42)
    event = timed.messages.event(alice, room_id, event_id)
    assert event["origin_server_ts"] == int((clock.time() - 42) * 1000)
    assert event["unsigned"]["age"] == 42_000


async def test_typing_expires_when_the_clock_passes_its_timeout(
    timed: Services, clock: ManualClock
) -> None:
    alice = await user(timed, "alice")
    room_id = (await timed.creator.create(alice.user_id, {}))["room_id"]
    typing = timed.typing
    await typing.set_typing(alice, room_id, alice.user_id, {"typing": True, "timeout": 30_000})
    clock.advance(29)
    typing.sweep()
    assert typing.typing_in(room_id) == [alice.user_id]
    clock.advance(2)
    assert typing.typing_in(room_id) == []  # expired, even before the sweeper runs


async def test_presence_ages_with_the_clock(timed: Services, clock: ManualClock) -> None:
    alice = await user(timed, "alice")
    presence = timed.presence
    await presence.set_status(alice, alice.user_id, {"presence": "online"})
    clock.advance(7.5)
    assert presence.status(alice, alice.user_id)["last_active_ago"] == 7_500


def test_log_time_parses_nats_server_stamps() -> None:
    from outlast.clock import parse_rfc3339

    assert parse_rfc3339("2026-12-02T17:30:00Z") == 1796232600.0
    assert abs(parse_rfc3339("2026-12-02T17:30:00.123456789Z") - 1796232600.123456789) < 1e-6


def test_log_time_follows_the_log_only_when_far_off() -> None:
    from outlast.clock import FOLLOW_ABOVE_S, LogTime

    measured = LogTime()
    assert measured.offset() == 0.0  # nothing measured: the host's clock as it is
    # Within FOLLOW_ABOVE_S the host is trusted.
    measured.observe(1000.0, 1000.02, 1000.01 - FOLLOW_ABOVE_S / 2)
    assert measured.offset() == 0.0
    # 300 s fast: a slow answer (2 s round trip) and a quick one; the quick one wins.
    measured.observe(1300.0, 1302.0, 1000.0)
    measured.observe(1310.0, 1310.01, 1010.0)
    assert abs(measured.offset() - 300.0) < 0.02


def test_observe_log_time_ignores_answers_without_a_stamp() -> None:
    from outlast.clock import LOG_TIME, observe_log_time

    before = LOG_TIME.offset()
    observe_log_time(0.0, 0.0, {"config": {}})
    observe_log_time(0.0, 0.0, {"ts": "0001-01-01T00:00:00Z"})
    observe_log_time(0.0, 0.0, {"ts": "garbage"})
    assert LOG_TIME.offset() == before
