"""Keep a node cut off from a quorum out of elections, so that its return costs none.

nats-server's Raft has no pre-vote: a node cut off from the others keeps
campaigning (every 4-9 s, each time one term higher). When its links heal,
the leaders of the groups it follows see that higher term and step down,
and every stream they led waits out a new election: a second write stall,
after the one the cut caused. A node that reaches fewer peers than a quorum
cannot win an election nor help commit anything, so stopping it costs
nothing that was not already lost. The guard stops (SIGTERM) a node that has
had routes to fewer than a quorum of its peers for ``GRACE`` seconds, and
starts it again once a quorum of peers answers on the route addresses the
node dials itself; restarted, the node rejoins as a follower at its old term.
Its site's workers keep running and reconnect by themselves. Only a node once
seen with a quorum is stopped: one that has just started is still forming its
routes (after a power-on of every site, none has any yet).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import aiohttp

from outlast.cluster.plan import SitePlan
from outlast.log.engine import NatsNode

log = logging.getLogger(__name__)

GRACE = 1.0  # seconds cut off before the node is stopped (its first campaign: 4 s at best)
POLL = 0.25  # seconds between looks at every node
PROBE_TIMEOUT = 1.0
PROBE_EVERY = 1.0  # seconds between probes of a stopped node's peers (each logs an error there)
SILENT = 2.0  # seconds without a byte on a route (it pings every second): a dead link

# Run inside a site's network namespace (`--netns`): exit 0 if a route port answers INFO.
_PROBE = (
    "import socket,sys\n"
    "s=socket.create_connection((sys.argv[1],int(sys.argv[2])),timeout=float(sys.argv[3]))\n"
    "s.settimeout(float(sys.argv[3]))\n"
    "sys.exit(0 if s.recv(4).startswith(b'INFO') else 1)\n"
)


def routed_peers(routez: Mapping[str, Any], now: datetime | None = None) -> set[str]:
    """The peers a node has a live route to (a pool holds several routes per peer).

    Routes ping every second, so one silent for ``SILENT`` seconds leads into a
    WAN that drops packets: nats-server only closes it after three missed pings.
    """
    now = now or datetime.now(UTC)
    peers = set()
    for route in routez.get("routes") or []:
        peer = route.get("remote_name") or route.get("remote_id")
        if not peer:
            continue
        with contextlib.suppress(TypeError, ValueError):
            last = datetime.fromisoformat(str(route["last_activity"]))
            if (now - last).total_seconds() > SILENT:
                continue
        peers.add(str(peer))
    return peers


def cut_off(peers: int, cluster_size: int) -> bool:
    """True when the node and the peers it reaches are fewer than a quorum."""
    return peers + 1 < cluster_size // 2 + 1


async def route_answers(
    host: str, port: int, prefix: Sequence[str] = (), timeout: float = PROBE_TIMEOUT
) -> bool:
    """Does a peer answer on this route address, as the node would dial it?"""
    if prefix:
        try:
            proc = await asyncio.create_subprocess_exec(
                *prefix,
                sys.executable,
                "-c",
                _PROBE,
                host,
                str(port),
                str(timeout),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
        except OSError:
            return False
        try:
            return await asyncio.wait_for(proc.wait(), timeout + 5) == 0
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return False
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        first = await asyncio.wait_for(reader.read(4), timeout)
        return first.startswith(b"INFO")
    except (TimeoutError, OSError):
        return False
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


class SiteProcesses(Protocol):
    """What the guard needs of a site's processes (outlast/cluster/supervisor.py)."""

    node: NatsNode | None
    site: SitePlan

    def prefix(self) -> list[str]: ...

    def start_node(self) -> None: ...


class QuorumGuard:
    """Stops the nodes cut off from a quorum and starts them again once it is back."""

    def __init__(self, sites: Mapping[str, SiteProcesses], busy: set[str]) -> None:
        self.sites = sites
        self.busy = busy  # sites another action owns: left alone
        self.parked: dict[str, NatsNode] = {}  # site -> the node the guard stopped
        self.since: dict[str, float] = {}
        self.probed: dict[str, float] = {}  # site -> when its peers were last probed
        # Node processes seen with a quorum: one still forming its routes after a start
        # is not cut off, so only these are ever stopped.
        self.whole: set[int] = set()
        self.events: list[dict[str, Any]] = []  # what the guard did, for tests and drills

    async def run(self, stopping: asyncio.Event) -> None:
        async with aiohttp.ClientSession() as session:
            while not stopping.is_set():
                for name in list(self.sites):
                    with contextlib.suppress(Exception):
                        await self.check(name, session)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stopping.wait(), POLL)

    async def check(self, name: str, session: aiohttp.ClientSession) -> None:
        sp = self.sites[name]
        if name in self.busy:
            self.since.pop(name, None)
            return
        parked = self.parked.get(name)
        if parked is not None:
            if sp.node is not parked:  # someone else restarted the site meanwhile
                del self.parked[name]
            elif time.monotonic() - self.probed.get(name, 0.0) >= PROBE_EVERY:
                self.probed[name] = time.monotonic()
                if await self.quorum_answers(sp):
                    await self.unpark(name, sp)
            return
        node = sp.node
        if node is None or node.process is None or node.process.poll() is not None:
            self.since.pop(name, None)
            return
        peers = await self.peers_of(sp, session)
        if peers is None or not cut_off(peers, len(self.sites)):
            if peers is not None:
                self.whole.add(node.process.pid)
            self.since.pop(name, None)
            return
        if node.process.pid not in self.whole:
            return
        first = self.since.setdefault(name, time.monotonic())
        if time.monotonic() - first >= GRACE:
            await self.park(name, sp, peers)

    async def peers_of(self, sp: SiteProcesses, session: aiohttp.ClientSession) -> int | None:
        """How many peers the node has routes to; None when it does not answer (frozen)."""
        try:
            async with session.get(
                sp.site.monitor_url + "/routez", timeout=aiohttp.ClientTimeout(total=2)
            ) as r:
                if r.status != 200:
                    return None
                return len(routed_peers(await r.json()))
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError):
            return None

    async def quorum_answers(self, sp: SiteProcesses) -> bool:
        """A probe opens a route connection and closes it unauthenticated: the peer
        logs an authentication error for each, hence one round per ``PROBE_EVERY``."""
        host, prefix = sp.site.gateway, sp.prefix()
        answers = await asyncio.gather(
            *(route_answers(host, port, prefix) for port in sp.site.relay_ports.values())
        )
        return not cut_off(sum(answers), len(self.sites))

    async def park(self, name: str, sp: SiteProcesses, peers: int) -> None:
        node = sp.node
        assert node is not None
        log.warning("site %s: node reaches %d peer(s), no quorum: stopping it", name, peers)
        await asyncio.get_running_loop().run_in_executor(None, node.stop)
        self.parked[name] = node
        self.since.pop(name, None)
        self.events.append({"site": name, "action": "parked", "at": time.time()})

    async def unpark(self, name: str, sp: SiteProcesses) -> None:
        log.warning("site %s: a quorum of peers answers again: starting its node", name)
        del self.parked[name]
        self.events.append({"site": name, "action": "starting", "at": time.time()})
        sp.start_node()
        assert sp.node is not None
        await sp.node.wait_ready()
        self.events.append({"site": name, "action": "restarted", "at": time.time()})
