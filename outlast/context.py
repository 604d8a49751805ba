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
from outlast.log.client import Ack, LogClient
from outlast.log.names import Names, StreamSpec
from outlast.view.barrier import Barrier, Reads
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

    @cached_property
    def barrier(self) -> Barrier:
        """Reads and token checks wait here until the view is as current as the log."""
        return Barrier(
            self.log.leader_position,
            self.positions,
            enabled=self.config.consistency.read_barrier,
            wait_seconds=self.config.consistency.wait_seconds,
        )

    def read_streams(self, reads: Reads, room_id: str | None = None) -> list[str]:
        """The streams a read of kind ``reads`` answers from (for :attr:`barrier`)."""
        if Reads.EVERYTHING in reads:
            return list(self.stream_names)
        streams = [self.names.users_stream]
        if Reads.DIRECTORY in reads:
            streams.append(self.names.directory_stream)
        if Reads.ROOM in reads and room_id is not None:
            streams.append(self.names.room_subjects(room_id).stream)
        return streams

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

    async def make_current(self, stream: str) -> None:
        """Be as current on ``stream`` as the log is now, or answer 503.

        Before a refusal that a write made elsewhere a moment ago could change.
        """
        if self.barrier.enabled:
            await self.barrier.wait_current((stream,))
        else:
            await self.catch_up(stream)

    async def catch_up(self, stream: str, timeout: float = 1.0) -> bool:
        """Wait until the view has applied everything the log had committed just now.

        Used when a lookup misses and the miss may only mean this site's view
        has not yet applied a write made at another site (a fresh login there).
        Concurrent callers share one question to the stream's leader.
        """
        return await self.barrier.caught_up(stream, timeout)

    def now_ms(self) -> int:
        """Milliseconds since the epoch on this site's clock."""
        return int(self.clock.time() * 1000)


def names_of(config: Config) -> Names:
    """The names of the deployment a configuration belongs to."""
    return Names(config.log.prefix, config.log.partitions)
