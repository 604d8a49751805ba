"""Thumbnail memory bench: the worst images that pass the checks, 20 requests at once.

    python -m bench.thumbnails                 # every candidate image, default [media] settings
    python -m bench.thumbnails --requests 40   # more at once
    python -m bench.thumbnails --only png-rgba

For each candidate (just under ``media.max_thumbnail_pixels``, small on disk,
expensive to decode) a fresh ``outlast serve`` (the benchmarks' settings:
cheap argon2, no rate limits; [media] on its defaults) gets the upload, then
N parallel thumbnail requests spread over every configured size, half on
the authenticated ``/_matrix/client/v1/media`` path and half on the
unauthenticated legacy ``/_matrix/media/v3`` one. The figure is the serving
process's peak resident memory (``VmHWM`` from /proc), before and after;
the target is under 512 MiB. Results go to ``bench/results/thumbnails.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from PIL import Image

from bench.run import Embedded
from outlast.config import MediaConfig

TARGET_MIB = 512
SIDE = 5656  # 5656 x 5656 = 31.99 MP, just under the default 32 MP budget
WEBP_SIDE = 3265  # 3265 x 3265 x 3 (a WebP counts three times) = 31.98 MP


def _pattern(mode: str, side: int = SIDE) -> Image.Image:
    """A full-size image that compresses well (a few hundred KiB on disk)."""
    image = Image.new(mode, (side, side))
    colour = 255 if mode in ("L", "P", "I;16") else (200, 40, 90, 128)[: len(mode)]
    stripe = Image.new(mode, (side, 64), colour)
    for top in range(0, side, 256):
        image.paste(stripe, (0, top))
    return image


def _png_rgba() -> tuple[bytes, str]:
    out = io.BytesIO()
    _pattern("RGBA").save(out, "PNG")
    return out.getvalue(), "image/png"


def _png_palette_alpha() -> tuple[bytes, str]:
    out = io.BytesIO()
    _pattern("P").save(out, "PNG", transparency=0)  # palette with alpha: converted to RGBA
    return out.getvalue(), "image/png"


def _png_16bit() -> tuple[bytes, str]:
    out = io.BytesIO()
    _pattern("I;16").save(out, "PNG")
    return out.getvalue(), "image/png"


def _webp_rgba() -> tuple[bytes, str]:
    out = io.BytesIO()
    _pattern("RGBA", WEBP_SIDE).save(out, "WEBP", quality=10, method=0)
    return out.getvalue(), "image/webp"


def _jpeg_cmyk() -> tuple[bytes, str]:
    out = io.BytesIO()
    _pattern("CMYK").save(out, "JPEG", quality=50)
    return out.getvalue(), "image/jpeg"


def _gif() -> tuple[bytes, str]:
    out = io.BytesIO()
    _pattern("P").save(out, "GIF")
    return out.getvalue(), "image/gif"


CANDIDATES: dict[str, Callable[[], tuple[bytes, str]]] = {
    "png-rgba": _png_rgba,
    "png-palette-alpha": _png_palette_alpha,
    "png-16bit-grey": _png_16bit,
    "webp-rgba": _webp_rgba,
    "jpeg-cmyk": _jpeg_cmyk,
    "gif": _gif,
}


def _kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


async def _measure(server: Embedded, data: bytes, mime: str, requests: int) -> dict[str, Any]:
    sizes = MediaConfig().thumbnail_sizes
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        body = {"username": "bench", "password": "pw", "auth": {"type": "m.login.dummy"}}
        async with http.post(server.url + "/_matrix/client/v3/register", json=body) as resp:
            token = (await resp.json())["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        async with http.post(
            server.url + "/_matrix/media/v3/upload",
            data=data,
            headers={**auth, "Content-Type": mime},
        ) as resp:
            assert resp.status == 200, await resp.text()
            media = (await resp.json())["content_uri"].removeprefix("mxc://")
        before = _kib(server.proc.pid, "VmHWM")

        async def one(i: int) -> int:
            width, rest = sizes[i % len(sizes)].split("x")
            height, method = rest.split("-")
            legacy = i % 2 == 1
            base = (
                "/_matrix/media/v3/thumbnail/" if legacy else "/_matrix/client/v1/media/thumbnail/"
            )
            params = {"width": width, "height": height, "method": method}
            async with http.get(
                server.url + base + media, params=params, headers={} if legacy else auth
            ) as resp:
                await resp.read()
                return resp.status

        started = time.monotonic()
        statuses = await asyncio.gather(*(one(i) for i in range(requests)))
        elapsed = time.monotonic() - started
    peak = _kib(server.proc.pid, "VmHWM")
    return {
        "source_kib": len(data) // 1024,
        "statuses": sorted(set(statuses)),
        "peak_before_mib": round(before / 1024, 1),
        "peak_rss_mib": round(peak / 1024, 1),
        "seconds": round(elapsed, 2),
        "under_target": peak / 1024 < TARGET_MIB,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--only", choices=sorted(CANDIDATES), action="append")
    parser.add_argument("--json-out", default="bench/results/thumbnails.json")
    args = parser.parse_args()
    results: dict[str, Any] = {"requests": args.requests, "target_mib": TARGET_MIB, "images": {}}
    for name in args.only or list(CANDIDATES):
        data, mime = CANDIDATES[name]()
        with Image.open(io.BytesIO(data)) as probe:
            width, height = probe.size
        server = Embedded(workers=1)  # one serving process: the one measured
        try:
            result = asyncio.run(_measure(server, data, mime, args.requests))
        finally:
            server.stop()
        results["images"][name] = {"size": f"{width}x{height}", "type": mime, **result}
        print(
            f"{name:18} {width}x{height} {len(data) // 1024:6} KiB  statuses {result['statuses']}"
            f"  peak RSS {result['peak_rss_mib']:7.1f} MiB (idle {result['peak_before_mib']})"
            f"  {result['seconds']:6.2f} s",
            flush=True,
        )
    worst = max(r["peak_rss_mib"] for r in results["images"].values())
    results["worst_peak_rss_mib"] = worst
    print(f"worst peak RSS {worst} MiB (target < {TARGET_MIB} MiB)")
    Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json_out).write_text(json.dumps(results, indent=2) + "\n")
    return 0 if worst < TARGET_MIB else 1


if __name__ == "__main__":
    sys.exit(main())
