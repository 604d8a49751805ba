"""The WAN between local sites: one TCP relay per ordered pair of sites.

Node ``i`` reaches node ``j``'s cluster (route) port only through the relay
``i→j``. Cutting a site closes every relay to and from it and refuses new
connections, which is what a datacenter losing its inter-site links looks
like to JetStream: its routes drop, it cannot reach a quorum, while its own
clients (Outlast workers, users) can still reach it. Healing re-opens them
and the routes reconnect by themselves.

A relay in user space needs no root and no network namespace, so the same
fault works on a laptop, in CI and in a drill.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class Relay:
    source: str
    target: str
    listen_port: int
    target_port: int
    cut: bool = False
    server: asyncio.base_events.Server | None = None
    connections: set[asyncio.StreamWriter] = field(default_factory=set)

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", self.listen_port)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.target_port), 2
            )
        except (TimeoutError, OSError):
            writer.close()
            return
        self.connections.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while not self.cut:
                    data = await src.read(65536)
                    if not data:
                        break
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.connections.difference_update((writer, up_writer))

    def set_cut(self, cut: bool) -> None:
        self.cut = cut
        if cut:
            for conn in list(self.connections):
                with contextlib.suppress(Exception):
                    conn.transport.abort()
            self.connections.clear()

    async def stop(self) -> None:
        self.set_cut(True)
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)


class Links:
    """All relays of a cluster, addressed by (source site, target site)."""

    def __init__(self) -> None:
        self.relays: dict[tuple[str, str], Relay] = {}

    def add(self, source: str, target: str, listen_port: int, target_port: int) -> Relay:
        relay = Relay(source, target, listen_port, target_port)
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

    def isolated(self) -> list[str]:
        sites = {s for pair in self.relays for s in pair}
        return sorted(
            s for s in sites if all(r.cut for (a, b), r in self.relays.items() if s in (a, b))
        )

    async def stop(self) -> None:
        for relay in self.relays.values():
            await relay.stop()
