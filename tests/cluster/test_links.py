"""A relay with a delay: each direction is held back, bytes keep their order."""

from __future__ import annotations

import asyncio
import contextlib
import time

from outlast.cluster.links import Links
from outlast.cluster.plan import PortPicker


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def test_a_round_trip_through_a_delayed_relay_takes_twice_the_delay() -> None:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    target_port = server.sockets[0].getsockname()[1]
    links = Links(delay=0.05)
    relay = links.add("a", "b", PortPicker()(), target_port)
    await links.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.listen_port)
        for _ in range(3):
            started = time.monotonic()
            writer.write(b"ping")
            assert await asyncio.wait_for(reader.readexactly(4), 10) == b"ping"
            assert time.monotonic() - started >= 0.1  # 50 ms there, 50 ms back
        writer.close()
    finally:
        await links.stop()
        server.close()


async def test_jitter_never_reorders_the_bytes_of_a_connection() -> None:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    target_port = server.sockets[0].getsockname()[1]
    links = Links(delay=0.002, jitter=0.02)
    relay = links.add("a", "b", PortPicker()(), target_port)
    await links.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.listen_port)
        sent = b"".join(f"{i:06d}".encode() for i in range(2000))
        for offset in range(0, len(sent), 600):
            writer.write(sent[offset : offset + 600])
            await writer.drain()
            await asyncio.sleep(0.001)  # separate chunks, each with its own jitter
        got = await asyncio.wait_for(reader.readexactly(len(sent)), 30)
        assert got == sent
        writer.close()
    finally:
        await links.stop()
        server.close()


async def test_a_cut_relay_refuses_and_a_healed_one_delays_again() -> None:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    target_port = server.sockets[0].getsockname()[1]
    links = Links(delay=0.03)
    relay = links.add("a", "b", PortPicker()(), target_port)
    await links.start()
    try:
        links.isolate("a")
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.listen_port)
        with contextlib.suppress(ConnectionResetError):  # aborted at once: EOF or reset
            assert await asyncio.wait_for(reader.read(10), 10) == b""
        writer.close()
        links.isolate("a", cut=False)
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.listen_port)
        started = time.monotonic()
        writer.write(b"x")
        assert await asyncio.wait_for(reader.readexactly(1), 10) == b"x"
        assert time.monotonic() - started >= 0.06
        writer.close()
    finally:
        await links.stop()
        server.close()


async def test_a_spike_delays_only_the_sites_links_and_lifting_it_keeps_the_order() -> None:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    target_port = server.sockets[0].getsockname()[1]
    links = Links()
    spiked = links.add("a", "b", PortPicker()(), target_port)
    other = links.add("b", "c", PortPicker()(), target_port)
    await links.start()
    try:
        assert sorted(links.set_delay("a", 0.15)) == [("a", "b")]
        assert (spiked.delay, other.delay) == (0.15, 0.0)
        reader, writer = await asyncio.open_connection("127.0.0.1", spiked.listen_port)
        started = time.monotonic()
        writer.write(b"ping")
        assert await asyncio.wait_for(reader.readexactly(4), 10) == b"ping"
        assert time.monotonic() - started >= 0.3  # 150 ms there, 150 ms back
        # Lifted while bytes are held: the later ones must not overtake them.
        sent = b"".join(f"{i:06d}".encode() for i in range(500))
        writer.write(sent[:1500])
        await writer.drain()
        await asyncio.sleep(0.02)
        links.set_delay("a", 0.0)
        assert spiked.delay == 0.0
        writer.write(sent[1500:])
        await writer.drain()
        assert await asyncio.wait_for(reader.readexactly(len(sent)), 10) == sent
        writer.close()
    finally:
        await links.stop()
        server.close()
