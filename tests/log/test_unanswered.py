"""Publishes and leader questions that get no answer (a stream leader handing over)
are sent again, on a real nats-server (outlast.log.client, RESEND_AFTER and
ASK_AGAIN_AFTER).

A plain subscriber on a stream's subject stands in for the leader that steps
down: it takes the first message and never answers it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from outlast.log.client import LogClient, LogUnavailable
from outlast.log.engine import NatsNode
from outlast.log.facts import RoomEvents

STREAM = "UNANSWERED_TEST"
SUBJECT = "unanswered.test"
FACT = RoomEvents(({"type": "m.room.message", "content": {"body": "hello"}},))


@pytest.fixture
async def log(node: NatsNode) -> AsyncIterator[LogClient]:
    client = LogClient([node.url], name="unanswered-test", publish_timeout=20.0)
    await client.connect()
    try:
        yield client
    finally:
        await client.close()


async def swallow_first_then_make_the_stream(log: LogClient) -> list[bytes]:
    """Until the first message arrives nobody answers on SUBJECT (but somebody
    listens, so it is no "no responders"); then the stream is made and answers."""
    seen: list[bytes] = []
    made = asyncio.Event()

    async def on_msg(msg: object) -> None:
        seen.append(getattr(msg, "data", b""))
        if not made.is_set():
            made.set()
            await log.nc.jetstream().add_stream(name=STREAM, subjects=[SUBJECT])

    await log.nc.subscribe(SUBJECT, cb=on_msg)
    return seen


async def test_an_unanswered_publish_with_a_msg_id_is_sent_again(log: LogClient) -> None:
    seen = await swallow_first_then_make_the_stream(log)
    # Sent once only, this would wait out the 20 s publish timeout.
    ack = await asyncio.wait_for(log.append(SUBJECT, FACT, msg_id="m-1"), 15)
    assert ack.seq == 1 and not ack.duplicate
    assert len(seen) >= 2  # the swallowed first send, then the one the stream stored
    info = await log.nc.jetstream().stream_info(STREAM)
    assert info.state.messages == 1
    # The same msg id again (a client's retry) finds the original.
    again = await log.append(SUBJECT, FACT, msg_id="m-1")
    assert again.seq == 1 and again.duplicate


async def test_an_unanswered_fenced_publish_is_not_sent_again(node: NatsNode) -> None:
    log = LogClient([node.url], name="unanswered-fence", publish_timeout=2.0)
    await log.connect()
    try:
        seen = await swallow_first_then_make_the_stream(log)
        with pytest.raises(LogUnavailable):
            await log.append(SUBJECT, FACT, expected_seq=0)
        assert len(seen) == 1
        info = await log.nc.jetstream().stream_info(STREAM)
        assert info.state.messages == 0
    finally:
        await log.close()


async def test_an_unanswered_question_to_a_leader_is_asked_again(log: LogClient) -> None:
    asked: list[str] = []

    async def first_lost(msg: object) -> None:
        asked.append(getattr(msg, "reply", ""))
        if len(asked) > 1:
            await log.nc.publish(getattr(msg, "reply", ""), b"answer")

    await log.nc.subscribe("question.test", cb=first_lost)
    sent, reply = await log._ask_leader("question.test", 15.0)
    assert reply.data == b"answer"
    assert len(asked) >= 2 and len(set(asked)) == len(asked)  # each question its own inbox
    assert sent > 0


async def test_a_question_nobody_answers_fails_within_its_timeout(log: LogClient) -> None:
    async def ignore(msg: object) -> None:
        return None

    await log.nc.subscribe("silent.test", cb=ignore)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        await log._ask_leader("silent.test", 1.0)
    assert loop.time() - started < 10  # bounded (generously: a busy machine)
