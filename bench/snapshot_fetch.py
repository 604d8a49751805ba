"""How a snapshot seed's download scales with the view's size, without projecting a view.

    python -m bench.snapshot_fetch [--sizes 574885888 5748858880] [--rounds 2]

Stores objects of the given sizes in one object bucket of an embedded
nats-server, then downloads each (alternating sizes, ``--rounds`` times) as
``outlast view rebuild --from-snapshot`` did before it reused the object's
digest: ``ObjectBucket.read_into`` (chunk by chunk, hashed as it reads), then a
second SHA-256 pass over the written file (``file_sha256``). Both parts are
timed. Used for the 1 M-message row of the snapshot section of RESULTS.md,
whose 5.7 GB view could not be projected in the time available: the default
sizes are the 100 k snapshot measured there and ten times it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bench.stats import emit_json
from outlast.log.client import LogClient
from outlast.log.engine import embedded_node
from outlast.log.objects import ObjectBucket, StoredObject
from outlast.view.snapshot import file_sha256


@contextlib.asynccontextmanager
async def scratch_bucket(store: Path, name: str) -> AsyncIterator[ObjectBucket]:
    """A one-replica object bucket on a nats-server of its own (its store under
    ``store``), stopped on the way out."""
    node = embedded_node(store, 0, False)
    node.start()
    try:
        await node.wait_ready()
        log = LogClient([node.url], name=f"bench-{name.lower()}", publish_timeout=60)
        await log.connect()
        try:
            bucket = ObjectBucket(log, name)
            await bucket.ensure(1)
            yield bucket
        finally:
            await log.close()
    finally:
        node.stop()


async def measure(sizes: list[int], rounds: int, work: Path) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    async with scratch_bucket(work, "BENCH_SNAPSHOT_FETCH") as bucket:
        block = os.urandom(64 << 20)
        stored: dict[int, StoredObject] = {}
        for size in sizes:
            source = work / "source"
            with source.open("wb") as f:
                left = size
                while left:
                    n = min(left, len(block))
                    f.write(block[:n])
                    left -= n
            with source.open("rb") as f:
                stored[size] = await bucket.put(f"o{size}", f, {}, expected_seq=0)
            source.unlink()
        for _ in range(rounds):
            for size in sizes:
                load = os.getloadavg()[0]
                started = time.monotonic()
                with (work / "download").open("wb") as sink:
                    await bucket.read_into(stored[size], sink)
                fetched = time.monotonic() - started
                file_sha256(work / "download")
                total = time.monotonic() - started
                (work / "download").unlink()
                row = {
                    "bytes": size,
                    "fetch_s": round(fetched, 2),
                    "fetch_and_sha256_s": round(total, 2),
                    "mb_per_s": round(size / total / 1e6, 1),
                    "load1": round(load, 2),
                }
                print(json.dumps(row), file=sys.stderr, flush=True)
                results.append(row)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[574_885_888, 5_748_858_880])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="outlast-bench-fetch-"))
    try:
        results = asyncio.run(measure(args.sizes, args.rounds, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    emit_json(results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
