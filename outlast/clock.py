"""Time, injectable: every deadline, retry pause and timestamp of a site reads one clock.

A site runs on :class:`SystemClock`. Tests hand a site (or one service) a
clock they control, so a timeout or an expiry can be reached without sleeping
for it (``tests/clock.py``). The system clock's wall time follows the log's (nats-server's)
clock when the host is more than a second off it (:class:`LogTime`): expiries
and stamps cross sites, so every site must read one time. Waits on futures (read-your-writes, parked
/sync long-polls) still use the event loop's own timers: they end early when
what they wait for happens, which is what their tests look at.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from typing import Protocol

# A drill's `skew` fault: this process's wall clock is off by this many seconds
# (the supervisor sets it for one site's workers; Linux has no per-process clock).
SKEW_ENV = "OUTLAST_CLOCK_SKEW_S"
# Below this the host's clock is trusted as it is (NTP keeps sites far closer).
FOLLOW_ABOVE_S = 1.0
# How long a measurement of the log's clock counts.
SAMPLE_MAX_AGE_S = 120.0


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


def _host_time() -> float:
    """The host's wall clock, plus the drill's injected skew if any."""
    return time.time() + _SKEW


def _skew_from_env() -> float:
    try:
        return float(os.environ.get(SKEW_ENV, "0") or 0)
    except ValueError:
        return 0.0


_SKEW = _skew_from_env()


class LogTime:
    """How far this host's wall clock is from the log's (nats-server's) clock.

    Token expiry and health stamps cross sites, so each site must judge them
    by one shared clock. Every JetStream STREAM.INFO answer carries the
    answering node's time (``ts``); bracketed by this host's time before and
    after the request it gives the offset within half the round trip. The
    sample with the shortest round trip of the last SAMPLE_MAX_AGE_S wins.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._samples: list[tuple[float, float, float]] = []  # (monotonic, rtt, offset)

    def observe(self, before: float, after: float, log_time: float) -> None:
        """``before``/``after``: ``host_time()`` around a request the log answered at
        ``log_time`` (seconds since the epoch)."""
        rtt = max(0.0, after - before)
        offset = (before + after) / 2 - log_time
        now = time.monotonic()
        with self._lock:
            self._samples = [s for s in self._samples if now - s[0] < SAMPLE_MAX_AGE_S]
            self._samples.append((now, rtt, offset))
            del self._samples[:-64]

    def offset(self) -> float:
        """Seconds this host is ahead of the log (0 when within FOLLOW_ABOVE_S)."""
        now = time.monotonic()
        with self._lock:
            fresh = [s for s in self._samples if now - s[0] < SAMPLE_MAX_AGE_S]
        if not fresh:
            return 0.0
        best = min(fresh, key=lambda s: s[1])[2]
        return best if abs(best) > FOLLOW_ABOVE_S else 0.0


LOG_TIME = LogTime()


def parse_rfc3339(text: str) -> float:
    """nats-server's timestamps (nanosecond fractions, ``Z``) as epoch seconds."""
    from datetime import datetime

    head, _, frac = text.rstrip("Z").partition(".")
    digits = "".join(c for c in frac if c.isdigit())
    whole = datetime.fromisoformat(head + "+00:00").timestamp()
    return whole + (int(digits[:9].ljust(9, "0")) / 1e9 if digits else 0.0)


def observe_log_time(before: float, after: float, info: object) -> None:
    """Feed LOG_TIME from a JetStream API answer that carries the node's time (``ts``)."""
    stamp = info.get("ts") if isinstance(info, dict) else None
    if isinstance(stamp, str) and stamp and not stamp.startswith("0001"):
        with contextlib.suppress(ValueError):
            LOG_TIME.observe(before, after, parse_rfc3339(stamp))


def host_time() -> float:
    """The host's own wall clock (with a drill's skew): what LogTime measures against."""
    return _host_time()


class SystemClock:
    """The real clocks and the event loop's sleep; the wall clock follows the log's
    clock when the host's is more than FOLLOW_ABOVE_S off it."""

    def time(self) -> float:
        return _host_time() - LOG_TIME.offset()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def now_ms(clock: Clock) -> int:
    """Milliseconds since the epoch: Matrix timestamps (``origin_server_ts``, ``ts``)."""
    return int(clock.time() * 1000)


SYSTEM = SystemClock()
