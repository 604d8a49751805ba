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
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from outlast.log.names import health_subject
from outlast.service.context import SiteContext
from outlast.view.projector import Projector

CACHE_SECONDS = 0.3


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

    async def report(self) -> dict[str, Any]:
        async with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] < CACHE_SECONDS:
                return self._cached[1]
            report = await self._measure()
            self._cached = (time.monotonic(), report)
            return report

    async def _measure(self) -> dict[str, Any]:
        config = self.ctx.config
        connected = self.ctx.log.connected
        peers = await self._route_peers() if connected else None
        needed = config.log.replicas // 2
        quorum = connected and (needed == 0 or (peers is not None and len(peers) >= needed))
        # Cut off from a quorum, the probe and every stream lookup could only time out
        # (seconds in all), while the front door gives a check 500 ms: answer at once.
        probe = quorum and await self._probe()
        lag = await self._view_lag() if quorum else {}
        behind = sum(lag.values())
        stalled = behind > 0 and (
            time.monotonic() - self.projector.last_applied_at > config.view.max_lag_seconds
        )
        if not quorum:
            self._rejoining = True
        elif self._rejoining and await self._caught_up():
            self._rejoining = False
        return {
            "ready": bool(quorum and not stalled and not self._rejoining),
            "catching_up": self._rejoining,
            "site": config.server.site,
            "log_connected": connected,
            "quorum_reachable": quorum,
            "route_peers": sorted(peers) if peers is not None else None,
            "commit_probe": probe,
            "view_lag": behind,
            "view_stalled": stalled,
            "sync_waiters": self.ctx.notifier.waiting(),
        }

    async def _route_peers(self) -> set[str] | None:
        """Names of the other nodes the local node has routes to (from its monitor port)."""
        url = self.ctx.config.log.monitor_url
        if not url:
            return set() if self.ctx.config.log.replicas == 1 else None
        try:
            timeout = aiohttp.ClientTimeout(total=1.0)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                async with session.get(url.rstrip("/") + "/routez") as resp:
                    data = await resp.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, OSError):
            return None
        return {str(r.get("remote_name") or r.get("remote_id")) for r in data.get("routes") or []}

    async def _probe(self) -> bool:
        site = self.ctx.config.server.site
        try:
            await asyncio.wait_for(
                self.ctx.log.append(health_subject(site), {"op": "probe", "site": site}), 1.0
            )
        except Exception:  # noqa: BLE001 - informational
            return False
        return True

    async def _caught_up(self) -> bool:
        """Every stream has a known leader and the view has applied what it committed."""
        for name in self.ctx.stream_names:
            try:
                info = await asyncio.wait_for(self.ctx.log.js.stream_info(name), 1.0)
            except Exception:  # noqa: BLE001 - no answer: not shown to be caught up
                return False
            if info.cluster is not None and not info.cluster.leader:
                return False  # a replica's own (possibly stale) state, not the tail
            if not await self.ctx.positions.wait_for(name, int(info.state.last_seq or 0), 0.2):
                return False
        return True

    async def _view_lag(self) -> dict[str, int]:
        lag: dict[str, int] = {}
        for name in self.ctx.stream_names:
            try:
                last = await asyncio.wait_for(self.ctx.log.last_seq(name), 1.0)
            except Exception:  # noqa: BLE001 - a stream electing a leader: lag unknown
                continue
            lag[name] = max(0, last - self.ctx.positions.applied(name))
        return lag
