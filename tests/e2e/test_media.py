"""The media repository against a real server: bytes, names, limits, thumbnails."""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import nats
import pytest
from nio import (
    ContentRepositoryConfigResponse,
    MemoryDownloadResponse,
    ThumbnailResponse,
    UploadResponse,
)
from PIL import Image

from tests.e2e.helpers import api, close_all, expect, register
from tests.servers import TEST_CONFIG, OutlastProcess, free_port, launch

MEDIA_STREAM = "OBJ_OUTLAST_MEDIA"


async def upload(
    url: str, token: str, data: bytes, content_type: str, filename: str | None = None
) -> str:
    params = {"filename": filename} if filename else None
    headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{url}/_matrix/media/v3/upload", data=data, headers=headers, params=params
        ) as resp,
    ):
        body = await resp.json()
        assert resp.status == 200, body
        uri: str = body["content_uri"]
        assert uri.startswith("mxc://localhost/")
        return uri


async def fetch(
    url: str, path: str, token: str | None = None, params: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as session,
        session.get(url + path, headers=headers, params=params) as resp,
    ):
        return resp.status, dict(resp.headers), await resp.read()


def media_path(uri: str) -> str:
    return uri.removeprefix("mxc://")


def image(fmt: str, size: tuple[int, int]) -> bytes:
    """A real image: a gradient, so encoders cannot cheat on flat colour."""
    width, height = size
    img = Image.new("RGB", size)
    img.putdata(
        [
            ((x * 255) // width, (y * 255) // height, 128)
            for y in range(height)
            for x in range(width)
        ]
    )
    out = io.BytesIO()
    img.save(out, fmt)
    return out.getvalue()


async def test_bytes_round_trip_exactly_with_type_and_name(server: OutlastProcess) -> None:
    alice = await register(server.url, "alice")
    blob = os.urandom(3 * 1024 * 1024 + 17)
    try:
        resp, _ = await alice.upload(
            io.BytesIO(blob),
            content_type="application/x-test",
            filename="blob.bin",
            filesize=len(blob),
        )
        uri = expect(resp, UploadResponse).content_uri
        got = expect(await alice.download(uri), MemoryDownloadResponse)
        assert got.body == blob
        assert got.content_type == "application/x-test"
        assert got.filename == "blob.bin"
        # The same bytes from the path with a file name, and from the legacy endpoint.
        status, headers, body = await fetch(
            server.url,
            f"/_matrix/client/v1/media/download/{media_path(uri)}/other.txt",
            alice.access_token,
        )
        assert status == 200 and body == blob
        assert headers["Content-Disposition"] == 'attachment; filename="other.txt"'
        assert int(headers["Content-Length"]) == len(blob)
        status, headers, body = await fetch(
            server.url, f"/_matrix/media/v3/download/{media_path(uri)}"
        )
        assert status == 200 and body == blob
    finally:
        await close_all(alice)


async def test_disposition_is_inline_only_for_safe_types(server: OutlastProcess) -> None:
    alice = await register(server.url, "alice")
    try:
        token = alice.access_token
        cases = [
            ("image/png", "cat.png", 'inline; filename="cat.png"'),
            ("text/html", "page.html", 'attachment; filename="page.html"'),
            (
                "text/plain; charset=utf-8",
                'naïve "quote".txt',
                "inline; filename*=utf-8''na%C3%AFve%20%22quote%22.txt",
            ),
            ("application/pdf", None, "attachment"),
        ]
        for content_type, name, expected in cases:
            uri = await upload(server.url, token, b"payload", content_type, name)
            status, headers, body = await fetch(
                server.url, f"/_matrix/client/v1/media/download/{media_path(uri)}", token
            )
            assert status == 200 and body == b"payload"
            assert headers["Content-Type"] == content_type
            assert headers["Content-Disposition"] == expected
            assert "sandbox" in headers["Content-Security-Policy"]
    finally:
        await close_all(alice)


async def test_create_then_upload_once_by_its_creator(server: OutlastProcess) -> None:
    alice = await register(server.url, "alice")
    bob = await register(server.url, "bob")
    try:
        status, created = await api(
            "POST", f"{server.url}/_matrix/media/v1/create", token=alice.access_token
        )
        assert status == 200 and created["content_uri"].startswith("mxc://localhost/")
        assert created["unused_expires_at"] > 0
        path = media_path(created["content_uri"])
        # Not uploaded yet: a reader that will not wait is told so.
        status, body = await api(
            "GET",
            f"{server.url}/_matrix/client/v1/media/download/{path}",
            token=bob.access_token,
            params={"timeout_ms": "0"},
        )
        assert (status, body["errcode"]) == (504, "M_NOT_YET_UPLOADED")
        put = f"{server.url}/_matrix/media/v3/upload/{path}"
        status, body = await api("PUT", put, b"not yours", token=bob.access_token)
        assert (status, body["errcode"]) == (403, "M_FORBIDDEN")
        # A waiting reader gets the bytes as soon as they arrive.
        waiting = asyncio.create_task(
            fetch(
                server.url,
                f"/_matrix/client/v1/media/download/{path}",
                bob.access_token,
                params={"timeout_ms": "15000"},
            )
        )
        await asyncio.sleep(0.3)
        status, body = await api(
            "PUT", put + "?filename=late.txt", b"late bytes", token=alice.access_token
        )
        assert (status, body) == (200, {})
        status, headers, data = await waiting
        assert (status, data) == (200, b"late bytes")
        assert headers["Content-Disposition"].endswith('filename="late.txt"')
        status, body = await api("PUT", put, b"again", token=alice.access_token)
        assert (status, body["errcode"]) == (409, "M_CANNOT_OVERWRITE_MEDIA")
        status, body = await api(
            "PUT",
            f"{server.url}/_matrix/media/v3/upload/localhost/nope",
            b"x",
            token=alice.access_token,
        )
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    finally:
        await close_all(alice, bob)


async def test_unknown_media_and_missing_token(server: OutlastProcess) -> None:
    alice = await register(server.url, "alice")
    try:
        uri = await upload(server.url, alice.access_token, b"x", "text/plain")
        base = f"{server.url}/_matrix/client/v1/media"
        status, body = await api("GET", f"{base}/download/{media_path(uri)}")
        assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
        status, body = await api("GET", f"{base}/thumbnail/{media_path(uri)}?width=9&height=9")
        assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
        for path in ("localhost/unknownMediaId", "elsewhere.org/unknownMediaId"):
            status, body = await api("GET", f"{base}/download/{path}", token=alice.access_token)
            assert (status, body["errcode"]) == (404, "M_NOT_FOUND"), path
        status, body = await api(
            "GET", f"{base}/download/localhost/bad.id", token=alice.access_token
        )
        assert status == 400 and body["errcode"] == "M_INVALID_PARAM"
        status, body = await api("GET", f"{server.url}/_matrix/media/v3/download/localhost/nope")
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
        config = expect(await alice.content_repository_config(), ContentRepositoryConfigResponse)
        assert config.upload_size == 50 * 1024 * 1024
        empty = await upload(server.url, alice.access_token, b"", "text/plain", "empty.txt")
        status, headers, body = await fetch(
            server.url,
            f"/_matrix/client/v1/media/download/{media_path(empty)}",
            alice.access_token,
        )
        assert (status, body, headers["Content-Length"]) == (200, b"", "0")
    finally:
        await close_all(alice)


@pytest.mark.parametrize(
    "fmt,mime",
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("GIF", "image/gif"), ("WEBP", "image/webp")],
)
async def test_thumbnails_have_real_dimensions(server: OutlastProcess, fmt: str, mime: str) -> None:
    alice = await register(server.url, "alice")
    try:
        uri = await upload(server.url, alice.access_token, image(fmt, (1000, 800)), mime, "a")
        server_name, media_id = media_path(uri).split("/")
        # scale: aspect kept, fits the configured 320x240 box.
        thumb = expect(await alice.thumbnail(server_name, media_id, 320, 240), ThumbnailResponse)
        with Image.open(io.BytesIO(thumb.body)) as img:
            assert img.size == (300, 240)
        expected_type = "image/png" if mime == "image/gif" else mime
        assert thumb.content_type == expected_type
        # crop: 64x64 is answered with the next configured crop size, 96x96 (never smaller).
        path = f"/_matrix/client/v1/media/thumbnail/{server_name}/{media_id}"
        crop = {"width": "64", "height": "64", "method": "crop"}
        status, headers, body = await fetch(server.url, path, alice.access_token, crop)
        assert status == 200, body
        assert headers["Content-Disposition"].startswith("inline")
        with Image.open(io.BytesIO(body)) as img:
            assert img.size == (96, 96)
        # Cached: the second answer is the same image.
        again = await fetch(server.url, path, alice.access_token, crop)
        assert again[0] == 200 and again[2] == body
    finally:
        await close_all(alice)


async def test_thumbnail_edge_cases(server: OutlastProcess) -> None:
    alice = await register(server.url, "alice")
    token = alice.access_token
    try:
        small = image("PNG", (20, 10))
        uri = await upload(server.url, token, small, "image/png")
        path = f"/_matrix/client/v1/media/thumbnail/{media_path(uri)}"
        status, _, body = await fetch(server.url, path, token, {"width": "96", "height": "96"})
        assert (status, body) == (200, small)  # never upscaled: the original
        tall = await upload(server.url, token, image("PNG", (50, 400)), "image/png")
        status, _, body = await fetch(
            server.url,
            f"/_matrix/client/v1/media/thumbnail/{media_path(tall)}",
            token,
            {"width": "96", "height": "96", "method": "crop"},
        )
        with Image.open(io.BytesIO(body)) as img:
            assert img.size == (50, 96)
        text = await upload(server.url, token, b"hello", "text/plain")
        status, body = await api(
            "GET",
            f"{server.url}/_matrix/client/v1/media/thumbnail/{media_path(text)}",
            token=token,
            params={"width": "32", "height": "32"},
        )
        assert (status, body["errcode"]) == (400, "M_UNKNOWN")
        fake = await upload(server.url, token, b"not really a png", "image/png")
        status, body = await api(
            "GET",
            f"{server.url}/_matrix/client/v1/media/thumbnail/{media_path(fake)}",
            token=token,
            params={"width": "32", "height": "32"},
        )
        assert (status, body["errcode"]) == (400, "M_UNKNOWN")
        for params in (
            {"width": "32"},
            {"width": "-1", "height": "5"},
            {"width": "32", "height": "32", "method": "stretch"},
        ):
            status, body = await api("GET", f"{server.url}{path}", token=token, params=params)
            assert status == 400 and body["errcode"] in ("M_MISSING_PARAM", "M_INVALID_PARAM")
        # The legacy thumbnail endpoint needs no token while legacy access is on.
        status, _, body = await fetch(
            server.url,
            f"/_matrix/media/v3/thumbnail/{media_path(uri)}",
            params={"width": "96", "height": "96"},
        )
        assert (status, body) == (200, small)
    finally:
        await close_all(alice)


# --- a server with a small upload limit and legacy downloads frozen --------------------


@pytest.fixture
def strict_server(tmp_path: Path) -> Iterator[tuple[OutlastProcess, int]]:
    data_dir = tmp_path / "strict"
    data_dir.mkdir()
    nats_port = free_port()
    config = tmp_path / "strict.toml"
    config.write_text(
        TEST_CONFIG.format(partitions=2, log_extra=f"nats_port = {nats_port}", server_extra="")
        + "\n[media]\nmax_upload_bytes = 1000000\nallow_legacy_download = false\n"
    )
    proc = launch(data_dir, config, free_port(), [])
    try:
        proc.wait_ready()
        yield proc, nats_port
    finally:
        proc.stop()


async def media_messages(nats_port: int) -> int:
    nc = await nats.connect(f"nats://127.0.0.1:{nats_port}")
    try:
        info = await nc.jetstream().stream_info(MEDIA_STREAM)
        return int(info.state.messages)
    finally:
        await nc.close()


async def test_over_limit_upload_is_refused_and_stores_nothing(
    strict_server: tuple[OutlastProcess, int],
) -> None:
    server, nats_port = strict_server
    alice = await register(server.url, "alice")
    try:
        token = alice.access_token
        before = await media_messages(nats_port)
        status, body = await api(
            "POST", f"{server.url}/_matrix/media/v3/upload", os.urandom(1_000_001), token=token
        )
        assert (status, body["errcode"]) == (413, "M_TOO_LARGE")

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: limit while streaming
            for _ in range(20):
                yield os.urandom(100_000)

        headers = {"Authorization": f"Bearer {token}"}
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{server.url}/_matrix/media/v3/upload", data=chunks(), headers=headers
            ) as resp,
        ):
            assert resp.status == 413
            assert (await resp.json())["errcode"] == "M_TOO_LARGE"
        assert await media_messages(nats_port) == before
        exact = os.urandom(1_000_000)  # the limit itself is allowed
        uri = await upload(server.url, token, exact, "application/octet-stream")
        status, _, body = await fetch(
            server.url, f"/_matrix/client/v1/media/download/{media_path(uri)}", token
        )
        assert (status, body) == (200, exact)
        config = expect(await alice.content_repository_config(), ContentRepositoryConfigResponse)
        assert config.upload_size == 1_000_000
        # Legacy unauthenticated access is frozen: 404, as the spec allows.
        status, body = await api("GET", f"{server.url}/_matrix/media/v3/download/{media_path(uri)}")
        assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    finally:
        await close_all(alice)


# --- three sites: the bucket is replicated like every stream ----------------------------


@pytest.mark.slow
async def test_media_from_one_site_is_served_by_every_site(tmp_path: Path) -> None:
    from tests.cluster.harness import start_cluster

    cluster = start_cluster(tmp_path / "cluster")
    try:
        a, b, c = (cluster.site_url(name) for name in cluster.names)
        alice = await register(a, "alice")
        blob = os.urandom(2 * 1024 * 1024 + 5)
        uri = await upload(a, alice.access_token, blob, "image/png", "x.png")
        for url in (a, b, c):
            status, headers, body = await fetch(
                url, f"/_matrix/client/v1/media/download/{media_path(uri)}", alice.access_token
            )
            assert status == 200 and body == blob, url
            assert headers["Content-Disposition"] == 'inline; filename="x.png"'
        # create at one site, upload at another; a second upload at a third is refused.
        status, created = await api(
            "POST", f"{a}/_matrix/media/v1/create", token=alice.access_token
        )
        path = media_path(created["content_uri"])
        status, _ = await api(
            "PUT", f"{b}/_matrix/media/v3/upload/{path}", b"once", token=alice.access_token
        )
        assert status == 200
        status, body = await api(
            "PUT", f"{c}/_matrix/media/v3/upload/{path}", b"twice", token=alice.access_token
        )
        assert (status, body["errcode"]) == (409, "M_CANNOT_OVERWRITE_MEDIA")
        status, _, data = await fetch(
            a, f"/_matrix/client/v1/media/download/{path}", alice.access_token
        )
        assert (status, data) == (200, b"once")
        await close_all(alice)
    finally:
        cluster.down()
