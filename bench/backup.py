"""Backup and restore throughput: how long ``outlast backup create`` and ``restore`` take.

    python -m bench.backup --messages 100000
    python -m bench.backup --messages 100000 --media-mib 64

An embedded nats-server (``sync_interval: always``, as ``outlast serve`` runs
it) is filled with room-message facts shaped like Outlast's own (the
``events`` fact of a ``PUT /send``, about 450 bytes, with its ``Nats-Msg-Id``),
spread over 50 rooms in 4 partitions, plus optional media (128 KiB chunks in
the object store). Then ``outlast backup create --data-dir`` runs against it
while it serves (the CLI, as an operator runs it), and ``outlast backup
restore`` into a new data directory. Figures go to stdout and
``bench/results/backup-<messages>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from outlast.log.client import LogClient
from outlast.log.engine import embedded_node
from outlast.log.names import Names

ROOMS = 50
WINDOW = 2000


def fact(n: int, room: str) -> bytes:
    event = {
        "content": {
            "body": f"message number {n} of the backup bench, some text",
            "msgtype": "m.text",
        },
        "event_id": f"${n:043d}",
        "origin_server_ts": 1796181658821 + n,
        "room_id": room,
        "sender": f"@user{n % 20}:localhost",
        "type": "m.room.message",
    }
    raw = {"events": [event], "op": "events", "txn": {"device_id": "BENCHDEV", "txn_id": f"t{n}"}}
    return json.dumps(raw, separators=(",", ":")).encode()


async def fill(url: str, messages: int, media_mib: int) -> None:
    names = Names()
    log = LogClient([url], name="bench-fill", publish_timeout=30)
    await log.connect()
    try:
        await log.ensure_streams(
            [*names.streams(), *names.control_streams()], replicas=1, duplicate_window=120
        )
        rooms = [f"!bench{i}:localhost" for i in range(ROOMS)]
        pending = []
        for n in range(messages):
            room = rooms[n % ROOMS]
            subject = names.room_subjects(room).timeline
            pending.append(
                await log.js.publish_async(
                    subject, fact(n, room), headers={"Nats-Msg-Id": f"bench-{n}"}, wait_stall=60
                )
            )
            if len(pending) >= WINDOW:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
        if media_mib:
            from outlast.log.objects import ObjectBucket

            bucket = ObjectBucket(log, names.media_bucket)
            await bucket.ensure(1)
            blob = os.urandom(1024 * 1024)
            for i in range(media_mib):
                import io

                await bucket.put(f"localhost/bench{i}", io.BytesIO(blob), {}, expected_seq=0)
    finally:
        await log.close()


def timed(argv: list[str]) -> tuple[float, str]:
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "outlast", *argv], capture_output=True, text=True, timeout=7200
    )
    seconds = time.monotonic() - started
    if out.returncode != 0:
        raise SystemExit(f"outlast {' '.join(argv)} failed:\n{out.stderr}")
    return seconds, out.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--media-mib", type=int, default=0)
    parser.add_argument("--dir", help="work directory (default: a temporary one, removed after)")
    args = parser.parse_args()
    work = Path(args.dir or tempfile.mkdtemp(prefix="outlast-bench-backup-"))
    site = work / "site"
    node = embedded_node(site, 0, sync_always=True)
    result: dict[str, Any] = {"messages": args.messages, "media_mib": args.media_mib}
    try:
        node.start()
        asyncio.run(node.wait_ready())
        started = time.monotonic()
        asyncio.run(fill(node.url, args.messages, args.media_mib))
        result["fill_seconds"] = round(time.monotonic() - started, 2)
        seconds, manifest_path = timed(
            ["backup", "create", "--to", str(work / "backups"), "--data-dir", str(site)]
        )
        manifest = json.loads(Path(manifest_path).read_text())
        result["backup_seconds"] = round(seconds, 2)
        result["backup_bytes"] = manifest["total_bytes"]
        result["backup_messages"] = manifest["total_messages"]
    finally:
        node.stop()
    try:
        seconds, _ = timed(
            ["backup", "restore", "--from", str(work / "backups"), "--data-dir", str(work / "new")]
        )
        result["restore_seconds"] = round(seconds, 2)
        for phase in ("backup", "restore"):
            s = result[f"{phase}_seconds"]
            result[f"{phase}_msgs_per_s"] = round(result["backup_messages"] / s)
            result[f"{phase}_mb_per_s"] = round(result["backup_bytes"] / s / 1e6, 1)
            result[f"{phase}_seconds_per_gb"] = round(s / (result["backup_bytes"] / 1e9), 1)
        print(json.dumps(result, indent=2))
        out = Path(__file__).parent / "results" / f"backup-{args.messages}.json"
        out.write_text(json.dumps(result, indent=2) + "\n")
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
