"""Thumbnails under attack, against a real server on its defaults.

Was (issue 11): a 243 KiB PNG declaring 7999x7999 passed the 64 MP header
check and was decoded and resized in full in the shared thread pool; five
parallel requests took a worker from 57 MiB to 3.76 GiB. The same through
the unauthenticated legacy path.
"""

from __future__ import annotations

import io
import re
import struct
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from tests.e2e.hostile import Reply, register, request
from tests.servers import OutlastProcess, start_outlast

SIZES = [("32", "32", "crop"), ("96", "96", "crop"), ("320", "240", "scale")]
SIZES += [("640", "480", "scale"), ("800", "600", "scale")]
PEAK_TARGET_MIB = 512


def png(size: tuple[int, int], mode: str = "RGBA") -> bytes:
    """A compressible image of this size: tiny on disk, expensive to decode."""
    image = Image.new(mode, size)
    image.paste(Image.new(mode, (size[0], 64), (200, 40, 90, 128)[: len(mode)]), (0, 0))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


class Media:
    def __init__(self, proc: OutlastProcess) -> None:
        self.proc = proc
        reply = register(proc, "uploader")
        assert reply.status == 200, reply
        self.token: str = reply.body["access_token"]

    def upload(self, data: bytes, mime: str) -> str:
        reply = request(
            self.proc,
            "POST",
            "/_matrix/media/v3/upload",
            data,
            self.token,
            headers={"Content-Type": mime},
        )
        assert reply.status == 200, reply
        return str(reply.body["content_uri"]).removeprefix("mxc://")

    def thumbnail(self, media: str, size: tuple[str, str, str], legacy: bool = False) -> Reply:
        width, height, method = size
        query = f"?width={width}&height={height}&method={method}"
        if legacy:
            return request(self.proc, "GET", f"/_matrix/media/v3/thumbnail/{media}{query}")
        return request(
            self.proc, "GET", f"/_matrix/client/v1/media/thumbnail/{media}{query}", token=self.token
        )

    def renders(self) -> float:
        reply = request(self.proc, "GET", "/_outlast/metrics")
        found = re.search(rb"^outlast_thumbnail_renders_total (\S+)$", reply.body, re.M)
        assert found, reply.body[:500]
        return float(found.group(1))


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory, view_backend: str) -> Iterator[Media]:
    proc = start_outlast(tmp_path_factory.mktemp("hostile-media") / "site", limits="")
    try:
        yield Media(proc)
    finally:
        proc.stop()


def peak_rss_mib(proc: OutlastProcess) -> float:
    for line in Path(f"/proc/{proc.process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_an_image_over_the_pixel_budget_is_413_on_both_paths(media: Media) -> None:
    bomb = media.upload(png((7999, 7999), "1"), "image/png")  # 64 MP in a few KiB
    for legacy in (False, True):
        for size in SIZES:
            reply = media.thumbnail(bomb, size, legacy)
            assert (reply.status, reply.errcode) == (413, "M_TOO_LARGE"), reply


def test_a_webp_declaring_a_huge_canvas_is_refused_before_decoding(media: Media) -> None:
    # A VP8X header claiming 16384 x 16384 (268 MP); Pillow would allocate the
    # canvas on open, so the size is read from the header first.
    fake = b"RIFF" + struct.pack("<I", 1000) + b"WEBPVP8X" + struct.pack("<I", 10)
    fake += b"\x10\x00\x00\x00" + (16383).to_bytes(3, "little") * 2 + bytes(64)
    webp = media.upload(fake, "image/webp")
    reply = media.thumbnail(webp, SIZES[0])
    assert (reply.status, reply.errcode) == (413, "M_TOO_LARGE"), reply


def test_undecodable_images_get_a_clean_error(media: Media) -> None:
    """Was: the error message carried the decoder's object repr."""
    for data in (b"not really a png", b"\x89PNG\r\n\x1a\n" + bytes(50), png((300, 300))[:400]):
        broken = media.upload(data, "image/png")
        reply = media.thumbnail(broken, SIZES[2])
        assert reply.status == 400, reply
        assert reply.body["error"] == "cannot decode the image", reply
        assert "<" not in reply.body["error"] and "0x" not in reply.body["error"]


def test_concurrent_requests_for_one_size_share_one_render(media: Media) -> None:
    image = media.upload(png((2400, 1800)), "image/png")
    before = media.renders()

    def fetch(i: int) -> Reply:
        return media.thumbnail(image, SIZES[3], legacy=i % 2 == 1)

    with ThreadPoolExecutor(max_workers=8) as pool:
        replies = list(pool.map(fetch, range(8)))
    assert {r.status for r in replies} == {200}
    assert len({r.body for r in replies}) == 1  # the same bytes for everyone
    assert media.renders() - before == 1
    # Later requests are served from the cache: still one render.
    assert fetch(0).body == replies[0].body
    assert media.renders() - before == 1


def test_parallel_thumbnails_of_the_worst_image_stay_within_the_memory_target(
    tmp_path: Path,
) -> None:
    """20 requests at once over every size and both paths, of the costliest image
    that passes the checks (RGBA just under 32 MP): the worker's peak RSS stays
    under 512 MiB (bench/thumbnails.py measures every candidate format)."""
    proc = start_outlast(tmp_path / "memory", limits="")
    try:
        site = Media(proc)
        worst = site.upload(png((5656, 5656)), "image/png")

        def fetch(i: int) -> int:
            return site.thumbnail(worst, SIZES[i % len(SIZES)], legacy=i % 2 == 1).status

        with ThreadPoolExecutor(max_workers=20) as pool:
            statuses = list(pool.map(fetch, range(20)))
        assert set(statuses) == {200}, statuses
        peak = peak_rss_mib(proc)
        assert peak < PEAK_TARGET_MIB, peak
        assert site.renders() == len(SIZES)  # one per size, however many asked
    finally:
        proc.stop()
