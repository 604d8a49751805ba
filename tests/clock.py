"""A clock the test moves (outlast.clock.Clock): deadlines and expiries without waiting.

Only the readings are the test's: ``sleep`` still pauses for real (a site's
background loops, such as its self-report every second, must not spin), so a
test moves time with :meth:`ManualClock.advance` and then looks.
"""

from __future__ import annotations

import asyncio


class ManualClock:
    def __init__(self, wall: float = 1_800_000_000.0, monotonic: float = 1_000.0) -> None:
        self._wall = wall
        self._monotonic = monotonic

    def time(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._monotonic

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def advance(self, seconds: float) -> None:
        self._wall += seconds
        self._monotonic += seconds
