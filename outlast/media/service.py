"""The media repository: uploads, downloads and thumbnails in the JetStream object store.

Uploads stream: the request body is spooled in chunks to a temporary file,
with the size limit enforced while reading, and only a complete upload within
the limit is written to the bucket — so an over-limit upload stores nothing.
Downloads stream chunk by chunk from the bucket. Each object's metadata
(content type, file name, uploader, state) lives in its own metadata message,
so every site serves every upload without a view table.

Thumbnails are made on first request at one of the configured sizes and
cached in the same bucket as ``<mediaId>.thumb.<size>`` (media ids cannot
contain dots, so these names are never addressable as media).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import secrets
import tempfile
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO

from outlast.context import SiteContext
from outlast.core import thumbnails
from outlast.core.errors import MatrixError, forbidden, not_found, too_large
from outlast.log.client import LogUnavailable
from outlast.log.objects import AlreadyWritten, ObjectBucket, StoredObject

MEDIA_ID = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
MIME = re.compile(r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(\s*;[ -~]*)?$")
MAX_WAIT_MS = 60_000
DEFAULT_WAIT_MS = 20_000


@dataclass
class Media:
    """A stored upload, ready to be streamed."""

    obj: StoredObject
    content_type: str
    filename: str | None


@dataclass
class Thumbnail:
    """Either an object to stream (cached thumbnail or small original) or fresh bytes."""

    content_type: str
    obj: StoredObject | None = None
    data: bytes | None = None


def clean_content_type(value: str | None) -> str:
    value = (value or "").strip()
    if value and len(value) <= 255 and MIME.match(value):
        return value
    return "application/octet-stream"


def clean_filename(value: str | None) -> str | None:
    """Drop control characters and cap the length; otherwise kept as given (the spec wants
    it back unchanged; Content-Disposition quoting makes it safe). None if nothing is left."""
    if not value:
        return None
    value = "".join(ch for ch in value if ch.isprintable())[:255].strip()
    return value or None


class MediaRepository:
    def __init__(self, ctx: SiteContext) -> None:
        self.ctx = ctx
        self.config = ctx.config.media
        self.bucket = ObjectBucket(ctx.log, ctx.names.media_bucket)
        self.sizes = thumbnails.parse_sizes(self.config.thumbnail_sizes)
        self.tmp_dir = ctx.config.data_path / "media-tmp"
        # Renders get threads of their own: a burst of them must not stall the
        # argon2 hashes and file reads in the default pool behind it.
        self.render_pool = ThreadPoolExecutor(
            max_workers=self.config.thumbnail_workers, thread_name_prefix="thumbnail"
        )
        # One render per (media id, size) at a time; later askers await the same task.
        self.rendering: dict[str, asyncio.Task[Thumbnail]] = {}
        self.renders = 0  # thumbnails actually rendered (metrics: outlast_thumbnail_renders)

    async def start(self) -> None:
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        await self.bucket.ensure(self.ctx.config.log.replicas)

    async def stop(self) -> None:
        self.render_pool.shutdown(wait=False, cancel_futures=True)

    @property
    def server_name(self) -> str:
        return self.ctx.server_name

    def mxc(self, media_id: str) -> str:
        return f"mxc://{self.server_name}/{media_id}"

    # --- writing ----------------------------------------------------------------

    def check_length(self, declared: int | None) -> None:
        if declared is not None and declared > self.config.max_upload_bytes:
            raise _too_large(self.config.max_upload_bytes)

    async def upload(
        self,
        user_id: str,
        body: AsyncIterator[bytes],
        declared: int | None,
        content_type: str | None,
        filename: str | None,
    ) -> str:
        """POST /upload: spool, then store under a fresh media id."""
        self.check_length(declared)
        media_id = secrets.token_urlsafe(18)
        with await self._spool(body) as spooled:
            await self._store(
                media_id, spooled, _ready(user_id, content_type, filename, self.ctx.now_ms()), 0
            )
        return self.mxc(media_id)

    async def create(self, user_id: str) -> dict[str, object]:
        """POST /create: reserve a media id for a later PUT by the same user."""
        media_id = secrets.token_urlsafe(18)
        expires = self.ctx.now_ms() + self.config.unused_expires_seconds * 1000
        pending = {"state": "pending", "uploader": user_id, "expires_at": str(expires)}
        await self._store(media_id, None, pending, 0)
        return {"content_uri": self.mxc(media_id), "unused_expires_at": expires}

    async def upload_to(
        self,
        user_id: str,
        server_name: str,
        media_id: str,
        body: AsyncIterator[bytes],
        declared: int | None,
        content_type: str | None,
        filename: str | None,
    ) -> None:
        """PUT /upload/{server}/{id}: once, by the user who created the id, before it expires."""
        obj = await self._info(server_name, media_id)
        if obj is None or _expired(obj, self.ctx.now_ms()):
            raise not_found("unknown or expired media id")
        if obj.metadata.get("state") != "pending":
            raise MatrixError(409, "M_CANNOT_OVERWRITE_MEDIA", "media already uploaded")
        if obj.metadata.get("uploader") != user_id:
            raise forbidden("this media id was created by another user")
        self.check_length(declared)
        with await self._spool(body) as spooled:
            await self._store(
                media_id,
                spooled,
                _ready(user_id, content_type, filename, self.ctx.now_ms()),
                obj.seq,
            )

    async def _spool(self, body: AsyncIterator[bytes]) -> IO[bytes]:
        """The request body in a temporary file; 413 as soon as it passes the limit."""
        limit = self.config.max_upload_bytes
        spooled = tempfile.TemporaryFile(dir=self.tmp_dir)  # noqa: SIM115 - caller closes it
        try:
            size = 0
            async for chunk in body:
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                spooled.write(chunk)
            spooled.seek(0)
        except BaseException:
            spooled.close()
            raise
        return spooled

    async def _store(
        self, name: str, source: IO[bytes] | None, metadata: dict[str, str], expected_seq: int
    ) -> StoredObject:
        try:
            return await self.bucket.put(name, source, metadata, expected_seq=expected_seq)
        except AlreadyWritten:
            raise MatrixError(409, "M_CANNOT_OVERWRITE_MEDIA", "media already uploaded") from None

    # --- reading ----------------------------------------------------------------

    async def _info(self, server_name: str, media_id: str) -> StoredObject | None:
        if not MEDIA_ID.match(media_id):
            raise MatrixError(400, "M_INVALID_PARAM", "invalid media id")
        if server_name != self.server_name:
            return None  # no federation: remote media is never available here
        return await self.bucket.info(media_id)

    async def open(self, server_name: str, media_id: str, timeout_ms: int | None) -> Media:
        """A finished upload; waits up to ``timeout_ms`` for one that was only created."""
        wait = DEFAULT_WAIT_MS if timeout_ms is None else max(0, min(timeout_ms, MAX_WAIT_MS))
        clock = self.ctx.clock
        deadline = clock.monotonic() + wait / 1000
        while True:
            obj = await self._info(server_name, media_id)
            if obj is None or _expired(obj, self.ctx.now_ms()):
                raise not_found("media not found")
            if obj.metadata.get("state") != "pending":
                return Media(
                    obj,
                    clean_content_type(obj.metadata.get("content_type")),
                    obj.metadata.get("filename") or None,
                )
            if clock.monotonic() >= deadline:
                raise MatrixError(504, "M_NOT_YET_UPLOADED", "content has not yet been uploaded")
            await clock.sleep(min(0.25, max(0.0, deadline - clock.monotonic())))

    async def read(self, media: Media | StoredObject) -> AsyncIterator[bytes]:
        obj = media.obj if isinstance(media, Media) else media
        async for chunk in self.bucket.read(obj):
            yield chunk

    # --- thumbnails -------------------------------------------------------------

    async def thumbnail(
        self,
        server_name: str,
        media_id: str,
        width: int,
        height: int,
        method: str,
        timeout_ms: int | None,
    ) -> Thumbnail:
        if width < 1 or height < 1:
            raise MatrixError(400, "M_INVALID_PARAM", "width and height must be positive")
        if method not in thumbnails.METHODS:
            raise MatrixError(400, "M_INVALID_PARAM", "method must be crop or scale")
        media = await self.open(server_name, media_id, timeout_ms)
        base = media.content_type.split(";")[0].strip().lower()
        if base not in thumbnails.THUMBNAIL_TYPES:
            raise MatrixError(400, "M_UNKNOWN", "cannot generate thumbnails for this content")
        if media.obj.size > self.config.max_thumbnail_source_bytes:
            raise too_large("content is too large to thumbnail")
        size = thumbnails.choose(self.sizes, width, height, method)
        if size is None:
            raise MatrixError(400, "M_UNKNOWN", "thumbnails are turned off")
        cache_name = f"{media_id}.thumb.{size.key}"
        task = self.rendering.get(cache_name)
        if task is None:
            task = asyncio.create_task(self._cached_or_rendered(media, size, cache_name))
            self.rendering[cache_name] = task
            task.add_done_callback(lambda _: self.rendering.pop(cache_name, None))
        # Shielded: a client that goes away does not cancel the others' render.
        return await asyncio.shield(task)

    async def _cached_or_rendered(
        self, media: Media, size: thumbnails.Size, cache_name: str
    ) -> Thumbnail:
        cached = await self.bucket.info(cache_name)
        if cached is not None:
            kind = cached.metadata.get("content_type", "application/octet-stream")
            if kind == "original":  # the source is already small enough
                return Thumbnail(media.content_type, obj=media.obj)
            return Thumbnail(kind, obj=cached)
        rendered = await self._render(media, size)
        if rendered is None:
            await self._cache(cache_name, None, {"content_type": "original"})
            return Thumbnail(media.content_type, obj=media.obj)
        data, kind = rendered
        await self._cache(cache_name, data, {"content_type": kind})
        return Thumbnail(kind, data=data)

    async def _render(self, media: Media, size: thumbnails.Size) -> tuple[bytes, str] | None:
        with tempfile.TemporaryFile(dir=self.tmp_dir) as source:
            await self.bucket.read_into(media.obj, source)
            loop = asyncio.get_running_loop()
            self.renders += 1
            try:
                return await loop.run_in_executor(
                    self.render_pool,
                    thumbnails.thumbnail,
                    source,
                    media.content_type,
                    size,
                    self.config.max_thumbnail_pixels,
                )
            except thumbnails.CannotThumbnail as exc:
                raise MatrixError(400, "M_UNKNOWN", str(exc)) from None
            except thumbnails.TooLarge as exc:
                raise too_large(str(exc)) from None

    async def _cache(self, name: str, data: bytes | None, metadata: dict[str, str]) -> None:
        """Best effort: a lost race or an unavailable log only costs a re-render later."""
        with contextlib.suppress(AlreadyWritten, LogUnavailable):
            await self.bucket.put(
                name, io.BytesIO(data) if data else None, metadata, expected_seq=0
            )


def _ready(
    user_id: str, content_type: str | None, filename: str | None, now_ms: int
) -> dict[str, str]:
    meta = {
        "state": "ready",
        "uploader": user_id,
        "content_type": clean_content_type(content_type),
        "created_ts": str(now_ms),
    }
    name = clean_filename(filename)
    if name:
        meta["filename"] = name
    return meta


def _expired(obj: StoredObject, now_ms: int) -> bool:
    if obj.metadata.get("state") != "pending":
        return False
    expires = obj.metadata.get("expires_at", "")
    return expires.isdigit() and int(expires) < now_ms


def _too_large(limit: int) -> MatrixError:
    return too_large(f"uploads are limited to {limit} bytes")
