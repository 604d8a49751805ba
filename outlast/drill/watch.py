"""What the cluster did while a drill's fault lasted and healed, as a timeline.

A partition's write stalls come from several places in turn: the stream leaders
at the cut site are re-elected elsewhere, the quorum guard stops the cut node,
the heal lets it back, the guard starts it, it catches its replicas up, its
workers turn healthy, the front door sends it requests again. The drill's
``long_waits`` place each client wait against a timeline (the same format as a
rolling restart's, ``[seconds after the fault, line]``); this watcher writes one
for faults the cluster undoes by itself, by polling what the cluster shows:
the supervisor's status (site states, the guard's actions), the front door's
view of each site, and the stream leaders and replicas a node reports.
A line is written when a state changes, so a poll interval (``EVERY``) bounds
how late a line can be.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from outlast.cluster.frontdoor import site_servers

EVERY = 0.25  # seconds between looks
TIMEOUT = 2.0  # a look that takes longer is skipped (a cut node does not answer)
# nats-server log lines the timeline shows: Raft leaders stepping down for a higher
# term, elections won, the node's own stop and start.
NODE_EVENTS = (
    "higher term",
    "new stream leader",
    "metadata leader",
    "Trapped",
    "Server is ready",
)
FAILED = (TimeoutError, aiohttp.ClientError, OSError, ValueError, KeyError)


class Watch:
    """Polls the cluster until stopped; ``timeline`` is what changed, and when."""

    def __init__(self, description: dict[str, Any], since: float, victim: str) -> None:
        self.description = description
        self.since = since  # the fault's monotonic time: lines are seconds after it
        self.victim = victim
        self.lines: list[tuple[float, str]] = []
        self._state: dict[str, Any] = {}
        # The newest guard event already on the timeline (its wall time): the status
        # lists only the last 50, so a position in that list would stop moving.
        self._guard_seen = 0.0
        # Guard events carry wall-clock times; the drill's clock is monotonic.
        self._wall_offset = time.time() - time.monotonic()
        self.groups: dict[str, str] = {}  # Raft group -> stream, to name them in log lines
        self._log_offsets = {
            str(p): p.stat().st_size
            for site in description["sites"]
            for p in Path(site["data_dir"]).glob("nats-*/nats.log")
        }

    @property
    def timeline(self) -> list[list[Any]]:
        return [[round(t - self.since, 3), line] for t, line in sorted(self.lines)]

    def mark(self, line: str, at: float | None = None) -> None:
        """A line the drill itself knows the time of (the cut, the heal)."""
        self.lines.append((time.monotonic() if at is None else at, line))

    def _changed(self, key: str, value: Any, line: str) -> None:
        if key in self._state and self._state[key] == value:
            return
        self._state[key] = value  # the first look's states are lines too: where it began
        self.lines.append((time.monotonic(), line))

    async def run(self, stop: asyncio.Event) -> None:
        timeout = aiohttp.ClientTimeout(total=TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not stop.is_set():
                for look in (self._status, self._front_door, self._streams):
                    with contextlib.suppress(*FAILED):
                        await look(session)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), EVERY)

    async def _status(self, session: aiohttp.ClientSession) -> None:
        async with session.get(self.description["control_url"] + "/status") as r:
            data = await r.json()
        for site in data.get("sites", []):
            name, status = site["name"], site.get("status", "")
            self._changed(f"status:{name}", status, f"site {name}: status {status}")
        events = data.get("guard_events") or []
        for event in events:
            wall = float(event["at"])
            if wall <= self._guard_seen:
                continue
            self._guard_seen = wall
            at = wall - self._wall_offset
            if at < self.since - 1.0:  # an earlier drill's
                continue
            self.lines.append((at, f"guard: site {event['site']} {event['action']}"))

    async def _front_door(self, session: aiohttp.ClientSession) -> None:
        async with session.get(self.description["stats_url"] + ";csv") as r:
            text = await r.text()
        for server, row in site_servers(text).items():
            status = row.get("status", "")
            self._changed(f"door:{server}", status, f"front door: server {server} {status}")

    async def _streams(self, session: aiohttp.ClientSession) -> None:
        """Leaders as a node on the majority side sees them, and the victim's replicas as
        each stream's leader sees them (a follower's view of the others is stale)."""
        sites = [s for s in self.description["sites"] if s["name"] != self.victim]
        victim_node = next(
            (s.get("node") for s in self.description["sites"] if s["name"] == self.victim), None
        )
        leaders: dict[str, str] = {}
        behind: dict[str, bool] = {}
        for site in sites:
            try:
                url = site["monitor_url"] + "/jsz?streams=true&accounts=true"
                async with session.get(url) as r:
                    jsz = await r.json()
            except FAILED:
                continue
            for account in jsz.get("account_details", []):
                for stream in account.get("stream_detail", []):
                    name = stream.get("name", "?")
                    cluster = stream.get("cluster") or {}
                    if cluster.get("raft_group"):
                        self.groups[str(cluster["raft_group"])] = name
                    leader = cluster.get("leader") or "none"
                    leaders.setdefault(name, leader)
                    if leader != site.get("node"):
                        continue
                    for replica in cluster.get("replicas") or []:
                        if replica.get("name") == victim_node:
                            behind[name] = not replica.get("current")
        for name, leader in sorted(leaders.items()):
            self._changed(f"leader:{name}", leader, f"stream {name}: leader {leader}")
        if victim_node and behind:
            late = sorted(n for n, b in behind.items() if b)
            self._changed(
                "behind",
                tuple(late),
                f"node {victim_node}: {len(late)} replicas behind ({', '.join(late)})",
            )

    def read_node_logs(self) -> None:
        """The Raft events the nodes logged since the watch began (higher terms seen,
        leaders elected, the node's stop and start), placed by their own timestamps."""
        for path, offset in self._log_offsets.items():
            try:
                with open(path, "rb") as f:
                    f.seek(offset)
                    text = f.read().decode(errors="replace")
            except OSError:
                continue
            node = Path(path).parent.name
            site = Path(path).parent.parent.name
            for raw in text.splitlines():
                if not any(k in raw for k in NODE_EVENTS):
                    continue
                at = _log_time(raw)
                if at is None:
                    continue
                said = raw.split("] ", 2)[-1]
                for group, stream in self.groups.items():
                    said = said.replace(group, f"{group} ({stream})")
                self.lines.append((at - self._wall_offset, f"node {site}/{node}: {said}"))


def _log_time(line: str) -> float | None:
    """A nats-server log line's time (``[pid] 2026/12/03 10:47:15.450460 [INF] ...``, the
    machine's local time) as seconds since the epoch."""
    try:
        stamp = " ".join(line.split(" ", 3)[1:3])
        return datetime.strptime(stamp, "%Y/%m/%d %H:%M:%S.%f").timestamp()
    except (ValueError, IndexError):
        return None
