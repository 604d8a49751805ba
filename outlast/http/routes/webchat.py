"""The web chat: ``GET /`` is its page, ``/_outlast/web/chat/...`` its scripts, styles and icons.

The chat is a static single-page client of this server's Client-Server API
(same origin); see ``outlast/web/chat``. Every response carries the strict
Content-Security-Policy of :mod:`outlast.web`.
"""

from __future__ import annotations

from aiohttp import web

from outlast.core.errors import not_found
from outlast.http.routing import Routes
from outlast.web import CHAT_DIR, SECURITY_HEADERS, StaticFile, load, resolve

routes = Routes()

ROOT = ("",)
ASSET_PREFIX = "/_outlast/web/chat/"


def static_response(request: web.Request, file: StaticFile, cache: str) -> web.Response:
    """The file with security headers; 304 when the client's copy is current."""
    headers = {**SECURITY_HEADERS, "Cache-Control": cache, "ETag": file.etag}
    if file.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(body=file.body, headers={**headers, "Content-Type": file.content_type})


@routes.get("/", prefixes=ROOT)
async def index(request: web.Request) -> web.Response:
    """GET / : the chat page."""
    path = resolve(CHAT_DIR, "index.html")
    if path is None:
        raise not_found("the web chat is not installed")
    return static_response(request, load(path), "no-cache")


@routes.get(ASSET_PREFIX + "{path:.+}", prefixes=ROOT)
async def asset(request: web.Request) -> web.Response:
    """GET /_outlast/web/chat/{path}: a script, stylesheet or icon of the chat."""
    path = resolve(CHAT_DIR, request.match_info["path"])
    if path is None:
        raise not_found("no such file")
    # Revalidated each time (cheap 304s), so a server upgrade never mixes old and new modules.
    return static_response(request, load(path), "no-cache")
