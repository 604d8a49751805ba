"""The read barrier: never answer from a view older than the log was when the request arrived.

A request that arrived at time ``t`` waits, for each stream it touches, until
this site's view has applied the sequence that stream's leader reported in an
answer to a question *sent after t*. Anything acknowledged anywhere before
``t`` — a logout, a deleted device, a message sent at another site — had
been committed by then, so the leader's answer covers it and the view has
applied it by the time the request is served. Which answers count as the
leader's is decided in outlast/log/leader.py; the rule and its limits are
in docs/consistency.md.

Concurrent requests share questions: per stream, at most one is in flight,
and every request that arrives while it is in flight waits for the next one
(which starts after the request arrived, so still covers it). A request may
also use any answer to a question sent after it arrived, such as one that
another request started, so a request touching the same stream twice (a
read route, then authentication) asks once.

When the leader cannot be shown current within the wait budget (no leader,
a leader that lost its quorum, this site cut off) the request fails with
``503 M_UNAVAILABLE`` and ``Retry-After``: a site that cannot prove it is
current says so rather than answering from what it has.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from outlast.core.errors import unavailable
from outlast.log.client import LogUnavailable
from outlast.view.store import Positions

# A stream's leader, asked now: its last committed sequence (LogClient.leader_position).
Ask = Callable[[str], Awaitable[int]]
Clock = Callable[[], float]

# Between failed questions (no leader yet, no route): answers cannot improve faster.
RETRY_PAUSE = 0.05


class Reads(enum.Enum):
    """What a read route answers from, and so which streams it must be current on."""

    ACCOUNT = "account"  # the users stream: accounts, devices, profiles, account data
    ROOM = "room"  # one room: its partition stream (and the users stream)
    DIRECTORY = "directory"  # room aliases (and the users stream)
    EVERYTHING = "everything"  # every stream of a sync token: /sync, joined rooms


@dataclass
class Statistics:
    """Debug counters: questions sent, requests that used a shared answer, refusals."""

    questions: int = 0
    failed_questions: int = 0
    shared: int = 0
    refused: int = 0


class NotCurrent(Exception):
    """The view could not be shown current in time (the reason is the message)."""


class _Rounds:
    """One stream's questions to its leader, one at a time, shared by every waiting request."""

    def __init__(self, stream: str, ask: Ask, clock: Clock, stats: Statistics) -> None:
        self.stream = stream
        self.ask = ask
        self.clock = clock
        self.stats = stats
        # (when the newest answered question was sent, the sequence it returned)
        self.latest: tuple[float, int] | None = None
        self._next: asyncio.Future[int | LogUnavailable] | None = None
        self._task: asyncio.Task[None] | None = None

    async def since(self, arrived: float) -> int:
        """The leader's last sequence, from a question sent at or after ``arrived``."""
        if self.latest is not None and self.latest[0] >= arrived:
            self.stats.shared += 1
            return self.latest[1]
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
            if self._task is None or self._task.done():
                self._task = asyncio.create_task(self._run(), name=f"barrier {self.stream}")
        else:
            self.stats.shared += 1
        # A result, not an exception: nobody may be left to retrieve a failure.
        outcome = await asyncio.shield(self._next)
        if isinstance(outcome, LogUnavailable):
            raise outcome
        return outcome

    async def _run(self) -> None:
        while self._next is not None:
            round_, self._next = self._next, None
            # Every request waiting on round_ joined it before this instant.
            sent_at = self.clock()
            self.stats.questions += 1
            outcome: int | LogUnavailable
            try:
                outcome = await self.ask(self.stream)
            except LogUnavailable as exc:
                outcome = exc
            except Exception as exc:  # noqa: BLE001 - never leave requests waiting
                outcome = LogUnavailable(f"asking the stream leader failed: {exc!r}")
            if isinstance(outcome, LogUnavailable):
                self.stats.failed_questions += 1
            elif self.latest is None or sent_at >= self.latest[0]:
                self.latest = (sent_at, outcome)
            round_.set_result(outcome)


class Barrier:
    """Waits until the view is at least as current as the log was when a request arrived."""

    def __init__(
        self,
        ask: Ask,
        positions: Positions,
        *,
        enabled: bool = True,
        wait_seconds: float = 5.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.ask = ask
        self.positions = positions
        self.enabled = enabled
        self.wait_seconds = wait_seconds
        self.clock = clock
        self.stats = Statistics()
        self._rounds: dict[str, _Rounds] = {}

    def _stream(self, stream: str) -> _Rounds:
        rounds = self._rounds.get(stream)
        if rounds is None:
            rounds = self._rounds[stream] = _Rounds(stream, self.ask, self.clock, self.stats)
        return rounds

    async def wait_current(self, streams: Iterable[str], arrived: float | None = None) -> None:
        """Return once every stream is applied as far as the log was at ``arrived``.

        ``arrived`` is when the request arrived (now if not given). Raises
        503 M_UNAVAILABLE when that cannot be shown within ``wait_seconds``.
        Does nothing when the barrier is switched off (a benchmark knob).
        """
        if not self.enabled:
            return
        arrived = self.clock() if arrived is None else arrived
        deadline = self.clock() + self.wait_seconds
        names = list(dict.fromkeys(streams))
        try:
            if len(names) == 1:
                await self._current(names[0], arrived, deadline)
            else:
                await asyncio.gather(*(self._current(n, arrived, deadline) for n in names))
        except NotCurrent as exc:
            self.stats.refused += 1
            raise unavailable(
                f"this site cannot show it is current ({exc}); try again", retry_after_s=1
            ) from None

    async def caught_up(self, stream: str, timeout: float) -> bool:
        """Whether the view applied everything the log held just now (waiting up to ``timeout``).

        For lookups that missed and may only have missed because another site
        wrote just now; works whether or not the barrier is switched on.
        """
        try:
            await self._current(stream, self.clock(), self.clock() + timeout)
        except NotCurrent:
            return False
        return True

    async def _current(self, stream: str, arrived: float, deadline: float) -> None:
        rounds = self._stream(stream)
        while True:
            remaining = deadline - self.clock()
            try:
                async with asyncio.timeout(max(0.0, remaining)):
                    seq = await rounds.since(arrived)
                break
            except LogUnavailable as exc:
                if self.clock() + RETRY_PAUSE >= deadline:
                    raise NotCurrent(f"{stream}: {exc}") from None
                await asyncio.sleep(RETRY_PAUSE)
            except TimeoutError:
                raise NotCurrent(f"{stream}: its leader did not answer in time") from None
        if self.positions.applied(stream) >= seq:
            return
        if not await self.positions.wait_for(stream, seq, max(0.0, deadline - self.clock())):
            raise NotCurrent(f"{stream}: this site's view has not applied it up to {seq} yet")
