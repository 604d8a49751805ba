"""The site dashboard's status: computed only from state every site holds.

Any one site may be gone, so nothing here asks another site anything:

- **Sites** come from OUTLAST_HEALTH, where every worker publishes its
  self-report about once a second (outlast/ops/health.py) and the stream
  keeps the last message per site. Reports are read with JetStream's *direct
  get*, which any replica answers (the local node included), so they stay
  readable while the stream elects a leader. A report older than
  ``STALE_SECONDS`` or one that says not ready marks its site unhealthy.
- **Nodes and leaders** come from the stream info of every stream (the
  Matrix streams, the control streams and the media object store): the
  leader, and per replica whether it is current, its lag, when it was last
  active and whether it is offline. Node names are ``<site>-<generation>``.
- **Drills** are the records on OUTLAST_DRILLS (outlast/log/records.py),
  read incrementally and kept in memory (records never change).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from outlast.context import SiteContext
from outlast.log.client import LogUnavailable, StreamMissing
from outlast.ops.health import Health

log = logging.getLogger(__name__)

STALE_SECONDS = 5.0  # a site whose last self-report is older than this is not healthy
SILENT_REPLICA_SECONDS = 5.0  # a replica the leader has not heard from for this long is offline
LOOKUP_TIMEOUT = 1.5  # per JetStream request; a stream without a leader must not stall the page
STATUS_CACHE_SECONDS = 0.5  # many open dashboards cost one computation per half second
DRILLS_SHOWN = 20
MAX_SITES = 64
MAX_REPORTS = MAX_SITES * 8  # one per worker subject, old generations included
FORGET_SECONDS = 60.0  # a worker silent this long no longer counts for its site
MAX_DRILLS_READ_PER_CALL = 200

_NO_ANSWER = (TimeoutError, LogUnavailable)


def site_of_node(node: str, known: dict[str, str] | None = None) -> str:
    """``a-2`` -> ``a``: a node's site, from a self-report if one names it, else its name."""
    if known and node in known:
        return known[node]
    return node.rsplit("-", 1)[0] if "-" in node else node


def drill_summary(seq: int, record: dict[str, Any]) -> dict[str, Any]:
    """What the page needs of a drill record: its verdict and its chart's data."""
    rebuild = record.get("rebuild") or None
    return {
        "seq": seq,
        "id": record.get("id"),
        "started": record.get("started"),
        "fault": record.get("fault"),
        "site": record.get("site"),
        "fault_at_s": record.get("fault_at_s"),
        "recovered_at_s": record.get("recovered_at_s"),
        "load": record.get("load") or {},
        "counters": record.get("counters") or {},
        "verdict": record.get("verdict") or {},
        "write_gap": record.get("write_gap") or None,
        "acks_per_second_by_site": record.get("acks_per_second_by_site") or {},
        "rebuild": None
        if not rebuild
        else {k: rebuild.get(k) for k in ("site", "node", "seconds", "identical")},
        "nats_server_version": record.get("nats_server_version"),
    }


class Dashboard:
    def __init__(self, ctx: SiteContext, health: Health | None) -> None:
        self.ctx = ctx
        self.health = health
        self._drills: dict[int, dict[str, Any]] = {}
        self._drill_next = 1
        self._cached: tuple[float, dict[str, Any]] | None = None
        self._lock = asyncio.Lock()

    @property
    def site(self) -> str:
        return self.ctx.config.server.site

    def stream_names(self) -> list[str]:
        names = self.ctx.names
        control = [s.name for s in names.control_streams()]
        return [*self.ctx.stream_names, *control, f"OBJ_{names.media_bucket}"]

    async def status(self) -> dict[str, Any]:
        async with self._lock:
            now = self.ctx.clock.monotonic()
            if self._cached is not None and now - self._cached[0] < STATUS_CACHE_SECONDS:
                return self._cached[1]
            status = await self._compute()
            self._cached = (self.ctx.clock.monotonic(), status)
            return status

    async def _compute(self) -> dict[str, Any]:
        reports, streams, drills = await asyncio.gather(
            self._reports(), self._streams(), self._read_drills()
        )
        node_sites = {str(r["node"]): str(r["site"]) for r in reports.values() if r.get("node")}
        for stream in streams:
            if stream.get("leader"):
                stream["leader_site"] = site_of_node(stream["leader"], node_sites)
            for replica in stream.get("replicas", []):
                replica["site"] = site_of_node(replica["name"], node_sites)
        nodes = self._nodes(streams, node_sites)
        health_name = self.ctx.names.health_stream
        health_stream = next((s for s in streams if s["name"] == health_name), None)
        health_electing = health_stream is None or not health_stream.get("leader")
        sites = self._sites(reports, nodes, health_electing)
        healthy = [s for s in sites if s["state"] == "healthy"]
        return {
            "served_by": self.site,
            "server_name": self.ctx.server_name,
            "generated_at": self.ctx.clock.time(),
            "stale_after_seconds": STALE_SECONDS,
            "summary": {
                "sites": len(sites),
                "healthy_sites": len(healthy),
                "streams": len(streams),
                "streams_without_leader": sum(
                    1 for s in streams if not s.get("leader") and not s.get("missing")
                ),
                "write_rate": round(sum(float(s.get("write_rate") or 0) for s in healthy), 2),
            },
            "sites": sites,
            "nodes": nodes,
            "streams": streams,
            "drills": drills,
            "metrics": [
                {"site": self.site, "url": "/_outlast/metrics", "local": True},
                *(
                    {"site": s["name"], "url": s["url"] + "/_outlast/metrics", "local": False}
                    for s in sites
                    if s.get("url") and s["name"] != self.site
                ),
            ],
        }

    # --- sites -----------------------------------------------------------------

    async def _reports(self) -> dict[str, dict[str, Any]]:
        """The latest self-report of every site (its workers' merged), by site name."""
        by_site: dict[str, dict[str, dict[str, Any]]] = {}
        seq = 1
        names = self.ctx.names
        try:
            for _ in range(MAX_REPORTS):
                msg = await asyncio.wait_for(
                    self.ctx.log.next_message(names.health_stream, seq, names.health_wildcard),
                    LOOKUP_TIMEOUT,
                )
                if msg is None:
                    break  # read past the last report
                seq = msg.seq + 1
                try:
                    data = json.loads(msg.data or b"{}")
                except ValueError:
                    continue
                site = data.get("site")
                if isinstance(site, str) and site and isinstance(data, dict):
                    by_site.setdefault(site, {})[msg.subject] = data
        except _NO_ANSWER:
            log.debug("health reports unavailable", exc_info=True)
        except Exception:  # the page shows what it has
            log.warning("reading health reports failed", exc_info=True)
        own = self.health.last_report if self.health is not None else None
        if own is not None:
            # This worker's newest measurement may not have reached the log yet.
            key = self.ctx.names.health_subject(self.site, str(own.get("worker_key") or ""))
            stored = by_site.setdefault(self.site, {}).get(key)
            if stored is None or float(stored.get("time") or 0) <= float(own.get("time") or 0):
                by_site[self.site][key] = own
        now = self.ctx.clock.time()
        return {site: merge_worker_reports(list(r.values()), now) for site, r in by_site.items()}

    def _sites(
        self, reports: dict[str, dict[str, Any]], nodes: list[dict[str, Any]], health_electing: bool
    ) -> list[dict[str, Any]]:
        now = self.ctx.clock.time()
        names = set(reports) | {n["site"] for n in nodes}
        out = []
        for name in sorted(names):
            report = reports.get(name) or {}
            site_nodes = [n for n in nodes if n["site"] == name]
            stamp = report.get("time")
            age = (
                round(max(0.0, now - float(stamp)), 1) if isinstance(stamp, (int, float)) else None
            )
            fresh = age is not None and age <= STALE_SECONDS
            if fresh and report.get("ready"):
                state, reason = "healthy", "reporting, ready"
            elif fresh:
                state = "not_ready"
                if not report.get("quorum_reachable", True):
                    reason = "cut off from a quorum of sites"
                elif report.get("catching_up"):
                    reason = "catching up with the log"
                elif report.get("view_stalled"):
                    reason = "view stalled behind the log"
                else:
                    reason = "reports not ready"
            elif health_electing and age is not None and name != self.site:
                # Nobody can publish reports while the health stream elects a leader.
                state, reason = "unknown", f"no report for {age:.0f} s (health stream electing)"
            elif age is None:
                state, reason = "unknown", "has never reported"
            else:
                state, reason = "down", f"no report for {age:.0f} s"
            offline = [n["name"] for n in site_nodes if n["offline"]]
            if offline and state == "healthy":
                state, reason = "not_ready", f"node {', '.join(offline)} offline"
            elif offline:
                reason += f"; node {', '.join(offline)} offline"
            out.append(
                {
                    "name": name,
                    "state": state,
                    "healthy": state == "healthy",
                    "reason": reason,
                    "local": name == self.site,
                    "report_age_seconds": age,
                    "ready": bool(report.get("ready")),
                    "node": report.get("node") or (site_nodes[0]["name"] if site_nodes else ""),
                    "nodes": [n["name"] for n in site_nodes],
                    "leads": sum(len(n["leads"]) for n in site_nodes),
                    "view_lag": report.get("view_lag"),
                    "view_lag_by_stream": report.get("view_lag_by_stream") or {},
                    "write_rate": report.get("write_rate"),
                    "sync_waiters": report.get("sync_waiters"),
                    "workers": report.get("workers") or [],
                    "route_peers": report.get("route_peers"),
                    "url": report.get("url") or "",
                    "reported_at": stamp,
                }
            )
        return out

    # --- streams and nodes ---------------------------------------------------------

    async def _streams(self) -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(self._stream(n) for n in self.stream_names())))

    async def _stream(self, name: str) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": name, "leader": "", "leader_site": "", "replicas": []}
        try:
            info = await asyncio.wait_for(self.ctx.log.stream_state(name), LOOKUP_TIMEOUT)
        except StreamMissing:
            entry["missing"] = True
            entry["error"] = "not created yet"
            return entry
        except _NO_ANSWER:
            entry["error"] = "no answer (electing a leader?)"
            return entry
        except Exception as exc:  # noqa: BLE001 - shown, not fatal
            entry["error"] = f"{type(exc).__name__}"
            return entry
        entry["messages"] = info.messages
        entry["last_seq"] = info.last_seq
        entry["bytes"] = info.bytes
        if info.clustered:
            entry["leader"] = info.leader
            entry["replicas"] = []
            for peer in info.replicas:
                active = peer.active_seconds
                entry["replicas"].append(
                    {
                        "name": peer.name,
                        "current": peer.current,
                        # The leader has not heard from it for seconds, or (a leader elected
                        # since) never: as good as offline, though JetStream may never flag it.
                        "offline": peer.offline
                        or active > SILENT_REPLICA_SECONDS
                        or (not peer.active_ns and not peer.current),
                        "lag": peer.lag,
                        "active_seconds": active,
                    }
                )
        applied = self.ctx.positions.applied(name) if name in self.ctx.stream_names else None
        if applied is not None:
            entry["view_lag"] = max(0, entry["last_seq"] - applied)
        return entry

    @staticmethod
    def _nodes(streams: list[dict[str, Any]], node_sites: dict[str, str]) -> list[dict[str, Any]]:
        nodes: dict[str, dict[str, Any]] = {}

        def node(name: str) -> dict[str, Any]:
            if name not in nodes:
                nodes[name] = {
                    "name": name,
                    "site": site_of_node(name, node_sites),
                    "leads": [],
                    "replica_of": 0,
                    "offline": False,
                    "seen_offline": 0,
                    "max_lag": 0,
                    "behind": 0,
                }
            return nodes[name]

        for stream in streams:
            if stream.get("leader"):
                node(stream["leader"])["leads"].append(stream["name"])
            for replica in stream.get("replicas", []):
                n = node(replica["name"])
                n["replica_of"] += 1
                n["max_lag"] = max(n["max_lag"], replica["lag"])
                if replica["offline"]:
                    n["seen_offline"] += 1
                if not replica["current"]:
                    n["behind"] += 1
        for n in nodes.values():
            # Offline: every leader that answered has lost it (a node leading anything is up).
            n["offline"] = (
                not n["leads"] and n["replica_of"] > 0 and n["seen_offline"] == n["replica_of"]
            )
            del n["seen_offline"]
        return sorted(nodes.values(), key=lambda n: (n["site"], n["name"]))

    # --- drills ------------------------------------------------------------------

    async def _read_drills(self) -> list[dict[str, Any]]:
        try:
            for _ in range(MAX_DRILLS_READ_PER_CALL):
                msg = await asyncio.wait_for(
                    self.ctx.log.next_message(
                        self.ctx.names.drills_stream,
                        self._drill_next,
                        self.ctx.names.drills_wildcard,
                    ),
                    LOOKUP_TIMEOUT,
                )
                if msg is None:
                    break
                seq = msg.seq
                self._drill_next = seq + 1
                try:
                    record = json.loads(msg.data or b"{}")
                except ValueError:
                    continue
                if isinstance(record, dict):
                    self._drills[seq] = drill_summary(seq, record)
        except _NO_ANSWER:
            log.debug("drill records unavailable", exc_info=True)
        except Exception:  # shown from what was read before
            log.warning("reading drill records failed", exc_info=True)
        newest = sorted(self._drills, reverse=True)[:DRILLS_SHOWN]
        for seq in [s for s in self._drills if s not in newest]:
            del self._drills[seq]
        return [self._drills[s] for s in newest]


def merge_worker_reports(reports: list[dict[str, Any]], now: float) -> dict[str, Any]:
    """One site's report from the latest report of each of its workers.

    The site is ready when every worker still reporting is; rates and parked
    long-polls add up over them. A worker silent for longer than
    ``FORGET_SECONDS`` (stopped, or from before a rebuild) is left out.
    """

    def age(report: dict[str, Any]) -> float:
        stamp = report.get("time")
        return now - float(stamp) if isinstance(stamp, (int, float)) else float("inf")

    recent = [r for r in reports if age(r) <= FORGET_SECONDS] or reports
    freshest = min(recent, key=age)
    fresh = [r for r in recent if age(r) <= STALE_SECONDS]
    not_ready = [r for r in fresh if not r.get("ready")]
    # A worker that is not ready explains the site's state (its flags say why).
    merged = dict(not_ready[0] if not_ready else freshest)
    merged["time"] = freshest.get("time")
    merged["ready"] = bool(fresh) and not not_ready
    if fresh:
        merged["write_rate"] = round(sum(float(r.get("write_rate") or 0) for r in fresh), 2)
        merged["sync_waiters"] = sum(int(r.get("sync_waiters") or 0) for r in fresh)
        merged["view_lag"] = max(int(r.get("view_lag") or 0) for r in fresh)
    merged["workers"] = [
        {
            "pid": r.get("worker"),
            "ready": bool(r.get("ready")),
            "report_age_seconds": round(max(0.0, age(r)), 1),
            "write_rate": r.get("write_rate"),
            "sync_waiters": r.get("sync_waiters"),
            "view_lag": r.get("view_lag"),
            "projects_view": r.get("projects_view"),
        }
        for r in sorted(recent, key=lambda r: str(r.get("worker")))
    ]
    return merged
