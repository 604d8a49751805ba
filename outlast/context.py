"""What every service needs from its site: the log, the view, the clock and settings.

Infrastructure only: services get each other through their constructors
(outlast/site.py), never from here.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from outlast.clock import SYSTEM, Clock
from outlast.config import Config
from outlast.log.client import Ack, LogClient, LogUnavailable
from outlast.log.names import Names, StreamSpec
from outlast.view.notifier import Notifier
from outlast.view.state_cache import StateCache
from outlast.view.store import Positions

READ_YOUR_WRITES_TIMEOUT = 10.0


@dataclass
class SiteContext:
    config: Config
    log: LogClient
    conn: sqlite3.Connection
    positions: Positions
    notifier: Notifier
    state_cache: StateCache | None = None
    clock: Clock = SYSTEM

    def room_state(self, room_id: str) -> dict[tuple[str, str], dict[str, Any]]:
        """Current state of a room (cached; do not mutate the result)."""
        if self.state_cache is None:
            from outlast.view import queries

            return queries.current_state(self.conn, room_id)
        return self.state_cache.get(room_id)

    @property
    def server_name(self) -> str:
        return self.config.server.server_name

    @cached_property
    def names(self) -> Names:
        return names_of(self.config)

    @cached_property
    def streams(self) -> list[StreamSpec]:
        return self.names.streams()

    @cached_property
    def stream_names(self) -> list[str]:
        return [s.name for s in self.streams]

    async def applied(self, ack: Ack) -> None:
        """Read-your-writes: return once this site's view has applied ``ack``."""
        await self.positions.wait_for(ack.stream, ack.seq, READ_YOUR_WRITES_TIMEOUT)

    async def reach(self, positions: tuple[int, ...], timeout: float = 5.0) -> None:
        """Never answer a token-bearing request from a view older than the token.

        A client's token may come from another worker or site whose view was
        ahead of ours; waiting here keeps its reads monotonic.
        """
        for name, seq in zip(self.stream_names, positions, strict=False):
            if self.positions.applied(name) < seq:
                await self.positions.wait_for(name, seq, timeout)

    async def catch_up(self, stream: str, timeout: float = 1.0) -> bool:
        """Wait until the view has applied everything the log had committed just now.

        Used when a lookup misses and the miss may only mean this site's view
        has not yet applied a write made at another site (a fresh login there).
        """
        try:
            last = await self.log.last_seq(stream)
        except LogUnavailable:
            return False
        return await self.positions.wait_for(stream, last, timeout)

    def now_ms(self) -> int:
        """Milliseconds since the epoch on this site's clock."""
        return int(self.clock.time() * 1000)


def names_of(config: Config) -> Names:
    """The names of the deployment a configuration belongs to."""
    return Names(config.log.prefix, config.log.partitions)
