"""Keep a node cut off from a quorum out of elections, so that its return costs none.

nats-server's Raft has no pre-vote: a node cut off from the others keeps
campaigning (every 4-9 s, each time one term higher). When its links heal,
the leaders of the groups it follows see that higher term and step down,
and every stream they led waits out a new election: a second write stall,
after the one the cut caused. A node that reaches fewer peers than a quorum
cannot win an election nor help commit anything, so stopping it costs
nothing that was not already lost. The guard kills (SIGKILL) a node that has
had routes to fewer than a quorum of its peers for ``GRACE`` seconds, and
starts it again once a quorum of peers answers on the route addresses the
node dials itself; restarted, the node rejoins as a follower at its old term.
Its site's workers keep running and reconnect by themselves. Only a node once
seen with a quorum is stopped: one that has just started is still forming its
routes (after a power-on of every site, none has any yet).

A parked node keeps a beacon on its route port, so that parked sites can find
each other. Without it, a cluster whose every node was parked never recovers:
with site A burned and B and C cut from each other, both B's and C's nodes are
parked; when the B-C link heals, B probes A (dead) and C (stopped: nothing
listens) and C likewise, and both wait for the other for ever. (A cut of every
site from every other ends the same way, with no site lost.) So while a node is
parked, a tiny process of its site (``Beacon``) listens on the node's own
cluster address and port, in the site's namespace with `--netns`, and answers
each connection with ``PARK`` instead of the node's ``INFO``. A probe counts a
peer that answers either: a peer that is parked but reachable comes back as
soon as it, too, counts a quorum. B and C then each count the other, make a
quorum of 2 of 3, and both restart; once both run, their routes form.

Why a beacon says no more than a node would: it binds the very address and
port the node binds, in the same namespace, so whatever keeps a route from the
node (a relay cut, an nft rule on the cluster port in either direction, a
dead veth) keeps the probe from the beacon too; a relay dialling a port where
nothing listens gets refused and drops the probe's connection, and dialling
the beacon it passes ``PARK`` on before closing. TCP needs packets both ways,
so a one-way cut stops probes and routes in both directions alike.

Where it can be wrong, and what that costs: the beacon says the peer's site
is reachable, not that its node will come back. The node may fail to start
(its disk), or, with five sites or more, the parked peer may itself count
fewer than a quorum (A reaches parked B and running C, B reaches only A: A
restarts, B stays parked). Then a node restarts into a minority, where it
cannot win an election nor commit (Raft's safety does not rest on the guard):
it campaigns and raises its term, the cost of having no guard, for as long as
that partition lasts; since its new process was never seen with a quorum, the
guard does not park it again until it has been. With three sites and
symmetric links a reachable parked peer also reaches the prober, so it counts
a quorum too and restarts. Against that, waiting for ``INFO`` alone leaves a
cluster with every node parked down until an operator starts one.

The beacon is part of its site: a fire kills it (it is in the site's pids),
starting the node again stops it first (``SiteProcesses.start_node``, whoever
starts it: the guard, a power-on, a rebuild, a restart), and so does stopping
the site or the supervisor; it dies with the supervisor (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import aiohttp

from outlast.cluster.plan import SitePlan
from outlast.log.engine import NatsNode, die_with_parent

log = logging.getLogger(__name__)

# Seconds cut off before the node is stopped. Its routes close ~2 s after a cut
# (ping_max 2 at one ping a second) and its first campaign can come ~3 s after
# the last heartbeat, so the stop must follow the close at once; a quarter second
# still rides out a route that one side drops and redials at once.
GRACE = 0.25
POLL = 0.25  # seconds between looks at every node
PROBE_TIMEOUT = 1.0
PROBE_EVERY = 1.0  # seconds between probes of a stopped node's peers (each logs an error there)
SILENT = 2.0  # seconds without a byte on a route (it pings every second): a dead link

# What a node's route port says first, and what a parked node's beacon says instead.
NODE_GREETING = "INFO"
PARKED_GREETING = "PARK"
GREETINGS = (NODE_GREETING, PARKED_GREETING)
BEACON_READY_TIMEOUT = 5.0

# Run inside a site's network namespace (`--netns`): print the first 4 bytes a route
# port answers (nothing when it refuses, resets or stays silent).
_PROBE = (
    "import socket,sys\n"
    "t=float(sys.argv[3])\n"
    "s=socket.create_connection((sys.argv[1],int(sys.argv[2])),timeout=t)\n"
    "s.settimeout(t)\n"
    "b=b''\n"
    "while len(b)<4:\n"
    "    c=s.recv(4-len(b))\n"
    "    if not c: break\n"
    "    b+=c\n"
    "sys.stdout.write(b.decode('ascii','replace'))\n"
)

# A parked node's beacon (run with the site's prefix): listen where the node listens,
# say ready, then answer every connection with the greeting and close it.
_BEACON = (
    "import socket,sys\n"
    "s=socket.create_server((sys.argv[1],int(sys.argv[2])),backlog=64)\n"
    "sys.stdout.write('ready\\n')\n"
    "sys.stdout.flush()\n"
    "g=sys.argv[3].encode()+b'\\r\\n'\n"
    "while True:\n"
    "    c,_=s.accept()\n"
    "    c.settimeout(1.0)\n"
    "    try:\n"
    "        c.sendall(g)\n"
    "    except OSError:\n"
    "        pass\n"
    "    c.close()\n"
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


async def route_greeting(
    host: str, port: int, prefix: Sequence[str] = (), timeout: float = PROBE_TIMEOUT
) -> str:
    """The first 4 bytes a route address answers, dialled as the node would dial it
    ("" when nothing answers)."""
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
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
            )
        except OSError:
            return ""
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout + 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return ""
        return out.decode("ascii", "replace") if proc.returncode == 0 else ""
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        first = await asyncio.wait_for(reader.readexactly(4), timeout)
        return first.decode("ascii", "replace")
    except (TimeoutError, OSError, asyncio.IncompleteReadError):
        return ""
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def route_answers(
    host: str, port: int, prefix: Sequence[str] = (), timeout: float = PROBE_TIMEOUT
) -> bool:
    """Does a peer answer on this route address: its node (INFO) or, parked, its beacon?"""
    return await route_greeting(host, port, prefix, timeout) in GREETINGS


class Beacon:
    """Says ``PARK`` on a parked node's route port (see the module docstring)."""

    def __init__(self, host: str, port: int, prefix: Sequence[str] = ()) -> None:
        self.host, self.port, self.prefix = host, port, list(prefix)
        self.process: subprocess.Popen[bytes] | None = None
        self.failure = ""

    def start(self) -> None:
        """Start it; call from the event loop's thread, whose exit PR_SET_PDEATHSIG
        ties the beacon to (a worker thread's would kill it early)."""
        self.process = subprocess.Popen(
            [*self.prefix, sys.executable, "-c", _BEACON, self.host, str(self.port),
             PARKED_GREETING],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=die_with_parent,
        )  # fmt: skip

    def ready(self, timeout: float = BEACON_READY_TIMEOUT) -> bool:
        """Block until it listens (True), or it fails to: False, it is stopped and
        ``failure`` says why (say, the port still in use)."""
        proc = self.process
        if proc is None or proc.stdout is None:
            return False
        readable, _, _ = select.select([proc.stdout], [], [], timeout)
        if readable and proc.stdout.readline().strip() == b"ready":
            return True
        self.stop()
        return False

    def stop(self) -> None:
        """Stop it and wait, so that its port is free for the node when this returns."""
        proc = self.process
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
        try:
            _, err = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate(timeout=5)
        lines = err.decode(errors="replace").strip().splitlines() if err else []
        self.failure = lines[-1] if lines else f"exited with {proc.returncode}"

    @property
    def pid(self) -> int | None:
        proc = self.process
        return proc.pid if proc is not None and proc.poll() is None else None


class SiteProcesses(Protocol):
    """What the guard needs of a site's processes (outlast/cluster/supervisor.py)."""

    node: NatsNode | None
    site: SitePlan

    def prefix(self) -> list[str]: ...

    def start_node(self) -> None: ...

    def start_beacon(self) -> Beacon: ...


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
        self.answers: dict[str, dict[str, str]] = {}  # site -> peer -> its last greeting

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
        """Do a quorum of peers answer, running (INFO) or parked (PARK)? A probe opens a
        route connection and closes it unauthenticated: a running peer logs an
        authentication error for each, hence one round per ``PROBE_EVERY``."""
        host, prefix = sp.site.gateway, sp.prefix()
        peers = list(sp.site.relay_ports)
        greetings = await asyncio.gather(
            *(route_greeting(host, sp.site.relay_ports[p], prefix) for p in peers)
        )
        self.answers[sp.site.name] = dict(zip(peers, greetings, strict=True))
        answered = sum(1 for g in greetings if g in GREETINGS)
        return not cut_off(answered, len(self.sites))

    async def park(self, name: str, sp: SiteProcesses, peers: int) -> None:
        node = sp.node
        assert node is not None
        log.warning("site %s: node reaches %d peer(s), no quorum: stopping it", name, peers)
        loop = asyncio.get_running_loop()
        # Killed, not terminated: a cut node can hand over nothing (it reaches no
        # quorum), and the second a graceful shutdown takes is time for a campaign.
        await loop.run_in_executor(None, node.kill)
        self.parked[name] = node
        self.since.pop(name, None)
        # On the loop's thread: the beacon's PR_SET_PDEATHSIG follows the thread that
        # started it.
        beacon = sp.start_beacon()
        if not await loop.run_in_executor(None, beacon.ready):
            log.warning(
                "site %s: no beacon on port %d (%s): parked peers will not count it",
                name, beacon.port, beacon.failure,
            )  # fmt: skip
        self.events.append({"site": name, "action": "parked", "at": time.time()})

    async def unpark(self, name: str, sp: SiteProcesses) -> None:
        answers = self.answers.get(name, {})
        log.warning(
            "site %s: a quorum of peers answers again (%s): starting its node",
            name, ", ".join(f"{p}: {g or '-'}" for p, g in sorted(answers.items())),
        )  # fmt: skip
        del self.parked[name]
        self.events.append({"site": name, "action": "starting", "at": time.time()})
        sp.start_node()  # stops the beacon first, freeing the port
        assert sp.node is not None
        await sp.node.wait_ready()
        self.events.append(
            {"site": name, "action": "restarted", "at": time.time(), "answers": answers}
        )
