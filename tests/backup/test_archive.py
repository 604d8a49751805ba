"""Streams read out and written back sequence for sequence, holes included (real nats-server)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from outlast.backup.manifest import Cut, StreamEntry, parse_time, parse_until_seq
from outlast.log.archive import WRITE_INSTRUCTIONS, StreamWriter, create_stream, extent, read_stream
from outlast.log.client import LogClient
from tests.testrig import start_shared_nats


@pytest.fixture
async def two_logs(tmp_path: Path) -> AsyncIterator[tuple[LogClient, LogClient]]:
    nodes = [start_shared_nats(tmp_path / name) for name in ("old", "new")]
    logs = [LogClient([n.url], name="test") for n in nodes]
    try:
        for log in logs:
            await log.connect()
        yield logs[0], logs[1]
    finally:
        for log in logs:
            await log.close()
        for node in nodes:
            node.stop()


async def test_a_stream_with_holes_comes_back_at_the_same_sequences(
    two_logs: tuple[LogClient, LogClient],
) -> None:
    old, new = two_logs
    await old.js.add_stream(name="T_ONE", subjects=["t.>"])
    for i in range(1, 11):
        headers = {"Nats-Msg-Id": f"id-{i}"} if i % 2 else None
        await old.js.publish(f"t.s{i % 3}", f"m{i}".encode(), headers=headers)
    for seq in (1, 4, 5, 10):  # a leading hole, an inner one and a deleted tail
        await old.js.delete_msg("T_ONE", seq)
    source = await extent(old, "T_ONE")
    assert (source.first_seq, source.last_seq, source.messages) == (2, 10, 6)
    messages = [m async for m in read_stream(old, "T_ONE", source.last_seq)]
    assert [m.seq for m in messages] == [2, 3, 6, 7, 8, 9]
    assert messages[1].headers == {"Nats-Msg-Id": "id-3"} and messages[1].data == b"m3"

    await create_stream(new, source.config, replicas=1)
    writer = StreamWriter(new, "T_ONE", source.config)
    for msg in messages:
        await writer.write(msg)
    await writer.pad_to(source.last_seq)
    await writer.finish()
    restored = await extent(new, "T_ONE")
    assert (restored.last_seq, restored.messages) == (10, 6)
    again = [m async for m in read_stream(new, "T_ONE", restored.last_seq)]
    # Headers that instructed a write (the restore's own guard among them) aside,
    # every message is the original.
    assert [(m.seq, m.subject, m.data, described(m.headers)) for m in again] == [
        (m.seq, m.subject, m.data, m.headers) for m in messages
    ]
    assert again[0].headers["Nats-Expected-Last-Sequence"] == "1"
    # The next write lands where it would have landed on the original.
    ack = await new.js.publish("t.s0", b"next")
    assert ack.seq == 11


async def test_a_read_stops_at_the_backup_point(two_logs: tuple[LogClient, LogClient]) -> None:
    old, _ = two_logs
    await old.js.add_stream(name="T_TWO", subjects=["two.>"])
    for i in range(5):
        await old.js.publish("two.a", str(i).encode())
    point = (await extent(old, "T_TWO")).last_seq
    for i in range(5):  # writes after the backup point
        await old.js.publish("two.a", str(i).encode())
    assert await collect(old, "T_TWO", point) == [1, 2, 3, 4, 5]


async def collect(log: LogClient, stream: str, last: int) -> list[int]:
    return [m.seq async for m in read_stream(log, stream, last)]


def described(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k not in WRITE_INSTRUCTIONS}


def entry(name: str, last_seq: int) -> StreamEntry:
    return StreamEntry(name, "log", f"streams/{name}.jsonl", 1, last_seq, last_seq, 0, "", 0, 0)


def test_a_cut_by_sequence_keeps_each_named_stream_up_to_its_sequence() -> None:
    cut = Cut(until_seq=parse_until_seq("A=5, B=0", ["A", "B", "C"]))
    assert cut.keeps("A", 5, 0) and not cut.keeps("A", 6, 0)
    assert not cut.keeps("B", 1, 0)
    assert cut.keeps("C", 10**6, 0)
    assert cut.end(entry("A", 9), 5, True) == 5
    assert cut.end(entry("C", 9), 9, False) == 9


def test_a_cut_by_time_ends_streams_at_the_last_message_kept() -> None:
    until = parse_time("2026-01-01T00:00:10Z")
    assert until == parse_time("1767225610") == parse_time("2026-01-01T00:00:10")
    cut = Cut(until_ns=until)
    assert cut.keeps("A", 1, until) and not cut.keeps("A", 2, until + 1)
    assert cut.end(entry("A", 9), 4, True) == 4
    assert cut.end(entry("A", 9), 7, False) == 9  # nothing cut: the tail hole stays


@pytest.mark.parametrize("text", ["A", "A=x", "Z=3", ""])
def test_bad_until_seq_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_until_seq(text, ["A"])


def test_bad_until_time_is_refused() -> None:
    with pytest.raises(ValueError):
        parse_time("yesterday")
