"""/sync cost against the number of rooms a user is in.

    python -m bench.sync_rooms                      # R = 50, 200, 500
    python -m bench.sync_rooms --rooms 50 --rooms 100 --samples 40

One ``outlast serve`` (one worker; the benchmarks' settings: cheap argon2, no
rate limits) and one user, real HTTP. The user joins rooms until it is in R of
them, each holding 5 messages; then, at each R:

- initial sync: ``GET /sync?timeout=0`` with no token, p50 over a few samples;
- incremental sync: one new message in one room (a different room each time,
  not timed), then ``GET /sync?since=<previous next_batch>&timeout=0`` (timed).
  Every answer must hold exactly that one room with that one event.

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
from pathlib import Path
from typing import Any

import aiohttp

from bench.run import Embedded
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


async def _initial(c: Client, samples: int) -> tuple[dict[str, float], str, int]:
    times = []
    data: Any = {}
    for _ in range(samples):
        t = time.perf_counter()
        data = await c.ok("GET", SYNC)
        times.append(time.perf_counter() - t)
    return summarize_ms(times), str(data["next_batch"]), len(data["rooms"]["join"])


async def _incremental(
    c: Client, rooms: list[str], token: str, samples: int
) -> tuple[dict[str, float], str]:
    times = []
    for i in range(samples):
        room_id = rooms[(i * 7919) % len(rooms)]
        event_id = await c.send(room_id, f"new {i}")
        t = time.perf_counter()
        data = await c.ok("GET", f"{SYNC}&since={token}")
        times.append(time.perf_counter() - t)
        joined = data["rooms"]["join"]
        got = [e["event_id"] for e in joined.get(room_id, {}).get("timeline", {}).get("events", [])]
        if list(joined) != [room_id] or got != [event_id]:
            raise RuntimeError(f"incremental sync answered {list(joined)[:5]} / {got}")
        token = str(data["next_batch"])
    return summarize_ms(times), token


async def measure(sizes: list[int], samples: int, initial_samples: int) -> dict[str, Any]:
    server = Embedded(workers=1)
    try:
        async with aiohttp.ClientSession() as session:
            c = Client(session, server.url)
            await c.register("syncrooms")
            rooms: list[str] = []
            results: dict[str, Any] = {}
            for size in sorted(sizes):
                started = time.monotonic()
                await _grow(c, rooms, size)
                grown = time.monotonic() - started
                initial, token, joined = await _initial(c, initial_samples)
                if joined != size:
                    raise RuntimeError(f"initial sync holds {joined} joined rooms, not {size}")
                _, token = await _incremental(c, rooms, token, 3)  # warm up
                incremental, _ = await _incremental(c, rooms, token, samples)
                results[str(size)] = {
                    "rooms": size,
                    "initial": initial,
                    "incremental": incremental,
                    "setup_s": round(grown, 1),
                }
                print(
                    f"R={size:4}  initial p50 {initial['p50_ms']:7.1f} ms"
                    f"  incremental p50 {incremental['p50_ms']:6.2f} ms"
                    f" (p95 {incremental['p95_ms']:6.2f})  [setup {grown:.0f} s]",
                    flush=True,
                )
            return results
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, action="append", help="R (repeatable)")
    parser.add_argument("--samples", type=int, default=30, help="incremental syncs per R")
    parser.add_argument("--initial-samples", type=int, default=5)
    parser.add_argument("--json-out", default="bench/results/sync_rooms.json")
    args = parser.parse_args()
    sizes = args.rooms or [50, 200, 500]
    results = asyncio.run(measure(sizes, args.samples, args.initial_samples))
    small, large = results[str(min(sizes))], results[str(max(sizes))]
    ratio = large["incremental"]["p50_ms"] / small["incremental"]["p50_ms"]
    print(f"incremental p50 at R={max(sizes)} / R={min(sizes)}: {ratio:.2f}x (target <= 1.5x)")
    report = {"messages_per_room": MESSAGES_PER_ROOM, "sizes": results, "ratio": round(ratio, 2)}
    Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json_out).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
