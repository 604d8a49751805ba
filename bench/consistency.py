"""What the read barrier costs: request latency with and without it, side by side.

    python -m bench.consistency              # 3 rounds: embedded 1 worker and 3 sites, on/off
    python -m bench.consistency --quick      # 1 short round

Each round starts every target twice — ``[consistency] read_barrier = true``
and ``= false`` (the benchmark-only switch, docs/config.md) — alternating
which goes first, and runs the same phases against each:

- ``whoami``: one client, sequential ``GET /account/whoami``: authentication alone.
- ``send x8`` / ``send x1``: 8 concurrent senders, then one (through the front
  door for the cluster), as in bench/run.py.
- ``read own write``: send at one site, then ``GET /event`` of it at another
  (the read must see a write made elsewhere; the same server for the embedded
  target); the read's latency. Stale reads (404) are counted.
- ``sync``: sequential ``GET /sync?timeout=0`` from the previous token.
- ``reads x8``: 8 concurrent clients reading events: shared questions.

Figures are medians over rounds; compare on/off within a round (this machine
drifts by ±15% from one minute to the next). Writes JSON to
``bench/results/consistency-latest.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from bench import workload
from bench.run import Embedded, LocalCluster, versions
from bench.stats import median, summarize_ms
from outlast.runtime import run as run_loop

V3 = "/_matrix/client/v3"


def knob(on: bool) -> str:
    return f"\n[consistency]\nread_barrier = {'true' if on else 'false'}\n"


async def timed(n: int, one: Callable[[int], Awaitable[None]]) -> list[float]:
    samples = []
    for i in range(n):
        t = time.perf_counter()
        await one(i)
        samples.append(time.perf_counter() - t)
    return samples


async def measure(
    front: str, writer: str, sites: list[str], n: int, per_sender: int
) -> dict[str, dict[str, float]]:
    """Every phase against one target: sends through ``front``; a write to read back
    is made at ``writer`` and read at ``sites`` (cycled)."""
    out: dict[str, dict[str, float]] = {}
    prefix = "c" + uuid.uuid4().hex[:8]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:
        clients, rooms = await workload.setup(session, front, 9, 4, prefix)
        me = clients[0]

        async def whoami(_: int) -> None:
            await me.ok("GET", V3 + "/account/whoami")

        out["whoami"] = summarize_ms(await timed(n, whoami))
        send8 = await workload.phase_send(clients, rooms, 8, per_sender)
        out["send x8"] = {k: send8[k] for k in ("n", "p50_ms", "p95_ms", "p99_ms", "max_ms")}
        send1 = await workload.phase_send(clients, rooms, 1, per_sender * 2)
        out["send x1"] = {k: send1[k] for k in ("n", "p50_ms", "p95_ms", "p99_ms", "max_ms")}

        readers = [workload.Client(session, url) for url in sites]
        for reader in readers:
            reader.token = me.token
        stale = 0
        reads: list[float] = []

        author = workload.Client(session, writer)
        author.token = me.token

        async def read_own_write(i: int) -> None:
            nonlocal stale
            room = rooms[i % len(rooms)]
            event_id = await author.send(room, f"rw {i}")
            reader = readers[i % len(readers)]
            t = time.perf_counter()
            status, _ = await reader.call("GET", f"{V3}/rooms/{quote(room)}/event/{event_id}")
            reads.append(time.perf_counter() - t)
            stale += status == 404

        await timed(n, read_own_write)
        out["read own write"] = {**summarize_ms(reads), "stale": float(stale)}

        token = (await me.ok("GET", V3 + "/sync?timeout=0"))["next_batch"]

        async def sync(_: int) -> None:
            nonlocal token
            body = await me.ok("GET", f"{V3}/sync?timeout=0&since={quote(token)}")
            token = body["next_batch"]

        out["sync"] = summarize_ms(await timed(n, sync))
        event_ids = [await me.send(rooms[0], f"r {i}") for i in range(8)]
        concurrent: list[float] = []

        async def reader_loop(k: int) -> None:
            reader = workload.Client(session, sites[k % len(sites)])
            reader.token = clients[k + 1].token
            for i in range(n // 4):
                t = time.perf_counter()
                await reader.ok("GET", f"{V3}/rooms/{quote(rooms[0])}/event/{event_ids[i % 8]}")
                concurrent.append(time.perf_counter() - t)

        await asyncio.gather(*(reader_loop(k) for k in range(8)))
        out["reads x8"] = summarize_ms(concurrent)
    return out


async def one_target(kind: str, on: bool, n: int, per_sender: int) -> dict[str, Any]:
    if kind == "embedded":
        embedded = Embedded(1, knob(on))
        try:
            return await measure(embedded.url, embedded.url, [embedded.url], n, per_sender)
        finally:
            embedded.stop()
    cluster = LocalCluster(knob(on))
    try:
        sites = [s["url"] for s in cluster.description["sites"]]
        # Own writes are made at the first site and read back at the other two.
        door = cluster.description["front_door"]
        return await measure(door, sites[0], sites[1:], n, per_sender)
    finally:
        cluster.stop()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {"versions": versions(), "settings": vars(args).copy(), "rounds": []}
    for r in range(args.rounds):
        one: dict[str, Any] = {}
        for kind in ("embedded", "3 sites"):
            order = (True, False) if r % 2 == 0 else (False, True)
            for on in order:
                label = f"{kind}, barrier {'on' if on else 'off'}"
                print(f"== round {r + 1}/{args.rounds}: {label}", flush=True)
                one[label] = await one_target(kind, on, args.n, args.per_sender)
                for phase, s in one[label].items():
                    extra = f" stale {int(s['stale'])}" if "stale" in s else ""
                    print(
                        f"   {phase:<16} p50 {s['p50_ms']:7.2f} ms  p99 {s['p99_ms']:7.2f} ms"
                        + extra,
                        flush=True,
                    )
        report["rounds"].append(one)
    report["medians"] = {
        label: {
            phase: {
                k: median([rnd[label][phase][k] for rnd in report["rounds"]])
                for k in report["rounds"][0][label][phase]
            }
            for phase in report["rounds"][0][label]
        }
        for label in report["rounds"][0]
    }
    return report


def table(medians: dict[str, Any]) -> str:
    lines = ["| target | phase | p50 on | p50 off | p50 added | p99 on | p99 off | p99 added |"]
    lines.append("|---|---|---|---|---|---|---|---|")
    for kind in ("embedded", "3 sites"):
        on, off = medians[f"{kind}, barrier on"], medians[f"{kind}, barrier off"]
        for phase in on:
            a, b = on[phase], off[phase]
            lines.append(
                f"| {kind} | {phase} | {a['p50_ms']:.2f} | {b['p50_ms']:.2f} | "
                f"{a['p50_ms'] - b['p50_ms']:+.2f} | {a['p99_ms']:.2f} | {b['p99_ms']:.2f} | "
                f"{a['p99_ms'] - b['p99_ms']:+.2f} |"
            )
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--n", type=int, default=400, help="requests per sequential phase")
    p.add_argument("--per-sender", type=int, default=150)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json-out", default="bench/results/consistency-latest.json")
    args = p.parse_args()
    if args.quick:
        args.rounds, args.n, args.per_sender = 1, 100, 40
    report = run_loop(main_async(args))
    print(table(report["medians"]))
    Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json_out).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
