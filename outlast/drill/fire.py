"""`outlast drill fire`: load, a fault at a chosen moment, a verdict, an optional rebuild."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from outlast.drill import control, disk, faults, netfaults, replicas, skew
from outlast.drill.load import Load
from outlast.drill.pushgw import PushGateway
from outlast.drill.readback import OwnWrites
from outlast.drill.verdict import (
    Pushed,
    StoredEvent,
    client_ends,
    durable_before,
    gap_phases,
    judge,
    judge_push,
    long_waits,
    write_gap,
)
from outlast.drill.watch import Watch
from outlast.log import records as record
from outlast.log import replica_audit

# How long the survivors' views get to show every acknowledged message before
# what is still missing counts as lost (they re-follow streams whose leader burned).
SETTLE_TIMEOUT = 60.0
# With --push: how long the gateway gets to receive every expected notification after
# the timelines settled. A burned site's messages are handed on after the consumer's
# ack wait (push.ack_wait_seconds, 30 s by default), then retried with backoff.
PUSH_SETTLE_TIMEOUT = 120.0
# After a corrupt fault: how long the damaged node's replicas get to match the others'.
# Long enough for the cluster's replica audit (outlast/cluster/replica_repair.py) to
# notice holes (a round every 10 s) and restart the site with the replica reset.
REPLICA_SETTLE_TIMEOUT = 180.0
# Faults healed by the cluster whose course the drill records as a timeline (watch.py).
WATCHED = ("partition", "freeze-partition", "rebuild-partitioned")
WATCH_AFTER_HEALTHY = 3.0  # seconds watched after every site is healthy again
# The drill's own cluster hands a burned site's push work on sooner than the default.
PUSH_SITE_TOML = "\n[push]\nack_wait_seconds = 10.0\n"


@dataclass
class DrillOptions:
    cluster_file: str | None
    users: int = 20
    rooms: int = 10
    rate: float = 100.0
    duration: float = 30.0
    at: float = 10.0
    site: str | None = None
    fault: str = "fire"
    heal_after: float = 10.0
    rebuild: bool = False
    json_out: str | None = None
    plot: str | None = None
    quiet: bool = False
    push: bool = False
    loss_percent: int = netfaults.DEFAULT_LOSS_PERCENT
    spike_ms: float = netfaults.DEFAULT_SPIKE_MS
    skew_s: float = skew.DEFAULT_SKEW_S


def status(description: dict[str, Any]) -> dict[str, Any]:
    with urllib.request.urlopen(description["control_url"] + "/status", timeout=10) as resp:
        data: dict[str, Any] = json.loads(resp.read())
        return data


def leader_counts(description: dict[str, Any]) -> dict[str, int]:
    """Stream leaders per site, from any reachable node's monitoring endpoint."""
    counts: dict[str, int] = {s["name"]: 0 for s in description["sites"]}
    for site in description["sites"]:
        try:
            url = site["monitor_url"] + "/jsz?streams=true&accounts=true"
            with urllib.request.urlopen(url, timeout=5) as resp:
                jsz = json.loads(resp.read())
        except OSError:
            continue
        for account in jsz.get("account_details", []):
            for stream in account.get("stream_detail", []):
                leader = (stream.get("cluster") or {}).get("leader", "")
                name = leader.rsplit("-", 1)[0]
                if name in counts:
                    counts[name] += 1
        return counts
    return counts


class Drill:
    def __init__(self, options: DrillOptions, description: dict[str, Any]) -> None:
        self.o = options
        self.description = description
        self.id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]

    def say(self, line: str) -> None:
        if not self.o.quiet:
            print(line, file=sys.stderr, flush=True)

    async def _progress(self, load: Load, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                sites = await asyncio.get_running_loop().run_in_executor(
                    None, status, self.description
                )
                health = " ".join(f"{s['name']}:{s['status']}" for s in sites["sites"])
            except OSError:
                health = "control unreachable"
            c = load.counters
            t = time.monotonic() - load.started_at
            self.say(
                f"  t={t:5.1f}s sent={c.sent} acked={c.acked} errors={c.errors} "
                f"retries={c.retries} | {health}"
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)

    async def run(self) -> dict[str, Any]:
        o = self.o
        if o.fault == "loss" and self.description.get("network", {}).get("mode") != "netns":
            raise SystemExit(
                "outlast: --fault loss needs a cluster started with `outlast cluster up "
                "--netns` (the loopback relays carry TCP streams and cannot drop packets)"
            )
        sites = {s["name"]: s for s in self.description["sites"]}
        leaders = leader_counts(self.description)
        whole = o.fault in faults.WHOLE_CLUSTER
        victim_name = "all" if whole else o.site or max(leaders, key=lambda k: leaders[k])
        if not whole and victim_name not in sites:
            raise SystemExit(f"outlast: no site {victim_name!r}; sites are {sorted(sites)}")
        victim = sites.get(victim_name, {})
        self.say(
            f"drill {self.id}: {o.fault} on site {victim_name} at t={o.at}s "
            f"(stream leaders per site: {leaders})"
        )
        gateway = await PushGateway().start() if o.push else None
        try:
            return await self._run(victim_name, victim, sites, gateway)
        finally:
            if gateway is not None:
                await gateway.stop()

    async def _run(
        self,
        victim_name: str,
        victim: dict[str, Any],
        sites: dict[str, Any],
        gateway: PushGateway | None,
    ) -> dict[str, Any]:
        o = self.o
        maintenance: dict[str, Any] | None = None
        tls = record.cluster_tls(self.description)
        async with Load(self.description["front_door"], tls=tls) as load:
            self.say(f"setting up {o.users} users and {o.rooms} rooms through the front door")
            await load.setup(o.users, o.rooms)
            if gateway is not None:
                await self._set_pushers(load, gateway)
            load.started_at = time.monotonic()
            stop = asyncio.Event()
            progress = asyncio.create_task(self._progress(load, stop))
            traffic = asyncio.create_task(load.run(o.rate, o.duration))
            # When the load really ended: a rolling restart may outlast it, and the time
            # after the last send is no client's write gap.
            traffic_ended: list[float] = []
            traffic.add_done_callback(lambda _: traffic_ended.append(time.monotonic()))
            await asyncio.sleep(o.at)
            fault_at = time.monotonic()
            recovered_at = None
            inflicted: dict[str, Any] = {}
            recovery: dict[str, Any] = {}
            logs_at: dict[str, int] = {}
            held: dict[str, dict[str, Any]] = {}
            watch: Watch | None = None
            watching: asyncio.Task[None] | None = None
            watch_stop = asyncio.Event()
            if o.fault == "corrupt":  # what the replica held and logged until the fault
                logs_at = replicas.node_logs(victim["data_dir"])
                with contextlib.suppress(OSError):
                    held = replicas.stream_states(victim["monitor_url"])
            if o.fault == "maintenance":
                own = self._own_writes(load, sites, {victim_name}, fault_at)
                load.ack_hooks.append(own.on_ack)
                self.say(f"  >>> {o.fault}: rolling restart of every site")
                maintenance = await asyncio.get_running_loop().run_in_executor(
                    None, control.roll, self.description, fault_at
                )
                recovered_at = time.monotonic()
                self.say(f"  <<< {o.fault} done: every site restarted")
            else:
                if o.fault in WATCHED:
                    watch = Watch(self.description, fault_at, victim_name)
                    watch.mark(f"{o.fault} at site {victim_name}", fault_at)
                    watching = asyncio.create_task(watch.run(watch_stop))
                params = {"loss_percent": o.loss_percent, "spike_ms": o.spike_ms}
                target = {**victim, "skew_s": o.skew_s} if o.fault == "skew" else victim
                inflicted = await asyncio.get_running_loop().run_in_executor(
                    None, faults.inflict, self.description, target, o.fault, params
                )
                self.say(f"  >>> {o.fault} at site {victim_name} {inflicted or ''}")
                # Each client's first write after the fault is read back at the other sites
                # than the victim (all of them after power-all). A partitioned site is
                # healed before the frozen one wakes, so it is read too.
                own = self._own_writes(load, sites, {victim_name}, fault_at)
                load.ack_hooks.append(own.on_ack)
            during: dict[str, Any] = {}
            if o.fault not in ("fire", "maintenance"):
                until = time.monotonic() + o.heal_after
                urls = {n: s["url"] for n, s in sites.items()}
                if o.fault == "disk-full":
                    during = await disk.probe_writes(load, urls[victim_name])
                    self.say(f"  writes straight to the full site: {during['answers']}")
                elif o.fault == "skew":
                    during = await skew.check(load, urls, victim_name)
                    self.say(f"  skew checks failed: {during['failed'] or 'none'}")
                await asyncio.sleep(max(0.0, until - time.monotonic()))
                undoing = time.monotonic()
                recovery = await asyncio.get_running_loop().run_in_executor(
                    None, faults.recover, self.description, victim, o.fault, inflicted
                )
                recovered_at = time.monotonic()
                if watch is not None:
                    watch.mark(f"{o.fault} undone (asked)", undoing)
                    watch.mark(f"{o.fault} undone", recovered_at)
                self.say(f"  <<< {o.fault} undone at site {victim_name}")
            await traffic
            load_ended = traffic_ended[0] if traffic_ended else time.monotonic()
            if recovered_at is not None and recovered_at > load_ended:
                self.say(
                    f"  the {o.fault} outlasted the load by {recovered_at - load_ended:.1f}s: "
                    "the write gap covers only the time under load (raise --duration)"
                )
            stop.set()
            await progress
            if watch is not None and watching is not None:
                # Until every site is healthy again (the second stall may end after the
                # load), then the watch stops.
                with contextlib.suppress(TimeoutError):
                    await self._wait_healthy(list(sites))
                await asyncio.sleep(WATCH_AFTER_HEALTHY)  # the front door's next checks
                watch_stop.set()
                await watching
                watch.read_node_logs()
            own_reads = await own.report()
            readers = [n for n in sites if o.fault != "fire" or n != victim_name]
            rebuild_failed = bool((recovery.get("rebuild") or {}).get("error"))
            if rebuild_failed:  # a rebuild that did not finish leaves no site to read
                readers.remove(victim_name)
            if o.fault != "fire":
                await self._wait_healthy(readers)
            timelines, settle_s = await self._read_settled(load, readers)
            verdict = judge(load.sends(), timelines)
            report = self._report(load, victim_name, fault_at, recovered_at, verdict.as_dict())
            report["views_settled_after_s"] = settle_s
            if gateway is not None:
                report["push"] = await self._judge_push(
                    load, gateway, timelines[readers[0]], victim_name, fault_at
                )
                if not report["push"]["ok"]:
                    report["verdict"]["ok"] = False
            report["own_write_reads"] = own_reads
            if own_reads["stale"]:
                report["verdict"]["ok"] = False
            # Each client's load ended when sending stopped or its last send returned,
            # not when the slowest client's did.
            ends = client_ends(
                load.sending_until or load_ended, {u.name: u.attempts for u in load.users}
            )
            report["write_gap"] = write_gap(
                fault_at, {u.name: u.ack_times for u in load.users}, until=ends
            )
            # The same measure over the seconds before the fault (the first one, the
            # load's ramp-up, left out): what the machine alone costs the clients.
            before = {u.name: [t for t in u.ack_times if t < fault_at] for u in load.users}
            report["write_gap_before_fault"] = write_gap(
                load.started_at + 1.0, before, until=fault_at
            )
            if recovered_at is not None and o.fault != "maintenance":
                # When the clients stalled: while the fault lasted, or after it was undone.
                report["write_gap_by_phase"] = gap_phases(
                    fault_at, recovered_at, {u.name: u.ack_times for u in load.users}, ends
                )
            if recovered_at is not None and recovered_at > load_ended:
                report["fault_outlasted_load_s"] = round(recovered_at - load_ended, 3)
            if maintenance is not None:
                report["maintenance"] = maintenance
            timeline = (maintenance or {}).get("timeline", ())
            if watch is not None:
                timeline = report["timeline"] = watch.timeline
            # Every client wait over 1 s, where in the fault's timeline and on what.
            report["long_waits"] = long_waits(
                fault_at,
                {u.name: u.ack_times for u in load.users},
                ends,
                attempts_by_client={u.name: u.attempts for u in load.users},
                timeline=timeline,
            )
            if inflicted:
                report["inflicted"] = {k: v for k, v in inflicted.items() if k[:1] != "_"}
            if o.fault == "disk-full":
                # A 500 is a bug wherever it comes from; the rest (503s, the front
                # door's answers while the site restarts) is recorded as seen.
                answers = report["counters"]["error_answers"]
                internal = {k: v for k, v in answers.items() if k.startswith("500")}
                report["disk_full"] = {
                    "direct_writes": during,
                    "recovery": recovery,
                    "internal_errors": internal,
                }
                if not during.get("ok") or internal:
                    report["verdict"]["ok"] = False
            if o.fault == "skew":
                report["skew"] = {"skew_s": o.skew_s, **during}
                if not during.get("ok"):
                    report["verdict"]["ok"] = False
            if recovery:
                report["recovery"] = recovery
            if o.fault in netfaults.KINDS:
                report.update(self._net_report(load, fault_at, recovered_at, load_ended))
                if rebuild_failed:
                    report["verdict"]["ok"] = False
            if o.fault == "power-all":
                report["durability"] = durable_before(load.sends(), timelines, fault_at)
                if not report["durability"]["ok"]:
                    report["verdict"]["ok"] = False
            if o.fault == "corrupt":
                report["replica"] = await self._judge_replica(victim_name, inflicted, logs_at, held)
                if not report["replica"]["repaired"]:
                    report["verdict"]["ok"] = False
            if o.rebuild and o.fault == "fire":
                self.say(f"rebuilding site {victim_name} from the survivors")
                try:
                    result = await asyncio.get_running_loop().run_in_executor(
                        None, control.rebuild, self.description, victim_name
                    )
                except (RuntimeError, OSError) as exc:
                    # The verdict on the survivors stands; a rebuild that did not finish
                    # fails the drill and says why, instead of losing the whole report.
                    self.say(f"  rebuild of site {victim_name} failed: {exc}")
                    report["rebuild"] = {"site": victim_name, "error": str(exc)}
                    report["verdict"]["ok"] = False
                    return report
                fresh = status(self.description)
                self.description = fresh
                rebuilt, _ = await self._read_settled(load, [victim_name])
                result["identical"] = rebuilt[victim_name] == timelines[readers[0]]
                report["rebuild"] = result
                if not result["identical"]:
                    report["verdict"]["ok"] = False
        return report

    def _net_report(
        self, load: Load, fault_at: float, recovered_at: float | None, load_ended: float
    ) -> dict[str, Any]:
        """Send latency while the link misbehaved against as long a window before it,
        and the longest time no client at all had a write acknowledged."""
        end = min(recovered_at or load_ended, load_ended)
        span = end - fault_at
        sends = load.sends()
        acks = [t for u in load.users for t in u.ack_times]
        return {
            "send_latency": {
                "before_fault": netfaults.send_latency(
                    sends, max(load.started_at + 1.0, fault_at - span), fault_at
                ),
                "during_fault": netfaults.send_latency(sends, fault_at, end),
            },
            "write_outage_s": netfaults.write_outage(acks, fault_at, load_ended),
        }

    def _own_writes(
        self, load: Load, sites: dict[str, Any], hit: set[str], fault_at: float
    ) -> OwnWrites:
        survivors = {n: s["url"] for n, s in sites.items() if n not in hit}
        everyone = {n: s["url"] for n, s in sites.items()}
        return OwnWrites(load.request, survivors or everyone, since=fault_at)

    async def _judge_replica(
        self,
        name: str,
        inflicted: dict[str, Any],
        logs_at: dict[str, int],
        held: dict[str, dict[str, Any]],
    ) -> dict[str, Any]:
        """After a corrupt fault: what the damaged node restored from its disk, whether it
        said so, and whether its replicas are whole again."""
        damaged = [d["stream"] for d in inflicted.get("damaged", [])]
        by_site = {s["name"]: s for s in self.description["sites"]}
        # The nodes are asked one after the other while the health stream still takes
        # writes (several a second): the damaged node is asked last, so a replica that
        # has caught up is at least as far as the others were a moment before. Asked
        # first, it was always a message or two short of them (two corrupt drills
        # failed on that alone). It gets REPLICA_SETTLE_TIMEOUT to be as complete.
        deadline = time.monotonic() + REPLICA_SETTLE_TIMEOUT
        while True:
            try:
                others = [
                    replicas.stream_states(s["monitor_url"])
                    for n, s in by_site.items()
                    if n != name
                ]
                mine = replicas.stream_states(by_site[name]["monitor_url"])
                result = replicas.compare_replicas(damaged, mine, others)
            except OSError as exc:
                result = {"streams_damaged": len(damaged), "error": str(exc), "repaired": False}
            if result["repaired"] or time.monotonic() > deadline:
                break
            await asyncio.sleep(1.0)
        text = replicas.read_since(logs_at)
        result.update(replicas.restore_report(damaged, held, text))
        result["audit"] = await self._audit_holes(by_site)
        if any(h["node"] == by_site[name].get("node") for h in result["audit"]["holes_left"]):
            result["repaired"] = False
        return result

    async def _audit_holes(self, by_site: dict[str, Any]) -> dict[str, Any]:
        """Every replica on every node that misses messages of its own range (Outlast's
        streams never delete one), as the replica audit sees it now, and what the
        cluster's own audit (the supervisor's) found and did. Strict: a hole left on
        the damaged node fails the drill whatever the audit did."""
        per_node: dict[str, Any] = {}
        leaders: dict[str, str] = {}
        for site in by_site.values():
            node = site.get("node") or site["name"]
            try:
                per_node[node] = replica_audit.node_states(site["monitor_url"])
                leaders.update(replica_audit.node_leaders(site["monitor_url"]))
            except OSError:
                continue
        partitions = int((self.description.get("plan") or {}).get("partitions") or 0)
        audited = replica_audit.never_deleting(partitions) if partitions else None
        holes = [dataclasses.asdict(h) for h in replica_audit.audit(per_node, leaders, audited)]
        for hole in holes:
            self.say(f"replica with holes left: {hole['stream']} on {hole['node']}")
        try:
            record = status(self.description).get("replica_audit") or {}
        except OSError:
            record = {}
        for repair in record.get("repairs", []):
            streams = ", ".join(h["stream"] for h in repair.get("holes", []))
            self.say(
                f"replica audit on {repair.get('node')}: {streams}: "
                f"{repair.get('how', 'under way')}"
            )
        return {"holes_left": holes, "cluster_audit": record}

    async def _set_pushers(self, load: Load, gateway: PushGateway) -> None:
        """Every simulated user gets one http pusher at the drill's gateway (pushkey: name)."""
        self.say(f"registering {len(load.users)} pushers at the drill's gateway {gateway.url}")
        for user in load.users:
            body = {
                "app_id": "io.outlast.drill",
                "pushkey": user.name,
                "kind": "http",
                "app_display_name": "drill",
                "device_display_name": "drill",
                "lang": "en",
                "data": {"url": gateway.url, "format": "event_id_only"},
            }
            await load.call("POST", "/_matrix/client/v3/pushers/set", body, user.token)

    async def _judge_push(
        self,
        load: Load,
        gateway: PushGateway,
        stored: dict[str, list[StoredEvent]],
        victim: str,
        fault_at: float,
        timeout: float = PUSH_SETTLE_TIMEOUT,
    ) -> dict[str, Any]:
        """Every stored message should notify every other member (all users are in
        every room; the default rules notify each message), exactly once."""
        names = [u.name for u in load.users]
        expected = {
            e.event_id: frozenset(n for n in names if n != e.body.split("#", 1)[0])
            for events in stored.values()
            for e in events
            if "#" in e.body
        }
        wanted = {(event_id, key) for event_id, keys in expected.items() for key in keys}
        self.say(f"waiting for {len(wanted)} notifications at the gateway")
        started = time.monotonic()

        def arrived(g: PushGateway) -> bool:
            return wanted <= {(r.event_id, k) for r in g.accepted() for k in r.pushkeys}

        with contextlib.suppress(TimeoutError):
            await gateway.wait_for(arrived, timeout)
        settle = round(time.monotonic() - started, 3)
        # Repeats can arrive a little later (a held message handed on): one more wait.
        await asyncio.sleep(2.0)
        offset = time.monotonic() - time.time()  # gateway times are wall-clock
        pushed = [
            Pushed(r.event_id, key, _site(r.user_agent), r.at + offset)
            for r in gateway.accepted()
            if r.event_id is not None
            for key in r.pushkeys
        ]
        acked_at = {s.event_id: s.acked_at for s in load.sends() if s.event_id and s.acked_at}
        verdict = judge_push(
            expected, pushed, victim=victim, fault_at=fault_at, acked_at=acked_at
        ).as_dict()
        verdict["settled_after_s"] = settle
        return verdict

    async def _wait_healthy(self, names: list[str], timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            current = await asyncio.get_running_loop().run_in_executor(
                None, status, self.description
            )
            states = {s["name"]: s["status"] for s in current["sites"]}
            if all(states.get(n) == "up" for n in names):
                self.description = current
                return
            await asyncio.sleep(0.5)
        raise TimeoutError(f"sites {names} not healthy {timeout}s after the fault was undone")

    async def _read_settled(
        self, load: Load, names: list[str], timeout: float = SETTLE_TIMEOUT
    ) -> tuple[dict[str, dict[str, list[StoredEvent]]], float]:
        """Read every site's timelines once each holds every acknowledged message,
        or after ``timeout``; and how long after the load ended that took.

        An acknowledged message is committed on a quorum, but a surviving site's
        view may still be re-following a stream whose leader burned: reading it
        at that moment would report a message as lost that the site is about to
        show. Lost means still missing once the views have had time to apply
        the log, so the read is repeated until nothing acknowledged is missing
        (or the time is up, and what is missing then is reported lost).
        """
        started = time.monotonic()
        acked = {s.event_id for s in load.sends() if s.acked}
        first = True
        while True:
            timelines = await self._read(load, names, quiet=not first)
            first = False
            missing = any(
                acked - {e.event_id for events in rooms.values() for e in events}
                for rooms in timelines.values()
            )
            waited = time.monotonic() - started
            if not missing or waited >= timeout:
                return timelines, round(waited, 3)
            await asyncio.sleep(0.5)

    async def _read(
        self, load: Load, names: list[str], quiet: bool = False
    ) -> dict[str, dict[str, list[StoredEvent]]]:
        reader = load.users[0]
        urls = {s["name"]: s["url"] for s in self.description["sites"]}
        out: dict[str, dict[str, list[StoredEvent]]] = {}
        for name in names:
            if not quiet:
                self.say(f"reading {len(load.rooms)} timelines back through site {name}")
            rooms = {}
            for room_id in load.rooms:
                events = await load.timeline(urls[name], room_id, reader.token)
                rooms[room_id] = [
                    StoredEvent(e["event_id"], str(e["content"].get("body", "")))
                    for e in events
                    if e.get("type") == "m.room.message"
                ]
            out[name] = rooms
        return out

    def _report(
        self,
        load: Load,
        site: str,
        fault_at: float,
        recovered_at: float | None,
        verdict: dict[str, Any],
    ) -> dict[str, Any]:
        o = self.o
        c = load.counters
        return {
            "id": self.id,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "fault": o.fault,
            "site": site,
            "fault_at_s": round(fault_at - load.started_at, 3),
            "recovered_at_s": None
            if recovered_at is None
            else round(recovered_at - load.started_at, 3),
            "load": {"users": o.users, "rooms": o.rooms, "rate": o.rate, "duration": o.duration},
            "counters": {
                "sent": c.sent,
                "acked": c.acked,
                "errors": c.errors,
                "retries": c.retries,
                "error_answers": dict(sorted(c.error_answers.items())),
            },
            "acks_per_second_by_site": {
                s: {str(k): v for k, v in per.items()} for s, per in c.site_acks_per_second.items()
            },
            "verdict": verdict,
            "nats_server_version": self.description.get("nats_server_version", "unknown"),
            "settings": {
                **self.description.get("settings", {}),
                "raft_election_timeout": "4-9 s (fixed in nats-server)",
                "publish_timeout_s": 5.0,
            },
        }


def _site(user_agent: str) -> str:
    """The site Outlast names in its User-Agent, ``Outlast (<site>)``."""
    if user_agent.startswith("Outlast (") and user_agent.endswith(")"):
        return user_agent[len("Outlast (") : -1]
    return ""


async def run_drill(options: DrillOptions) -> int:
    from outlast.cluster.plan import load_description

    own_cluster: Path | None = None
    if options.cluster_file:
        description = load_description(Path(options.cluster_file))
    else:
        own_cluster = Path(tempfile.mkdtemp(prefix="outlast-drill-"))
        if not options.quiet:  # where its logs stay for a post-mortem
            print(f"starting a local 3-site cluster in {own_cluster}", file=sys.stderr, flush=True)
        description = await _start_cluster(own_cluster, options.quiet, options.push)
    try:
        drill = Drill(options, description)
        report = await drill.run()
        print(__import__("outlast.drill.report", fromlist=["summary"]).summary(report), flush=True)
        if options.json_out:
            Path(options.json_out).write_text(json.dumps(report, indent=2))
        if options.plot:
            from outlast.drill.report import plot

            plot(report, Path(options.plot))
        urls = [s["nats_url"] for s in drill.description["sites"]]
        try:
            seq = await record.store(urls, report, record.cluster_tls(drill.description))
            drill.say(f"drill record stored on the log (sequence {seq})")
        except Exception as exc:  # noqa: BLE001 - the verdict stands even if recording fails
            drill.say(f"could not store the drill record: {exc}")
        return 0 if report["verdict"]["ok"] else 1
    finally:
        if own_cluster is not None:
            await _stop_cluster(own_cluster)


async def _start_cluster(directory: Path, quiet: bool, push: bool = False) -> dict[str, Any]:
    """A local cluster for this drill, its rate limits off: the drill's simulated
    users all speak from one address, which the default limits would throttle."""
    from outlast.config import NO_LIMITS_TOML

    directory.mkdir(parents=True, exist_ok=True)
    site_config = directory / "drill-site.toml"
    site_config.write_text(NO_LIMITS_TOML + (PUSH_SITE_TOML if push else ""))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "outlast",
        "cluster",
        "up",
        "--sites",
        "3",
        "--dir",
        str(directory),
        "--detach",
        "--site-config",
        str(site_config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL if quiet else None,
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise SystemExit("outlast: could not start a local cluster for the drill")
    data: dict[str, Any] = json.loads(out)
    return data


async def _stop_cluster(directory: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "outlast",
        "cluster",
        "down",
        "--dir",
        str(directory),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await proc.wait()
