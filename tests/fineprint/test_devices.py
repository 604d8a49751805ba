"""``last_seen_ip`` and ``last_seen_ts`` in /devices."""

from __future__ import annotations

import asyncio
import time

from nio import AsyncClient, DevicesResponse

from tests.e2e.helpers import expect


async def test_devices_show_where_and_when_they_were_last_used(
    pair: tuple[AsyncClient, AsyncClient],
) -> None:
    alice, _ = pair
    before = int(time.time() * 1000) - 1000
    deadline = time.monotonic() + 10
    while True:
        (device,) = expect(await alice.devices(), DevicesResponse).devices
        if device.last_seen_ip is not None or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)  # the use is written in the background
    assert device.id == alice.device_id
    assert device.last_seen_ip == "127.0.0.1"
    assert device.last_seen_date is not None
    assert device.last_seen_date.timestamp() * 1000 >= before
