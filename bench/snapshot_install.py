"""A snapshot's install (fetch, check, write the view file), stored compressed or not.

    python -m bench.snapshot_install VIEW_FILE [--rounds 3] [--out FILE]

Stores one real view file twice in an object bucket of an embedded nats-server: as
older versions did (the file as it is, manifest without ``compression``) and as
snapshots are stored now (zlib), then installs each the way ``seed_view`` does
(``fetch_into``: fetched chunk by chunk, the stored bytes checked against their
SHA-256, inflated in a thread overlapping the fetch), alternating, ``--rounds``
times. Isolates the install, the part of a snapshot rebuild that grows with the
view, from the process and nats-server start and the tail replay.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.snapshot_fetch import scratch_bucket
from bench.stats import emit_json
from outlast.log.objects import StoredObject
from outlast.view.snapshot import NONE, ZLIB, Manifest, deflate_file, fetch_into, file_sha256


async def measure(view: Path, rounds: int, work: Path) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    async with scratch_bucket(work / "nats", "BENCH_SNAPSHOT_INSTALL") as bucket:
        size = view.stat().st_size
        packed = work / "packed"
        started = time.monotonic()
        packed_sha, packed_size = deflate_file(view, packed)
        deflate_s = time.monotonic() - started
        base = Manifest(1, {}, "bench", "bench", "", 0, "", size)
        stored: dict[str, tuple[StoredObject, Manifest]] = {}
        for kind, path, sha in (
            (NONE, view, file_sha256(view)),
            (ZLIB, packed, packed_sha),
        ):
            manifest = Manifest(**{**base.__dict__, "sha256": sha, "compression": kind})
            with path.open("rb") as source:
                obj = await bucket.put(kind, source, {}, expected_seq=0)
            stored[kind] = (obj, manifest)
        for _ in range(rounds):
            for kind, (obj, manifest) in stored.items():
                load = os.getloadavg()[0]
                started = time.monotonic()
                with (work / "installed").open("wb") as sink:
                    problem = await fetch_into(bucket, obj, manifest, sink)
                seconds = time.monotonic() - started
                if problem is not None or (work / "installed").stat().st_size != size:
                    raise RuntimeError(f"{kind}: {problem}")
                row = {
                    "stored": kind,
                    "stored_bytes": obj.size,
                    "install_s": round(seconds, 2),
                    "view_mb_per_s": round(size / 1e6 / seconds, 1),
                    "load1": round(load, 2),
                }
                print(json.dumps(row), file=sys.stderr)
                runs.append(row)
                (work / "installed").unlink()
    return {
        "view_bytes": size,
        "zlib_bytes": packed_size,
        "deflate_s": round(deflate_s, 2),
        "runs": runs,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("view", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="outlast-snapshot-install-"))
    try:
        result = asyncio.run(measure(args.view, args.rounds, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    emit_json(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
