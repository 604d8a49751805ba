"""The media repository: upload, create, download, thumbnail, config.

Authenticated reads live under ``/_matrix/client/v1/media``; uploads under
``/_matrix/media/v3`` (and ``/v1/create``); the deprecated unauthenticated
``/_matrix/media/v3/download|thumbnail`` answer only while
``media.allow_legacy_download`` is on. Bodies are streamed both ways.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from aiohttp import ClientError, web

from outlast.core.errors import MatrixError, not_found
from outlast.http.limits import LIMITS_KEY
from outlast.http.request import CORS_HEADERS, ok, requester, services
from outlast.http.routing import Routes

log = logging.getLogger(__name__)
routes = Routes()

MEDIA_V3 = ("/_matrix/media/v3", "/_matrix/media/r0")
MEDIA_V1 = ("/_matrix/media/v1",)
CLIENT_V1 = ("/_matrix/client/v1",)
READ_CHUNK = 64 * 1024

# Spec "Serving inline content": the only types served with ``inline``.
INLINE_TYPES = frozenset(
    {
        "text/css",
        "text/plain",
        "text/csv",
        "application/json",
        "application/ld+json",
        "image/jpeg",
        "image/gif",
        "image/png",
        "image/apng",
        "image/webp",
        "image/avif",
        "video/mp4",
        "video/webm",
        "video/ogg",
        "video/quicktime",
        "audio/mp4",
        "audio/webm",
        "audio/aac",
        "audio/mpeg",
        "audio/ogg",
        "audio/wave",
        "audio/wav",
        "audio/x-wav",
        "audio/x-pn-wav",
        "audio/flac",
        "audio/x-flac",
    }
)
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf;"
        " style-src 'unsafe-inline'; media-src 'self'; object-src 'self';"
    ),
    "Cross-Origin-Resource-Policy": "cross-origin",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "private, max-age=86400",
}


def disposition(content_type: str, filename: str | None) -> str:
    """``inline`` only for the spec's safe types; the file name quoted per RFC 6266."""
    base = content_type.split(";")[0].strip().lower()
    kind = "inline" if base in INLINE_TYPES else "attachment"
    if not filename:
        return kind
    if filename.isascii() and filename.isprintable() and not any(c in filename for c in '"\\;'):
        return f'{kind}; filename="{filename}"'
    return f"{kind}; filename*=utf-8''{quote(filename, safe='')}"


def _repo(request: web.Request) -> Any:
    return services(request).media


async def _body(request: web.Request) -> AsyncIterator[bytes]:
    """The request body in chunks; never the app's whole-body read (and its 1 MiB cap).

    Uploads may be large and slow, so the body timeout bounds the wait for each
    next chunk, not the whole upload."""
    idle = request.app[LIMITS_KEY].body_timeout
    chunks = request.content.iter_chunked(READ_CHUNK)
    while True:
        try:
            async with asyncio.timeout(idle):
                chunk = await anext(chunks, None)
        except TimeoutError:
            raise MatrixError(
                408, "M_UNKNOWN", "upload stalled", headers={"Connection": "close"}
            ) from None
        except web.RequestPayloadError:
            raise MatrixError(
                400, "M_UNKNOWN", "upload could not be decoded (Content-Encoding)"
            ) from None
        except ConnectionError:
            raise  # the client went away: the middleware logs one line
        except (ClientError, asyncio.IncompleteReadError):
            raise MatrixError(400, "M_UNKNOWN", "upload interrupted") from None
        if chunk is None:
            return
        yield chunk


def _timeout_ms(request: web.Request) -> int | None:
    raw = request.query.get("timeout_ms")
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 12:
        raise MatrixError(400, "M_INVALID_PARAM", "timeout_ms must be a non-negative integer")
    return int(raw)


def _dimension(request: web.Request, name: str) -> int:
    raw = request.query.get(name)
    if raw is None:
        raise MatrixError(400, "M_MISSING_PARAM", f"{name} is required")
    if not raw.isascii() or not raw.isdigit() or len(raw) > 6 or int(raw) < 1:
        raise MatrixError(400, "M_INVALID_PARAM", f"{name} must be a positive integer")
    return int(raw)


@routes.post("/upload", prefixes=MEDIA_V3)
async def upload(request: web.Request) -> web.Response:
    """POST /_matrix/media/v3/upload"""
    who = await requester(request)
    uri = await _repo(request).upload(
        who.user_id,
        _body(request),
        request.content_length,
        request.headers.get("Content-Type"),
        request.query.get("filename"),
    )
    return ok({"content_uri": uri})


@routes.post("/create", prefixes=MEDIA_V1)
async def create(request: web.Request) -> web.Response:
    """POST /_matrix/media/v1/create"""
    who = await requester(request)
    return ok(await _repo(request).create(who.user_id))


@routes.put("/upload/{server_name}/{media_id}", prefixes=MEDIA_V3)
async def upload_to(request: web.Request) -> web.Response:
    """PUT /_matrix/media/v3/upload/{serverName}/{mediaId}"""
    who = await requester(request)
    await _repo(request).upload_to(
        who.user_id,
        request.match_info["server_name"],
        request.match_info["media_id"],
        _body(request),
        request.content_length,
        request.headers.get("Content-Type"),
        request.query.get("filename"),
    )
    return ok()


@routes.get("/media/config", prefixes=CLIENT_V1)
@routes.get("/config", prefixes=MEDIA_V3)
async def config(request: web.Request) -> web.Response:
    """GET /_matrix/client/v1/media/config (and the deprecated /_matrix/media/v3/config)"""
    await requester(request)
    return ok({"m.upload.size": _repo(request).config.max_upload_bytes})


async def _download(request: web.Request) -> web.StreamResponse:
    repo = _repo(request)
    media = await repo.open(
        request.match_info["server_name"], request.match_info["media_id"], _timeout_ms(request)
    )
    filename = request.match_info.get("file_name") or media.filename
    headers = {
        "Content-Type": media.content_type,
        "Content-Disposition": disposition(media.content_type, filename),
    }
    return await _stream(request, repo.read(media), media.obj.size, headers)


async def _thumbnail(request: web.Request) -> web.StreamResponse:
    repo = _repo(request)
    width, height = _dimension(request, "width"), _dimension(request, "height")
    thumb = await repo.thumbnail(
        request.match_info["server_name"],
        request.match_info["media_id"],
        width,
        height,
        request.query.get("method", "scale"),
        _timeout_ms(request),
    )
    extension = thumb.content_type.split("/")[-1].split(";")[0]
    headers = {
        "Content-Type": thumb.content_type,
        "Content-Disposition": f'inline; filename="thumbnail.{extension}"',
    }
    if thumb.data is not None:
        return web.Response(body=thumb.data, headers={**SECURITY_HEADERS, **headers})
    assert thumb.obj is not None
    return await _stream(request, repo.read(thumb.obj), thumb.obj.size, headers)


async def _stream(
    request: web.Request, chunks: AsyncIterator[bytes], size: int, headers: dict[str, str]
) -> web.StreamResponse:
    """Send the bytes as they come from the bucket; a failure midway cuts the connection
    (the client sees a short body against Content-Length, never a corrupt success)."""
    response = web.StreamResponse(
        headers={
            **CORS_HEADERS,
            **SECURITY_HEADERS,
            **headers,
            "X-Outlast-Site": str(services(request).config.server.site),
        }
    )
    response.content_length = size
    first: bytes | None = None
    iterator = aiter(chunks)
    if size:
        first = await anext(iterator)  # errors before any byte is sent stay Matrix JSON
    await response.prepare(request)
    try:
        if first is not None:
            await response.write(first)
            async for chunk in iterator:
                await response.write(chunk)
        await response.write_eof()
    except (MatrixError, ConnectionResetError) as exc:
        log.warning("download of %s cut short: %s", request.path, exc)
        if request.transport is not None:
            request.transport.close()
    return response


@routes.get("/media/download/{server_name}/{media_id}", prefixes=CLIENT_V1)
@routes.get("/media/download/{server_name}/{media_id}/{file_name:.*}", prefixes=CLIENT_V1)
async def download(request: web.Request) -> web.StreamResponse:
    """GET /_matrix/client/v1/media/download/{serverName}/{mediaId}[/{fileName}]"""
    await requester(request)
    return await _download(request)


@routes.get("/media/thumbnail/{server_name}/{media_id}", prefixes=CLIENT_V1)
async def thumbnail(request: web.Request) -> web.StreamResponse:
    """GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}"""
    await requester(request)
    return await _thumbnail(request)


def _legacy_allowed(request: web.Request) -> None:
    if not _repo(request).config.allow_legacy_download:
        # Spec 1.11: a frozen unauthenticated endpoint answers 404 M_NOT_FOUND.
        raise not_found("unauthenticated media is disabled; use /_matrix/client/v1/media")


@routes.get("/download/{server_name}/{media_id}", prefixes=MEDIA_V3)
@routes.get("/download/{server_name}/{media_id}/{file_name:.*}", prefixes=MEDIA_V3)
async def legacy_download(request: web.Request) -> web.StreamResponse:
    """GET /_matrix/media/v3/download/{serverName}/{mediaId}[/{fileName}] (deprecated)"""
    _legacy_allowed(request)
    return await _download(request)


@routes.get("/thumbnail/{server_name}/{media_id}", prefixes=MEDIA_V3)
async def legacy_thumbnail(request: web.Request) -> web.StreamResponse:
    """GET /_matrix/media/v3/thumbnail/{serverName}/{mediaId} (deprecated)"""
    _legacy_allowed(request)
    return await _thumbnail(request)
