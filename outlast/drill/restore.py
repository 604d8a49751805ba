"""`outlast drill restore`: back up under load, destroy every site, restore, judge.

The drill runs the fire drill's simulated users through the front door, runs
`outlast backup create` against the cluster mid-load (its manifest's last
sequence per stream is the backup point), keeps the load going a few seconds,
places every acknowledged message by its sequence in the live log, then
destroys the whole deployment (kill -9 of every site's processes, the cluster
stopped, every site's data directory deleted), restores the backup into a new
cluster directory with `outlast backup restore --cluster-dir`, starts it with
`outlast cluster up` and reads every room back through every restored site
with the users' old access tokens. What came after the backup point must be
missing (and is listed); what came before it must all be there.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from outlast.drill.load import Load
from outlast.drill.restore_verdict import Place, judge_restore
from outlast.drill.verdict import StoredEvent
from outlast.log import records as record

SETTLE_TIMEOUT = 60.0  # how long restored views get to show what the backup holds
STEP_TIMEOUT = 900.0  # one backup, restore or cluster command


@dataclass
class RestoreOptions:
    cluster_file: str | None
    users: int = 20
    rooms: int = 10
    rate: float = 100.0
    at: float = 10.0
    after: float = 5.0
    work_dir: str | None = None
    site_config: str | None = None
    json_out: str | None = None
    quiet: bool = False


class RestoreFailed(Exception):
    """A step of the drill (backup, destroy, restore, start) did not succeed."""


async def outlast(*args: str) -> tuple[int, str, str]:
    """One `outlast` command, as an operator would run it."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "outlast",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), STEP_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RestoreFailed(f"outlast {' '.join(args[:2])} took over {STEP_TIMEOUT}s") from None
    return int(proc.returncode or 0), out.decode(), err.decode()


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


class RestoreDrill:
    def __init__(self, options: RestoreOptions, cluster_file: Path, work: Path) -> None:
        self.o = options
        self.cluster_file = cluster_file
        self.description: dict[str, Any] = json.loads(cluster_file.read_text())
        self.work = work
        self.id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
        self.restored_dir = work / "restored"

    def say(self, line: str) -> None:
        if not self.o.quiet:
            print(line, file=sys.stderr, flush=True)

    async def _progress(self, load: Load, stop: asyncio.Event) -> None:
        while not stop.is_set():
            c = load.counters
            t = time.monotonic() - load.started_at
            self.say(f"  t={t:5.1f}s sent={c.sent} acked={c.acked} errors={c.errors}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)

    async def run(self) -> dict[str, Any]:
        o = self.o
        sites = self.description["sites"]
        self.say(
            f"restore drill {self.id}: backup at t={o.at}s, load for {o.after}s more, "
            f"then every one of {len(sites)} sites destroyed and the backup restored"
        )
        tls = record.cluster_tls(self.description)
        async with Load(self.description["front_door"], tls=tls) as load:
            self.say(f"setting up {o.users} users and {o.rooms} rooms through the front door")
            await load.setup(o.users, o.rooms)
            load.started_at = time.monotonic()
            stop_load, stop_progress = asyncio.Event(), asyncio.Event()
            progress = asyncio.create_task(self._progress(load, stop_progress))
            # The load ends when told (a cap keeps it bounded should the drill fail).
            cap = o.at + o.after + STEP_TIMEOUT
            traffic = asyncio.create_task(load.run(o.rate, cap, stop_load))
            try:
                await asyncio.sleep(o.at)
                backup_started = time.monotonic()
                self.say("  >>> backup create against the running cluster")
                backup_dir, point = await self._backup()
                backup_s = time.monotonic() - backup_started
                self.say(f"  <<< backup done in {backup_s:.1f}s; backup point {point}")
                await asyncio.sleep(o.after)
            finally:
                stop_load.set()
                await traffic
                stop_progress.set()
                await progress
            load_ended = time.monotonic()
            self.say("placing every acknowledged message in the live log")
            places = await self._places()
            self.say(f"  >>> destroying every site: {', '.join(s['name'] for s in sites)}")
            await self._destroy()
            destroyed_at = time.monotonic()
            self.say("  restoring the backup into a new cluster")
            code, out, err = await outlast(
                "backup", "restore", "--from", str(backup_dir), "--cluster-dir",
                str(self.restored_dir), "--sites", str(len(sites)),
            )  # fmt: skip
            if code != 0:
                raise RestoreFailed(f"backup restore exited {code}:\n{_tail(err)}")
            restore_s = time.monotonic() - destroyed_at
            self.say(f"  restored in {restore_s:.1f}s; starting it")
            self.description = await self._start_restored()
            up_s = time.monotonic() - destroyed_at
            self.say(f"  <<< restored cluster serving {up_s:.1f}s after the destruction")
            timelines, settle_s = await self._read_settled(load, places, point)
            verdict = judge_restore(load.sends(), places, point, timelines)
        c = load.counters
        return {
            "id": self.id,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "fault": "restore",
            "site": "all",
            "fault_at_s": round(destroyed_at - load.started_at, 3),
            "backup_started_at_s": round(backup_started - load.started_at, 3),
            "load_ended_at_s": round(load_ended - load.started_at, 3),
            "load": {"users": o.users, "rooms": o.rooms, "rate": o.rate, "after": o.after},
            "counters": {
                "sent": c.sent,
                "acked": c.acked,
                "errors": c.errors,
                "retries": c.retries,
            },  # fmt: skip
            "backup": {"dir": str(backup_dir), "point": point, "seconds": round(backup_s, 3)},
            "restore": {
                "cluster_dir": str(self.restored_dir),
                "restore_seconds": round(restore_s, 3),
                "serving_after_seconds": round(up_s, 3),
                "views_settled_after_s": settle_s,
            },
            "verdict": verdict.as_dict(),
            "nats_server_version": self.description.get("nats_server_version", "unknown"),
        }

    async def _backup(self) -> tuple[Path, dict[str, int]]:
        from outlast.backup.target import DirectoryTarget
        from outlast.backup.verify import read_manifest

        code, out, err = await outlast(
            "backup", "create", "--to", str(self.work / "backups"), "--cluster",
            str(self.cluster_file),
        )  # fmt: skip
        if code != 0 or not out.strip():
            raise RestoreFailed(f"backup create exited {code}:\n{_tail(err)}")
        manifest_path = Path(out.strip().splitlines()[-1])
        manifest = read_manifest(DirectoryTarget(manifest_path.parent))
        return manifest_path.parent, {s.name: s.last_seq for s in manifest.streams}

    async def _places(self) -> dict[str, Place]:
        """Event id -> (room stream, sequence), read from the live log (the event id is
        each message's Nats-Msg-Id)."""
        from outlast.backup.source import open_source
        from outlast.log.archive import extent, read_stream

        places: dict[str, Place] = {}
        args = argparse.Namespace(cluster=str(self.cluster_file), config=None, data_dir=None)
        async with open_source(args) as source:
            names = source.names
            for i in range(names.partitions):
                stream = names.rooms_stream(i)
                last = (await extent(source.log, stream)).last_seq
                async for msg in read_stream(source.log, stream, last):
                    msg_id = msg.headers.get("Nats-Msg-Id")
                    if msg_id and msg_id not in places:
                        places[msg_id] = (stream, msg.seq)
        return places

    async def _destroy(self) -> None:
        """kill -9 every process of every site, stop the cluster, delete every site's data."""
        for site in self.description["sites"]:
            for pid in site.get("pids", []):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        await outlast("cluster", "down", "--dir", str(self.cluster_file.parent))
        for site in self.description["sites"]:
            shutil.rmtree(site["data_dir"], ignore_errors=True)
            if Path(site["data_dir"]).exists():
                raise RestoreFailed(f"could not delete {site['data_dir']}")

    async def _start_restored(self) -> dict[str, Any]:
        config = self.o.site_config
        if config is None:
            from outlast.config import NO_LIMITS_TOML

            path = self.work / "restore-drill-site.toml"
            path.write_text(NO_LIMITS_TOML)
            config = str(path)
        code, out, err = await outlast(
            "cluster", "up", "--sites", str(len(self.description["sites"])), "--dir",
            str(self.restored_dir), "--detach", "--site-config", config,
        )  # fmt: skip
        if code != 0:
            raise RestoreFailed(f"cluster up of the restored cluster exited {code}:\n{_tail(err)}")
        data: dict[str, Any] = json.loads(out)
        return data

    async def _read_settled(
        self, load: Load, places: dict[str, Place], point: dict[str, int]
    ) -> tuple[dict[str, dict[str, list[StoredEvent]]], float]:
        """Every restored site's timelines, re-read until each shows every acknowledged
        message the backup holds (or SETTLE_TIMEOUT passed: what is missing then is lost)."""
        held = {
            s.event_id
            for s in load.sends()
            if s.acked
            and s.event_id in places
            and places[s.event_id][1] <= point.get(places[s.event_id][0], 0)
        }
        started = time.monotonic()
        reader = load.users[0]  # its access token is from before the backup
        while True:
            timelines: dict[str, dict[str, list[StoredEvent]]] = {}
            for site in self.description["sites"]:
                rooms = {}
                for room_id in load.rooms:
                    events = await load.timeline(site["url"], room_id, reader.token)
                    rooms[room_id] = [
                        StoredEvent(e["event_id"], str(e["content"].get("body", "")))
                        for e in events
                        if e.get("type") == "m.room.message"
                    ]
                timelines[site["name"]] = rooms
            waited = time.monotonic() - started
            shown = [{e.event_id for evs in r.values() for e in evs} for r in timelines.values()]
            if all(held <= ids for ids in shown) or waited >= SETTLE_TIMEOUT:
                self.say(f"read {len(load.rooms)} timelines through every restored site")
                return timelines, round(waited, 3)
            await asyncio.sleep(0.5)


def summary(report: dict[str, Any]) -> str:
    v, r, b = report["verdict"], report["restore"], report["backup"]
    lost_ids = v["expected_lost_ids"]
    shown = ", ".join(lost_ids[:10]) + (
        f", ... ({len(lost_ids) - 10} more)" if len(lost_ids) > 10 else ""
    )
    return "\n".join(
        [
            "",
            f"Restore drill {report['id']} — backup started at "
            f"t={report['backup_started_at_s']:.1f}s (took {b['seconds']}s), "
            f"every site destroyed at t={report['fault_at_s']:.1f}s",
            f"  backup point: {b['point']}",
            f"  load: {report['load']['users']} users, {report['load']['rooms']} rooms, "
            f"{report['load']['rate']} msg/s; sent {report['counters']['sent']}, "
            f"acknowledged {v['acknowledged']}",
            f"  acknowledged before the backup point: {v['acknowledged_before_point']}, "
            f"LOST: {v['lost_before_point']}   DUPLICATED: {v['duplicated']}   "
            f"REORDERED: {v['reordered']}",
            f"  acknowledged after the backup point: {v['acknowledged_after_point']}, "
            f"lost as expected: {v['expected_lost']}; shown anyway: {v['after_point_present']}"
            + (f"\n  expected lost: {shown}" if lost_ids else ""),
            f"  acknowledged but absent from the live log before the destruction: "
            f"{v['not_in_live_log']}",
            f"  restore took {r['restore_seconds']}s; the restored cluster served "
            f"{r['serving_after_seconds']}s after the destruction; timelines read back "
            f"{r['views_settled_after_s']}s later, through every site, with old tokens",
            f"  verdict: {'PASS' if v['ok'] else 'FAIL'}",
        ]
    )


async def run_restore_drill(options: RestoreOptions) -> int:
    work = Path(options.work_dir or tempfile.mkdtemp(prefix="outlast-restore-drill-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    if (work / "restored").exists():
        print(f"outlast: {work / 'restored'} exists: choose a new --work-dir", file=sys.stderr)
        return 2
    own = options.cluster_file is None
    if own:
        from outlast.drill.fire import _start_cluster

        if not options.quiet:
            print(f"starting a local 3-site cluster in {work / 'cluster'}", file=sys.stderr)
        await _start_cluster(work / "cluster", options.quiet)
        cluster_file = work / "cluster" / "cluster.json"
    else:
        cluster_file = Path(str(options.cluster_file)).resolve()
    drill = RestoreDrill(options, cluster_file, work)
    try:
        try:
            report = await drill.run()
        except RestoreFailed as exc:
            print(f"outlast: restore drill FAILED: {exc}", file=sys.stderr)
            return 1
        print(summary(report), flush=True)
        if options.json_out:
            Path(options.json_out).write_text(json.dumps(report, indent=2))
        urls = [s["nats_url"] for s in drill.description["sites"]]
        try:
            seq = await record.store(urls, report, record.cluster_tls(drill.description))
            drill.say(f"drill record stored on the restored log (sequence {seq})")
        except Exception as exc:  # noqa: BLE001 - the verdict stands even if recording fails
            drill.say(f"could not store the drill record: {exc}")
        if not own:
            drill.say(f"the restored cluster keeps running: {drill.restored_dir / 'cluster.json'}")
        return 0 if report["verdict"]["ok"] else 1
    finally:
        if own:
            for directory in (work / "cluster", drill.restored_dir):
                if (directory / "cluster.json").exists():
                    await outlast("cluster", "down", "--dir", str(directory))
