"""What zlib does to a real view snapshot: ratio and speed per level, on this machine.

    python -m bench.snapshot_compress VIEW_FILE [--levels 1 3 6] [--out FILE]

The snapshot rebuild's time is the install, and the install's fetch is CPU-bound per
byte moved, so compressing the stored snapshot pays if the bytes saved cost more to
move than to decompress. This measures both sides on one file (a view copied by
``outlast view snapshot`` or a stopped site's ``view.sqlite``), streamed in 1 MiB
reads as the snapshot code does: compress MB/s and decompress MB/s (both of the
uncompressed bytes), the ratio, and SHA-256 MB/s for comparison. The compressed
bytes are kept in memory per level only as a list of chunks, never as one file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
import zlib
from pathlib import Path
from typing import Any

from bench.stats import emit_json

READ = 1 << 20


def compressed_chunks(path: Path, level: int) -> tuple[list[bytes], float]:
    """The file deflated at ``level`` (zlib format), as the chunks the stream produced."""
    out: list[bytes] = []
    co = zlib.compressobj(level)
    started = time.monotonic()
    with path.open("rb") as f:
        while raw := f.read(READ):
            if piece := co.compress(raw):
                out.append(piece)
    out.append(co.flush())
    return out, time.monotonic() - started


def inflate(chunks: list[bytes]) -> tuple[int, float]:
    """Decompress the chunks streamed (bounded output per call); bytes out and seconds."""
    do = zlib.decompressobj()
    total = 0
    started = time.monotonic()
    for chunk in chunks:
        total += len(do.decompress(chunk))
    total += len(do.flush())
    return total, time.monotonic() - started


def sha256_seconds(path: Path) -> float:
    digest = hashlib.sha256()
    started = time.monotonic()
    with path.open("rb") as f:
        while raw := f.read(READ):
            digest.update(raw)
    return time.monotonic() - started


def measure(path: Path, levels: list[int]) -> dict[str, Any]:
    size = path.stat().st_size
    mb = size / 1e6
    result: dict[str, Any] = {
        "file_bytes": size,
        "load_at_start": [round(x, 2) for x in os.getloadavg()],
        "sha256_mb_per_s": round(mb / sha256_seconds(path), 1),
        "levels": [],
    }
    for level in levels:
        chunks, c_seconds = compressed_chunks(path, level)
        stored = sum(len(c) for c in chunks)
        out, d_seconds = inflate(chunks)
        if out != size:
            raise RuntimeError(f"level {level}: {out} bytes back, not {size}")
        row = {
            "level": level,
            "compressed_bytes": stored,
            "ratio": round(size / stored, 2),
            "compress_mb_per_s": round(mb / c_seconds, 1),
            "decompress_mb_per_s": round(mb / d_seconds, 1),
            "load1": round(os.getloadavg()[0], 2),
        }
        print(json.dumps(row), file=sys.stderr)
        result["levels"].append(row)
        del chunks
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("view", type=Path)
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 3, 6])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = measure(args.view, args.levels)
    emit_json(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
