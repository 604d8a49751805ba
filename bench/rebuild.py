"""Rebuild time of an embedded site's view: from the whole log, and from a view snapshot.

    python -m bench.rebuild [--messages 100000] [--tail 1000] [--out FILE]

Fills an embedded ``outlast serve`` through the Client-Server API, stops it,
stores a view snapshot (``outlast view snapshot``), starts the server again to
send ``--tail`` more messages (the history a snapshot does not hold), stops it,
then times ``outlast view rebuild`` (every message replayed) and
``outlast view rebuild --from-snapshot`` (snapshot fetched, checked, installed,
then only the tail replayed). Each time is a whole command: process start,
nats-server start, catch-up, stop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.run import Embedded
from bench.workload import phase_send, setup


def outlast(server: Embedded, *args: str) -> tuple[float, str, str]:
    """Run an ``outlast`` command on the bench server's data; its wall time and output."""
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "outlast",
            *args,
            "--config",
            str(server.dir / "bench.toml"),
            "--data-dir",
            str(server.dir / "data"),
        ],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"outlast {' '.join(args)} failed: {done.stdout}{done.stderr}")
    return elapsed, done.stdout, done.stderr


def steps(stdout: str) -> dict[str, float]:
    """Seconds from the command's start to each step it reports (log ready, view seeded,
    caught up)."""
    return {
        k.strip().replace(" ", "_"): float(v)
        for k, v in re.findall(r"([a-z ]+?) ([\d.]+)s", stdout)
    }


def replayed(stdout: str) -> int:
    match = re.search(r"(\d+) log messages replayed", stdout)
    if match is None:
        raise RuntimeError(f"no replay count in {stdout!r}")
    return int(match.group(1))


async def fill(url: str, messages: int, prefix: str) -> dict[str, Any]:
    senders = 32
    per_sender = max(1, messages // senders)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=senders)) as session:
        clients, rooms = await setup(session, url, users=16, rooms=20, prefix=prefix)
        return await phase_send(clients, rooms, senders, per_sender)


def size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def measure(messages: int, tail: int, fsync: bool) -> dict[str, Any]:
    # Without an fsync per write the fill is faster; the log it leaves is the same.
    server = Embedded(workers=1, extra_toml="" if fsync else "[log]\nsync_always = false\n")
    try:
        started = time.monotonic()
        sent = asyncio.run(fill(server.url, messages, "h"))
        fill_seconds = time.monotonic() - started
        print(f"filled {messages} messages in {fill_seconds:.0f}s", file=sys.stderr)
        server._terminate()
        snap_seconds, snap_out, _ = outlast(server, "view", "snapshot")
        snapshot_bytes = int(re.search(r"\((\d+) bytes", snap_out).group(1))  # type: ignore[union-attr]
        print(f"snapshot stored in {snap_seconds:.1f}s", file=sys.stderr)
        server.start()
        asyncio.run(fill(server.url, tail, "t"))
        server._terminate()
        log_bytes = size(server.dir / "data" / "nats")
        view_bytes = (server.dir / "data" / "view.sqlite").stat().st_size
        full_seconds, full_out, _ = outlast(server, "view", "rebuild")
        print(f"full rebuild {full_seconds:.1f}s", file=sys.stderr)
        seeded_seconds, seeded_out, seeded_err = outlast(
            server, "view", "rebuild", "--from-snapshot"
        )
        print(f"rebuild from snapshot {seeded_seconds:.1f}s:\n{seeded_err}", file=sys.stderr)
        if "installed" not in seeded_err:
            raise RuntimeError(f"the snapshot was not used: {seeded_err}")
        return {
            "messages": messages,
            "fill_fsync_per_write": fsync,
            "tail_messages": tail,
            "fill_msgs_per_s": sent["throughput_msgs_per_s"],
            "log_bytes": log_bytes,
            "view_bytes": view_bytes,
            "snapshot_bytes": snapshot_bytes,
            "snapshot_seconds": round(snap_seconds, 2),
            "full_rebuild_seconds": round(full_seconds, 2),
            "full_replayed": replayed(full_out),
            "full_rebuild_steps": steps(full_out.split("(", 1)[1]),
            "snapshot_rebuild_seconds": round(seeded_seconds, 2),
            "snapshot_replayed": replayed(seeded_out),
            "snapshot_rebuild_steps": steps(seeded_out.split("(", 1)[1]),
        }
    finally:
        if server.proc.poll() is None:
            server.stop()
        else:
            shutil.rmtree(server.dir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--tail", type=int, default=1_000)
    parser.add_argument(
        "--no-fsync",
        action="store_true",
        help="fill with log.sync_always = false (faster; the rebuilds read the same log)",
    )
    parser.add_argument("--out", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    result = measure(args.messages, args.tail, not args.no_fsync)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
