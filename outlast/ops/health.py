"""Is this site fit to take traffic? The answer the front door routes by.

Ready means: connected to the site's JetStream node, that node has routes to
a majority of the cluster's sites (so commits can reach a quorum), and the
view is not stalled behind the log. At start and after losing that quorum
(a partition), the site must also show its view has applied every stream's
tail as the stream's leader reports it before it takes traffic again.

Why routes and not a probe write: a probe write goes through one more Raft
group whose leader may sit in the lost site; while it re-elects (4–9 s) every
surviving site would look unhealthy and the front door would have nowhere to
send anyone, although the room streams had already elected new leaders. An
isolated site, by contrast, loses its routes at once (or within the node's
route ping interval on a silent WAN) and is drained. The probe still runs
and is reported as ``commit_probe`` for operators.

The probe is also the site's self-report: it carries the report (site, node,
ready, view lag, sync waiters, write rate, time) to the site's subject of
OUTLAST_HEALTH, which keeps the last message per subject and is replicated to
every site. Each worker publishes it about once a second on a timer (not only
when the front door asks), so any site's dashboard can tell which sites are
alive from state it holds itself (see outlast/ops/dashboard.py).

A worker told to drain (SIGUSR1, sent by ``outlast site drain`` before a
planned stop) answers not ready with ``draining: true`` from then on, so any
load balancer checking it stops sending new requests while those in flight
finish; the worker itself keeps serving until it is stopped.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections import deque
from pathlib import Path
from typing import Any

import aiohttp

from outlast.clock import Clock
from outlast.context import SiteContext
from outlast.log.facts import HealthProbe
from outlast.view.projector import Projector

log = logging.getLogger(__name__)

CACHE_SECONDS = 0.3
REPORT_INTERVAL = 1.0  # seconds between self-reports on the timer
# A worker that follows a shared view reports less often: the projecting worker
# of its site already reports every second, the dashboard counts a site alive
# while any of its workers' reports is fresh (younger than its 5 s), and the
# front door's checks measure on demand. Each report costs a stream-state
# request per stream and a JetStream write, in every worker.
FOLLOWER_REPORT_INTERVAL = 2.0
RATE_WINDOW = 10.0  # write rate: acknowledged appends per second over this window


class WriteRate:
    """Acknowledged appends of this worker per second over the last ``RATE_WINDOW`` s
    (health probes, on subjects starting with ``excluded``, not counted)."""

    def __init__(self, clock: Clock, excluded: str) -> None:
        self.clock = clock
        self.excluded = excluded
        self._acks: deque[float] = deque()
        self.started = clock.monotonic()

    def observe(self, subject: str, outcome: str) -> None:
        if outcome == "ok" and not subject.startswith(self.excluded):
            self._acks.append(self.clock.monotonic())
            if len(self._acks) > 1_000_000:
                self._acks.popleft()

    def per_second(self) -> float:
        now = self.clock.monotonic()
        while self._acks and self._acks[0] < now - RATE_WINDOW:
            self._acks.popleft()
        window = min(RATE_WINDOW, max(1.0, now - self.started))
        return round(len(self._acks) / window, 2)


class Health:
    def __init__(self, ctx: SiteContext, projector: Projector) -> None:
        self.ctx = ctx
        self.projector = projector
        self._cached: tuple[float, dict[str, Any]] | None = None
        self._lock = asyncio.Lock()
        # Set at start and whenever the site loses its quorum routes: before taking
        # traffic again it must show that its view has applied every stream's tail
        # as the stream's *leader* reports it. Right after a partition heals, the
        # node's own stale replica answers stream info (with no leader) and the
        # view looks current while it is still seconds behind: it would serve
        # stale reads and accept tokens revoked during the partition.
        self._rejoining = True
        self.clock = ctx.clock
        self.write_rate = WriteRate(ctx.clock, ctx.names.health_wildcard.removesuffix(">"))
        ctx.log.observers.append(self.write_rate.observe)
        # The latest measurement's view lag per stream (metrics read it) and report.
        self.last_lag: dict[str, int] = {}
        self.last_report: dict[str, Any] | None = None
        self._timer: asyncio.Task[None] | None = None
        self._stopping = False
        self._http: aiohttp.ClientSession | None = None
        # Which worker of the site this is, stable across its restarts: its view
        # file, and its number when workers share one (``--workers N``). Every
        # worker reports on its own subject, so a site with several workers shows
        # all of them, not the last to report.
        view = str(Path(ctx.config.view_path).resolve())
        if ctx.config.view.is_shared:
            view += f"#worker-{ctx.config.server.worker}"
        self.worker_key = hashlib.sha256(view.encode()).hexdigest()[:12]
        self.draining = False

    def drain(self) -> None:
        """From now on report not ready (a planned stop follows); never undone."""
        self.draining = True
        self._cached = None

    async def report(self) -> dict[str, Any]:
        async with self._lock:
            now = self.clock.monotonic()
            if self._cached is not None and now - self._cached[0] < CACHE_SECONDS:
                return self._cached[1]
            report = await self._measure()
            self._cached = (self.clock.monotonic(), report)
            return report

    async def _measure(self) -> dict[str, Any]:
        config = self.ctx.config
        connected = self.ctx.log.connected
        peers = await self._route_peers() if connected else None
        needed = config.log.replicas // 2
        quorum = connected and (needed == 0 or (peers is not None and len(peers) >= needed))
        # Cut off from a quorum, the probe and every stream lookup could only time out
        # (seconds in all), while the front door gives a check 500 ms: answer at once.
        lag = await self._view_lag() if quorum else {}
        if lag:
            self.last_lag = lag
        behind = sum(lag.values())
        stalled = behind > 0 and (
            self.clock.monotonic() - self.projector.last_applied_at > config.view.max_lag_seconds
        )
        if not quorum:
            self._rejoining = True
        elif self._rejoining and await self._caught_up():
            self._rejoining = False
        report: dict[str, Any] = {
            "ready": bool(quorum and not stalled and not self._rejoining and not self.draining),
            "draining": self.draining,
            "catching_up": self._rejoining,
            "site": config.server.site,
            "log_connected": connected,
            "quorum_reachable": quorum,
            "route_peers": sorted(peers) if peers is not None else None,
            "commit_probe": False,
            "view_lag": behind,
            "view_lag_by_stream": lag,
            "view_stalled": stalled,
            "sync_waiters": self.ctx.notifier.waiting(),
            "write_rate": self.write_rate.per_second(),
            "node": self._node_name(),
            "worker": os.getpid(),
            "worker_key": self.worker_key,
            # Of a view shared by several workers, only one projects (docs/scale.md).
            "projects_view": self.projector.owns,
            "url": self._public_url(),
            "time": self.clock.time(),
        }
        # Cut off from a quorum, the probe could only time out: nothing is published
        # and the other sites see this site's last report grow old.
        report["commit_probe"] = quorum and await self._probe(report)
        self.last_report = report
        return report

    def _node_name(self) -> str:
        return self.ctx.log.server_name

    def _public_url(self) -> str:
        server = self.ctx.config.server
        if server.public_baseurl:
            return server.public_baseurl.rstrip("/")
        host, _, port = server.listen.rpartition(":")
        if port == "0" or not host:
            return ""
        return f"http://{host}:{port}"

    async def run_reports(self) -> None:
        """Publish the self-report about once a second until stopped."""
        while not self._stopping:
            try:
                await self.report()
            except Exception:  # the next round tries again
                log.debug("self-report failed", exc_info=True)
            following = not self.projector.owns  # a shared view another worker projects
            await self.clock.sleep(FOLLOWER_REPORT_INTERVAL if following else REPORT_INTERVAL)

    async def start_reports(self) -> None:
        if self._timer is None:
            self._stopping = False
            self._timer = asyncio.create_task(self.run_reports(), name="outlast-self-report")

    async def stop_reports(self) -> None:
        # The flag as well as the cancellation: on Python 3.11 ``asyncio.wait_for``
        # can swallow a cancellation that arrives as its inner call completes.
        self._stopping = True
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
            await asyncio.wait({timer}, timeout=REPORT_INTERVAL + 3.0)
        http, self._http = self._http, None
        if http is not None:
            await http.close()

    async def _route_peers(self) -> set[str] | None:
        """Names of the other nodes the local node has routes to (from its monitor port)."""
        url = self.ctx.config.log.monitor_url
        if not url:
            return set() if self.ctx.config.log.replicas == 1 else None
        if self._http is None or self._http.closed:
            # One session for the worker's life (closed in stop_reports), not one
            # per measurement: each new session is a new connector and connection.
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1.0))
        try:
            async with self._http.get(url.rstrip("/") + "/routez") as resp:
                data = await resp.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError, OSError):
            return None
        return {str(r.get("remote_name") or r.get("remote_id")) for r in data.get("routes") or []}

    async def _probe(self, report: dict[str, Any]) -> bool:
        """A write to the site's health subject that carries the self-report."""
        site = self.ctx.config.server.site
        fact = HealthProbe(report)
        try:
            await asyncio.wait_for(
                self.ctx.log.append(self.ctx.names.health_subject(site, self.worker_key), fact), 1.0
            )
        except Exception:  # noqa: BLE001 - informational
            return False
        return True

    async def _caught_up(self) -> bool:
        """Every stream's leader is shown current (the read barrier's rule, so not
        a replica's own possibly stale copy) and the view has applied its tail.

        The rule is the barrier's because a ready site takes traffic, and every
        request then waits for the barrier: a site that cannot prove it is
        current yet (say a restarted node that answers for a young Raft group
        itself, see outlast/log/leader.py) would answer 503 to all of it.
        """
        for name in self.ctx.stream_names:
            try:
                last_seq = await asyncio.wait_for(self.ctx.log.leader_position(name), 1.5)
            except Exception:  # noqa: BLE001 - no answer: not shown to be caught up
                return False
            if not await self.ctx.positions.wait_for(name, last_seq, 0.2):
                return False
        return True

    async def _view_lag(self) -> dict[str, int]:
        """Every stream's leader asked at once: one slow leader (a site whose links lag)
        must cost the check one round trip, not one per stream it leads, or the front
        door's 500 ms check times out and drains every site."""

        async def last(name: str) -> int | None:
            try:
                return await asyncio.wait_for(self.ctx.log.last_seq(name), 1.0)
            except Exception:  # noqa: BLE001 - a stream electing a leader: lag unknown
                return None

        names = list(self.ctx.stream_names)
        answers = await asyncio.gather(*(last(name) for name in names))
        return {
            name: max(0, seq - self.ctx.positions.applied(name))
            for name, seq in zip(names, answers, strict=True)
            if seq is not None
        }
