"""The WAN between local sites: one TCP relay per ordered pair of sites.

Node ``i`` reaches node ``j``'s cluster (route) port only through the relay
``i→j``. Cutting a site closes every relay to and from it and refuses new
connections, which is what a datacenter losing its inter-site links looks
like to JetStream: its routes drop, it cannot reach a quorum, while its own
clients (Outlast workers, users) can still reach it. Healing re-opens them
and the routes reconnect by themselves.

A relay in user space needs no root and no network namespace, so the same
fault works on a laptop, in CI and in a drill.

A relay may also play the WAN's distance: with a delay, every chunk it reads is
held until its release time (now + delay + a random jitter, never earlier than
the chunk before it, so the byte order of a connection is kept) and only then
written on. Each direction is delayed on its own, so a round trip between two
sites takes at least twice the delay. `cluster up --netns` uses this (the kernel
here has no netem qdisc to do it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import cast

log = logging.getLogger(__name__)


class _Side(asyncio.Protocol):
    """One end of a relayed connection: what it receives goes out through its peer.

    Protocol callbacks rather than stream reader/writer tasks: every message
    replicated between sites crosses a relay, and this costs a fraction of
    the CPU. Back-pressure follows the peer: when the peer's send buffer is
    full, this side stops reading.
    """

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.transport: asyncio.Transport | None = None
        self.peer: _Side | None = None
        self.early: list[bytes] = []  # received before the peer was connected
        self.held: deque[tuple[float, bytes]] = deque()  # delayed chunks: (release, data)
        self.timer: asyncio.TimerHandle | None = None
        self.last_release = 0.0
        self.close_peer_when_sent = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport but behave as one.
        self.transport = cast(asyncio.Transport, transport)
        self.relay.connections.add(self.transport)

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is None or peer.transport is None:
            self.early.append(data)
        elif self.relay.delay > 0 or self.relay.jitter > 0 or self.held:
            # Still holding chunks from a delay just lifted: these wait behind them.
            self.hold(data)
        else:
            peer.transport.write(data)

    def hold(self, data: bytes) -> None:
        """Send ``data`` on at its release time, after everything held before it.

        Release times are on the monotonic clock, not the loop's: uvloop's clock
        ticks in cached milliseconds and would let a chunk out up to one early.
        """
        release = max(time.monotonic() + self.relay.one_way(), self.last_release)
        self.last_release = release
        self.held.append((release, data))
        if self.timer is None:
            self._wake_at(release)

    def _wake_at(self, release: float) -> None:
        delay = max(0.0, release - time.monotonic())
        self.timer = asyncio.get_running_loop().call_later(delay, self.release)

    def release(self) -> None:
        self.timer = None
        peer = self.peer.transport if self.peer is not None else None
        now = time.monotonic()
        while self.held and self.held[0][0] <= now:
            _, data = self.held.popleft()
            if peer is not None and not peer.is_closing():
                peer.write(data)
        if self.held:
            self._wake_at(self.held[0][0])  # woken early: wait again, never send early
        elif self.close_peer_when_sent and peer is not None:
            peer.close()

    def drop_held(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.held.clear()

    def eof_received(self) -> bool:
        return False  # close this side; connection_lost closes the peer

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.relay.connections.discard(self.transport)
        peer = self.peer
        if peer is not None:
            peer.drop_held()  # nothing can be sent to this side any more
        if self.held and not self.relay.cut:
            self.close_peer_when_sent = True  # what this side sent still arrives, late
        elif peer is not None and peer.transport is not None:
            self.drop_held()
            peer.transport.close()

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()

    def join(self, peer: _Side) -> None:
        self.peer, peer.peer = peer, self
        for src, dst in ((self, peer), (peer, self)):
            if dst.transport is not None:
                for data in src.early:  # what arrived while dialling is delayed too
                    src.data_received(data)
            src.early.clear()


class _Inbound(_Side):
    """The side a node dialled: on arrival, dial the target and join the two."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.relay.dial(self)


@dataclass
class Relay:
    source: str
    target: str
    listen_port: int
    target_port: int
    listen_host: str = "127.0.0.1"
    target_host: str = "127.0.0.1"
    delay: float = 0.0  # seconds added to each direction
    jitter: float = 0.0  # up to this many seconds more, at random per chunk
    cut: bool = False
    server: asyncio.base_events.Server | None = None
    connections: set[asyncio.Transport] = field(default_factory=set)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(self._inbound, self.listen_host, self.listen_port)

    def one_way(self) -> float:
        return self.delay + (random.uniform(0, self.jitter) if self.jitter > 0 else 0.0)

    def _inbound(self) -> _Side:
        return _Inbound(self)

    def dial(self, inbound: _Side) -> None:
        task = asyncio.get_running_loop().create_task(self._connect(inbound))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, inbound: _Side) -> None:
        transport = inbound.transport
        if transport is None:
            return
        if self.cut:
            transport.abort()
            return
        transport.pause_reading()
        loop = asyncio.get_running_loop()
        try:
            _, outbound = await asyncio.wait_for(
                loop.create_connection(lambda: _Side(self), self.target_host, self.target_port),
                2,
            )
        except (TimeoutError, OSError):
            transport.abort()
            return
        if self.cut or transport.is_closing():
            transport.abort()
            if outbound.transport is not None:
                outbound.transport.abort()
            return
        inbound.join(outbound)
        transport.resume_reading()

    def set_cut(self, cut: bool) -> None:
        self.cut = cut
        if cut:
            for conn in list(self.connections):
                with contextlib.suppress(Exception):
                    conn.abort()
            self.connections.clear()

    async def stop(self) -> None:
        self.set_cut(True)
        for task in list(self._tasks):
            task.cancel()
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)


class Links:
    """All relays of a cluster, addressed by (source site, target site)."""

    def __init__(self, delay: float = 0.0, jitter: float = 0.0) -> None:
        self.relays: dict[tuple[str, str], Relay] = {}
        self.delay = delay
        self.jitter = jitter

    def add(
        self,
        source: str,
        target: str,
        listen_port: int,
        target_port: int,
        listen_host: str = "127.0.0.1",
        target_host: str = "127.0.0.1",
    ) -> Relay:
        relay = Relay(
            source,
            target,
            listen_port,
            target_port,
            listen_host,
            target_host,
            delay=self.delay,
            jitter=self.jitter,
        )
        self.relays[(source, target)] = relay
        return relay

    async def start(self) -> None:
        for relay in self.relays.values():
            await relay.start()

    def retarget(self, target: str, target_port: int) -> None:
        """A rebuilt site's node listens on a new port; relays to it follow."""
        for relay in self.relays.values():
            if relay.target == target:
                relay.target_port = target_port
                relay.set_cut(relay.cut)

    def isolate(self, site: str, cut: bool = True) -> None:
        for (source, target), relay in self.relays.items():
            if site in (source, target):
                relay.set_cut(cut)
        log.info("links of site %s %s", site, "cut" if cut else "healed")

    def set_delay(self, site: str, extra: float) -> list[tuple[str, str]]:
        """Add ``extra`` seconds (0: none) to every relay to and from ``site``, on top
        of the cluster's own delay: a latency spike on that site's WAN links. Chunks
        already held keep their release time; later ones queue behind them."""
        touched = []
        for (source, target), relay in self.relays.items():
            if site in (source, target):
                relay.delay = self.delay + extra
                touched.append((source, target))
        log.info("links of site %s: %.0f ms extra delay", site, extra * 1000)
        return touched

    def isolated(self) -> list[str]:
        sites = {s for pair in self.relays for s in pair}
        return sorted(
            s for s in sites if all(r.cut for (a, b), r in self.relays.items() if s in (a, b))
        )

    async def stop(self) -> None:
        for relay in self.relays.values():
            await relay.stop()
