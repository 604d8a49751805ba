"""The read barrier (outlast.view.barrier): shared questions, and never an old answer.

The leader is simulated: each question reads the log's last sequence at the
moment it is asked, and its answer arrives when the test releases it. The
clock is the test's, so "arrived before / after the question was sent" is
exact rather than a matter of scheduling.
"""

from __future__ import annotations

import asyncio

import pytest

from outlast.core.errors import MatrixError
from outlast.log.client import LogUnavailable
from outlast.view.barrier import Barrier
from outlast.view.store import Positions, open_db

STREAM = "OUTLAST_USERS"


class Leader:
    """A stream leader whose answers the test lets through one at a time."""

    def __init__(self, clock: list[float]) -> None:
        self.clock = clock
        self.last_seq = 0
        self.asked_at: list[float] = []
        self.pending: list[asyncio.Future[None]] = []
        self.hold = True
        self.fail = False

    async def ask(self, stream: str) -> int:
        self.asked_at.append(self.clock[0])
        if self.fail:
            raise LogUnavailable("no leader")
        answer = self.last_seq  # what the leader has committed when it is asked
        if self.hold:
            gate = asyncio.get_running_loop().create_future()
            self.pending.append(gate)
            await gate
        return answer

    def release(self) -> None:
        gate = self.pending.pop(0)
        gate.set_result(None)


def barrier_for(leader: Leader, clock: list[float], **kwargs: float | bool) -> Barrier:
    positions = Positions(open_db(":memory:", [STREAM]))
    return Barrier(leader.ask, positions, clock=lambda: clock[0], **kwargs)  # type: ignore[arg-type]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_request_never_uses_an_answer_to_a_question_sent_before_it_arrived() -> None:
    clock = [0.0]
    leader = Leader(clock)
    barrier = barrier_for(leader, clock)
    leader.last_seq = 4
    first = asyncio.create_task(barrier.wait_current([STREAM], arrived=0.0))
    await settle()
    assert leader.asked_at == [0.0]  # question 1 in flight; the leader is at 4
    # A logout commits at the leader (sequence 5) and is acknowledged at t=1;
    # the client's next request arrives here at t=2, while question 1 is still out.
    leader.last_seq = 5
    clock[0] = 2.0
    second = asyncio.create_task(barrier.wait_current([STREAM], arrived=2.0))
    await settle()
    leader.release()  # question 1 answers 4: good enough for the first request only
    await settle()
    assert leader.asked_at == [0.0, 2.0]  # a new question, sent after the second arrived
    barrier.positions.advance(STREAM, 4)
    await asyncio.wait_for(first, 1)
    leader.release()  # question 2 answers 5
    await settle()
    assert not second.done()  # the view has not applied the logout yet: keep waiting
    barrier.positions.advance(STREAM, 5)
    await asyncio.wait_for(second, 1)


async def test_concurrent_requests_share_one_question() -> None:
    clock = [10.0]
    leader = Leader(clock)
    barrier = barrier_for(leader, clock)
    leader.last_seq = 3
    barrier.positions.advance(STREAM, 3)
    waits = [asyncio.create_task(barrier.wait_current([STREAM], arrived=10.0)) for _ in range(200)]
    await settle()
    leader.release()
    await asyncio.wait_for(asyncio.gather(*waits), 1)
    assert len(leader.asked_at) == 1
    assert barrier.stats.questions == 1 and barrier.stats.shared == 199


async def test_an_answer_to_a_question_sent_after_arrival_is_reused_not_asked_again() -> None:
    clock = [0.0]
    leader = Leader(clock)
    leader.hold = False
    barrier = barrier_for(leader, clock)
    await barrier.wait_current([STREAM], arrived=0.0)  # the read route's wait
    await barrier.wait_current([STREAM], arrived=0.0)  # then authentication: same request
    assert leader.asked_at == [0.0]
    clock[0] = 0.5
    await barrier.wait_current([STREAM], arrived=0.5)  # a later request asks again
    assert leader.asked_at == [0.0, 0.5]


async def test_without_a_provable_leader_the_request_is_refused_with_503_in_bounded_time() -> None:
    clock = [0.0]
    leader = Leader(clock)
    leader.fail = True
    positions = Positions(open_db(":memory:", [STREAM]))
    barrier = Barrier(leader.ask, positions, wait_seconds=0.3)  # the real clock
    started = asyncio.get_running_loop().time()
    with pytest.raises(MatrixError) as refused:
        await barrier.wait_current([STREAM])
    took = asyncio.get_running_loop().time() - started
    assert (refused.value.status, refused.value.errcode) == (503, "M_UNAVAILABLE")
    assert refused.value.headers["Retry-After"] == "1"
    assert 0.2 <= took < 2.0
    assert len(leader.asked_at) > 1  # it kept asking (an election may end) until the budget
    assert barrier.stats.refused == 1


async def test_a_view_that_does_not_reach_the_leaders_position_is_refused() -> None:
    clock = [0.0]
    leader = Leader(clock)
    leader.hold = False
    leader.last_seq = 10
    positions = Positions(open_db(":memory:", [STREAM]))
    positions.advance(STREAM, 3)
    barrier = Barrier(leader.ask, positions, wait_seconds=0.2)
    with pytest.raises(MatrixError) as refused:
        await barrier.wait_current([STREAM])
    assert refused.value.status == 503
    assert "not applied" in refused.value.error


async def test_switched_off_it_asks_nothing() -> None:
    clock = [0.0]
    leader = Leader(clock)
    barrier = barrier_for(leader, clock, enabled=False)
    await barrier.wait_current([STREAM])
    assert leader.asked_at == []


async def test_caught_up_reports_rather_than_raises_and_works_when_switched_off() -> None:
    leader = Leader([0.0])
    leader.hold = False
    leader.last_seq = 2
    positions = Positions(open_db(":memory:", [STREAM]))
    barrier = Barrier(leader.ask, positions, enabled=False)  # the real clock
    assert await barrier.caught_up(STREAM, 0.1) is False  # view at 0, leader at 2
    positions.advance(STREAM, 2)
    assert await barrier.caught_up(STREAM, 0.1) is True
    leader.fail = True
    assert await barrier.caught_up(STREAM, 0.2) is False


async def test_when_all_questions_are_out_a_request_waits_for_the_next_one() -> None:
    clock = [0.0]
    leader = Leader(clock)
    barrier = barrier_for(leader, clock, max_in_flight=2)
    leader.last_seq = 1
    waits = [asyncio.create_task(barrier.wait_current([STREAM], arrived=0.0))]
    await settle()
    clock[0], leader.last_seq = 1.0, 2
    waits.append(asyncio.create_task(barrier.wait_current([STREAM], arrived=1.0)))
    await settle()
    clock[0], leader.last_seq = 2.0, 3
    waits += [asyncio.create_task(barrier.wait_current([STREAM], arrived=2.0)) for _ in range(3)]
    await settle()
    assert leader.asked_at == [0.0, 1.0]  # two out; the later three wait for a third
    clock[0] = 3.0
    leader.release()
    await settle()
    assert leader.asked_at == [0.0, 1.0, 3.0]  # sent when the first came back
    barrier.positions.advance(STREAM, 3)
    leader.release()
    leader.release()
    await asyncio.wait_for(asyncio.gather(*waits), 1)
    assert barrier.stats.questions == 3
