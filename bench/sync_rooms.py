"""/sync cost against the number of rooms a user is in.

    python -m bench.sync_rooms                      # R = 50, 200, 500
    python -m bench.sync_rooms --rooms 50 --rooms 100 --samples 40
    python -m bench.sync_rooms --view postgresql    # the same on a PostgreSQL view

One ``outlast serve`` (one worker; the benchmarks' settings: cheap argon2, no
rate limits), real HTTP. For each R one user creates R rooms of its own, each
holding 5 messages; then, taking the sizes in turn so that a busy machine's load
falls on each alike:

- initial sync: ``GET /sync?timeout=0`` with no token, p50 over a few samples;
- incremental sync: the user catches up (not timed), one new message goes into
  one of its rooms (a different room each time, not timed), then
  ``GET /sync?since=<next_batch>&timeout=0`` (timed). Every answer must hold
  exactly that one room with that one event. Besides its wall time, the CPU
  the serving process's main thread spent on it (``/proc/PID/schedstat``),
  which other load on a shared machine barely moves.

The question is whether an incremental sync costs what changed or what the
user is in: the rooms that did not change should cost (almost) nothing.
Results go to ``bench/results/sync_rooms.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from bench.run import BenchPostgres, embedded_on
from bench.stats import summarize_ms
from bench.workload import Client

MESSAGES_PER_ROOM = 5
SYNC = "/_matrix/client/v3/sync?timeout=0"


async def _grow(c: Client, rooms: list[str], target: int) -> None:
    """Create rooms (with their messages) until the user is in ``target`` of them."""
    while len(rooms) < target:
        data = await c.ok("POST", "/_matrix/client/v3/createRoom", {"name": f"r{len(rooms)}"})
        room_id = str(data["room_id"])
        for i in range(MESSAGES_PER_ROOM):
            await c.send(room_id, f"m{i}")
        rooms.append(room_id)


def _cpu_ns(pid: int) -> int:
    """CPU time the process's main thread (the event loop, where /sync runs) has used,
    in nanoseconds: unlike wall time, barely moved by other load on a busy machine."""
    with open(f"/proc/{pid}/schedstat") as fh:
        return int(fh.read().split()[0])


class Member:
    """One user in ``size`` rooms, and the token of its last sync."""

    def __init__(self, client: Client, size: int, pid: int) -> None:
        self.c = client
        self.pid = pid
        self.cpu: list[float] = []
        self.size = size
        self.rooms: list[str] = []
        self.token = ""
        self.initial: list[float] = []
        self.incremental: list[float] = []

    async def initial_sync(self) -> None:
        t = time.perf_counter()
        data = await self.c.ok("GET", SYNC)
        self.initial.append(time.perf_counter() - t)
        if len(data["rooms"]["join"]) != self.size:
            raise RuntimeError(f"initial sync holds {len(data['rooms']['join'])} rooms")
        self.token = str(data["next_batch"])

    async def incremental_sync(self, i: int, timed: bool = True) -> None:
        # Catch up first (not timed): the window then holds exactly one new message.
        data = await self.c.ok("GET", f"{SYNC}&since={self.token}")
        self.token = str(data["next_batch"])
        room_id = self.rooms[(i * 7919) % len(self.rooms)]
        event_id = await self.c.send(room_id, f"new {i}")
        cpu, t = _cpu_ns(self.pid), time.perf_counter()
        data = await self.c.ok("GET", f"{SYNC}&since={self.token}")
        if timed:
            self.incremental.append(time.perf_counter() - t)
            self.cpu.append((_cpu_ns(self.pid) - cpu) / 1e9)
        joined = data["rooms"]["join"]
        got = [e["event_id"] for e in joined.get(room_id, {}).get("timeline", {}).get("events", [])]
        if list(joined) != [room_id] or got != [event_id]:
            raise RuntimeError(f"incremental sync answered {list(joined)[:5]} / {got}")
        self.token = str(data["next_batch"])


async def measure(
    sizes: list[int], samples: int, initial_samples: int, view: str = "sqlite"
) -> dict[str, Any]:
    """One user per size on one site; samples taken in turn (size after size), so a
    busy machine's load spreads over every size alike. (On PostgreSQL the server CPU
    column counts the worker only, not the database's backend.)"""
    postgres = BenchPostgres()
    server, _ = embedded_on(view, 1, postgres)
    try:
        async with aiohttp.ClientSession() as session:
            members = []
            for n, size in enumerate(sorted(sizes)):
                c = Client(session, server.url)
                await c.register(f"syncrooms{n}")
                member = Member(c, size, server.proc.pid)
                started = time.monotonic()
                await _grow(c, member.rooms, size)
                print(f"R={size:4}  set up in {time.monotonic() - started:.0f} s", flush=True)
                members.append(member)
            for _ in range(initial_samples):
                for member in members:
                    await member.initial_sync()
            for member in members:
                for i in range(3):  # warm up
                    await member.incremental_sync(i, timed=False)
            for i in range(samples):
                for member in members:
                    await member.incremental_sync(i)
            results = summarize(members)
            return results
    finally:
        server.stop()
        postgres.stop()


class Timings(Protocol):
    """What one measured user collected (both /sync and sliding-sync benches)."""

    size: int
    initial: list[float]
    incremental: list[float]
    cpu: list[float]


def summarize(members: Sequence[Timings]) -> dict[str, Any]:
    """Each user's percentiles, keyed by room count, printed as they come."""
    results: dict[str, Any] = {}
    for member in members:
        initial = summarize_ms(member.initial)
        incremental = summarize_ms(member.incremental)
        cpu = summarize_ms(member.cpu)
        results[str(member.size)] = {
            "rooms": member.size,
            "initial": initial,
            "incremental": incremental,
            "incremental_server_cpu": cpu,
        }
        print(
            f"R={member.size:4}  initial p50 {initial['p50_ms']:7.1f} ms"
            f"  incremental p50 {incremental['p50_ms']:6.2f} ms"
            f" (p95 {incremental['p95_ms']:6.2f}),"
            f" server CPU p50 {cpu['p50_ms']:5.2f} ms",
            flush=True,
        )
    return results


def compare(results: dict[str, Any], sizes: Sequence[int], note: str = "") -> tuple[float, float]:
    """Incremental p50 (wall, server CPU) at the largest size over the smallest, printed."""
    small, large = results[str(min(sizes))], results[str(max(sizes))]
    ratio = large["incremental"]["p50_ms"] / small["incremental"]["p50_ms"]
    cpu_ratio = (
        large["incremental_server_cpu"]["p50_ms"] / small["incremental_server_cpu"]["p50_ms"]
    )
    print(
        f"incremental p50 at R={max(sizes)} / R={min(sizes)}: {ratio:.2f}x wall,"
        f" {cpu_ratio:.2f}x server CPU{note}"
    )
    return round(ratio, 2), round(cpu_ratio, 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, action="append", help="R (repeatable)")
    parser.add_argument("--samples", type=int, default=40, help="incremental syncs per R")
    parser.add_argument("--initial-samples", type=int, default=5)
    parser.add_argument("--view", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--json-out", default="bench/results/sync_rooms.json")
    args = parser.parse_args()
    sizes = args.rooms or [50, 200, 500]
    results = asyncio.run(measure(sizes, args.samples, args.initial_samples, args.view))
    ratio, cpu_ratio = compare(results, sizes, " (target <= 1.5x)")
    report = {
        "view": args.view,
        "messages_per_room": MESSAGES_PER_ROOM,
        "sizes": results,
        "ratio": ratio,
        "cpu_ratio": cpu_ratio,
    }
    Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json_out).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
