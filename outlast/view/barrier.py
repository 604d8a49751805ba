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

# Questions out at once per stream: a request arriving while they are all out
# waits for the next (so for part of one answer, plus one whole answer). Two or
# four were no faster than one, embedded or on three loopback sites
# (bench/RESULTS.md): the extra questions cost more than the shorter wait saved.
MAX_IN_FLIGHT = 1

# Between failed questions (no leader yet, no route): answers cannot improve faster.
RETRY_PAUSE = 0.05


class Reads(enum.Flag):
    """What a read route answers from, and so which streams it must be current on.

    Every kind includes the users stream (authentication waits for it anyway);
    kinds combine, e.g. ``ROOM | DIRECTORY`` for a room's aliases.
    """

    ACCOUNT = enum.auto()  # the users stream: accounts, devices, profiles, account data
    ROOM = enum.auto()  # one room: its partition stream
    DIRECTORY = enum.auto()  # room aliases
    EVERYTHING = enum.auto()  # every stream of a sync token: /sync, joined rooms


@dataclass
class Statistics:
    """Debug counters: questions sent, requests that used a shared answer, refusals."""

    questions: int = 0
    failed_questions: int = 0
    shared: int = 0
    refused: int = 0


class NotCurrent(Exception):
    """The view could not be shown current in time (the reason is the message)."""


@dataclass
class _Question:
    sent_at: float  # by the barrier's clock, just before it was sent
    answer: asyncio.Future[int | LogUnavailable]


class _Questions:
    """One stream's questions to its leader, shared by every request that may use them.

    At most ``max_in_flight`` are out at once; a request that finds no question
    sent since it arrived, and no room for one, waits for the next, which is
    sent as soon as one comes back.
    """

    def __init__(
        self, stream: str, ask: Ask, clock: Clock, stats: Statistics, max_in_flight: int
    ) -> None:
        self.stream = stream
        self.ask = ask
        self.clock = clock
        self.stats = stats
        self.max_in_flight = max_in_flight
        # (when the newest answered question was sent, the sequence it returned)
        self.latest: tuple[float, int] | None = None
        self.in_flight: list[_Question] = []  # oldest first
        self._queued: asyncio.Future[int | LogUnavailable] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def since(self, arrived: float) -> int:
        """The leader's last sequence, from a question sent at or after ``arrived``."""
        if self.latest is not None and self.latest[0] >= arrived:
            self.stats.shared += 1
            return self.latest[1]
        if self.in_flight and self.in_flight[-1].sent_at >= arrived:
            self.stats.shared += 1
            answer = self.in_flight[-1].answer
        elif len(self.in_flight) < self.max_in_flight:
            answer = self._send(asyncio.get_running_loop().create_future())
        elif self._queued is not None:
            self.stats.shared += 1
            answer = self._queued
        else:
            answer = self._queued = asyncio.get_running_loop().create_future()
        # A result, not an exception: nobody may be left to retrieve a failure.
        outcome = await asyncio.shield(answer)
        if isinstance(outcome, LogUnavailable):
            raise outcome
        return outcome

    def _send(
        self, answer: asyncio.Future[int | LogUnavailable]
    ) -> asyncio.Future[int | LogUnavailable]:
        # Every request waiting on ``answer`` joined it before this instant.
        question = _Question(self.clock(), answer)
        self.in_flight.append(question)
        self.stats.questions += 1
        task = asyncio.create_task(self._ask(question), name=f"barrier {self.stream}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return answer

    async def _ask(self, question: _Question) -> None:
        outcome: int | LogUnavailable
        try:
            outcome = await self.ask(self.stream)
        except LogUnavailable as exc:
            outcome = exc
        except Exception as exc:  # noqa: BLE001 - never leave requests waiting
            outcome = LogUnavailable(f"asking the stream leader failed: {exc!r}")
        self.in_flight.remove(question)
        if isinstance(outcome, LogUnavailable):
            self.stats.failed_questions += 1
        elif self.latest is None or question.sent_at >= self.latest[0]:
            self.latest = (question.sent_at, outcome)
        question.answer.set_result(outcome)
        if self._queued is not None:
            queued, self._queued = self._queued, None
            self._send(queued)


class Barrier:
    """Waits until the view is at least as current as the log was when a request arrived."""

    def __init__(
        self,
        ask: Ask,
        positions: Positions,
        *,
        enabled: bool = True,
        wait_seconds: float = 5.0,
        max_in_flight: int = MAX_IN_FLIGHT,
        clock: Clock = time.monotonic,
    ) -> None:
        self.ask = ask
        self.positions = positions
        self.enabled = enabled
        self.wait_seconds = wait_seconds
        self.clock = clock
        self.stats = Statistics()
        self.max_in_flight = max_in_flight
        self._questions: dict[str, _Questions] = {}

    def _stream(self, stream: str) -> _Questions:
        questions = self._questions.get(stream)
        if questions is None:
            questions = self._questions[stream] = _Questions(
                stream, self.ask, self.clock, self.stats, self.max_in_flight
            )
        return questions

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
        questions = self._stream(stream)
        while True:
            remaining = deadline - self.clock()
            try:
                async with asyncio.timeout(max(0.0, remaining)):
                    seq = await questions.since(arrived)
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
