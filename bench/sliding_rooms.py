"""Sliding sync (MSC4186) cost against the number of rooms a user is in.

    python -m bench.sliding_rooms                     # R = 50, 200
    python -m bench.sliding_rooms --rooms 50 --rooms 500 --samples 30

The same set-up as bench/sync_rooms.py (one ``outlast serve``, one worker, R rooms
of 5 messages each per user, sizes sampled in turn), with Element X's room-list
shape of request: one list, ``ranges [[0, 19]]``, ``timeline_limit 1``, the name
and lazy members as required state.

- initial: a new connection (no ``pos``), p50 over a few samples;
- incremental: one new message in one of the user's rooms (a different room each
  time, not timed), then the request with the last ``pos`` and ``timeout=0``
  (timed, with the serving thread's CPU). Every answer must hold that room with
  that one event.

Unlike /sync, every sliding sync pass orders all of the user's rooms (one indexed
read per room for its latest activity), so the incremental cost is expected to
grow with R; this measures by how much. Results go to
``bench/results/sliding_rooms.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from bench.run import Embedded
from bench.sync_rooms import _cpu_ns, _grow, compare, summarize
from bench.workload import Client

SLIDING = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync?timeout=0"
BODY = {
    "conn_id": "room-list",
    "lists": {
        "all": {
            "ranges": [[0, 19]],
            "timeline_limit": 1,
            "required_state": [["m.room.name", ""], ["m.room.member", "$LAZY"]],
        }
    },
}


class Member:
    """One user in ``size`` rooms, and the ``pos`` of its connection."""

    def __init__(self, client: Client, size: int, pid: int) -> None:
        self.c = client
        self.pid = pid
        self.size = size
        self.rooms: list[str] = []
        self.pos = ""
        self.initial: list[float] = []
        self.incremental: list[float] = []
        self.cpu: list[float] = []

    async def connect(self) -> None:
        t = time.perf_counter()
        data = await self.c.ok("POST", SLIDING, BODY)
        self.initial.append(time.perf_counter() - t)
        if data["lists"]["all"]["count"] != self.size or len(data["rooms"]) != min(20, self.size):
            raise RuntimeError(f"initial answer: count {data['lists']['all']['count']}")
        self.pos = str(data["pos"])

    async def incremental_sync(self, i: int, timed: bool = True) -> None:
        room_id = self.rooms[(i * 7919) % len(self.rooms)]
        event_id = await self.c.send(room_id, f"new {i}")
        cpu, t = _cpu_ns(self.pid), time.perf_counter()
        data = await self.c.ok("POST", f"{SLIDING}&pos={quote(self.pos)}", BODY)
        if timed:
            self.incremental.append(time.perf_counter() - t)
            self.cpu.append((_cpu_ns(self.pid) - cpu) / 1e9)
        got = [e["event_id"] for e in data["rooms"].get(room_id, {}).get("timeline", [])]
        if got != [event_id]:
            raise RuntimeError(f"incremental answer for {room_id}: {got}")
        self.pos = str(data["pos"])


async def measure(sizes: list[int], samples: int, initial_samples: int) -> dict[str, Any]:
    server = Embedded(workers=1)
    try:
        async with aiohttp.ClientSession() as session:
            members = []
            for n, size in enumerate(sorted(sizes)):
                c = Client(session, server.url)
                await c.register(f"slidingrooms{n}")
                member = Member(c, size, server.proc.pid)
                started = time.monotonic()
                await _grow(c, member.rooms, size)
                print(f"R={size:4}  set up in {time.monotonic() - started:.0f} s", flush=True)
                members.append(member)
            for _ in range(initial_samples):
                for member in members:
                    await member.connect()
            for member in members:
                for i in range(3):  # warm up
                    await member.incremental_sync(i, timed=False)
            for i in range(samples):
                for member in members:
                    await member.incremental_sync(i + 3)
            results = summarize(members)
            return results
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, action="append", help="R (repeatable)")
    parser.add_argument("--samples", type=int, default=30, help="incremental requests per R")
    parser.add_argument("--initial-samples", type=int, default=5)
    parser.add_argument("--json-out", default="bench/results/sliding_rooms.json")
    args = parser.parse_args()
    sizes = args.rooms or [50, 200]
    results = asyncio.run(measure(sizes, args.samples, args.initial_samples))
    ratio, cpu_ratio = compare(results, sizes)
    report = {"sizes": results, "ratio": ratio, "cpu_ratio": cpu_ratio}
    Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json_out).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
