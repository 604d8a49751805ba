"""Time, injectable: every deadline, retry pause and timestamp of a site reads one clock.

A site runs on :class:`SystemClock`. Tests hand a site (or one service) a
clock they control, so a timeout or an expiry can be reached without sleeping
for it (``tests/clock.py``). Waits on futures (read-your-writes, parked
/sync long-polls) still use the event loop's own timers: they end early when
what they wait for happens, which is what their tests look at.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock seconds since the epoch (timestamps that leave the process)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (deadlines, ages, rates)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Pause this task (retry back-off, polling)."""
        ...


class SystemClock:
    """The real clocks and the event loop's sleep."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def now_ms(clock: Clock) -> int:
    """Milliseconds since the epoch: Matrix timestamps (``origin_server_ts``, ``ts``)."""
    return int(clock.time() * 1000)


SYSTEM = SystemClock()
